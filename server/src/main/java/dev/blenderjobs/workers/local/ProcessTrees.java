package dev.blenderjobs.workers.local;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/** Killing and measuring whole process trees: a job's script may start children of its own. */
public final class ProcessTrees {
    private ProcessTrees() {
    }

    /**
     * Sends TERM to the process and all its descendants, waits up to {@code grace}, then KILLs
     * whatever is left. Blocks for at most about {@code grace} plus a second.
     */
    public static void terminate(ProcessHandle root, Duration grace) {
        List<ProcessHandle> tree = snapshot(root);
        tree.forEach(ProcessHandle::destroy);
        long deadline = System.nanoTime() + grace.toNanos();
        for (ProcessHandle p : tree) {
            long left = deadline - System.nanoTime();
            if (left <= 0) break;
            try {
                p.onExit().get(left, TimeUnit.NANOSECONDS);
            } catch (Exception ignored) {
                // Still alive after the grace period: killed below.
            }
        }
        // The snapshot taken before the root died: once it is gone its children are
        // re-parented and no longer show up as its descendants.
        kill(root);
        tree.stream().filter(ProcessHandle::isAlive).forEach(ProcessHandle::destroyForcibly);
    }

    /** KILLs the process and all its descendants at once, including ones started meanwhile. */
    public static void kill(ProcessHandle root) {
        List<ProcessHandle> first = snapshot(root);
        first.forEach(ProcessHandle::destroyForcibly);
        for (int round = 0; round < 3; round++) {
            List<ProcessHandle> tree = snapshot(root).stream().filter(ProcessHandle::isAlive).collect(Collectors.toList());
            if (tree.isEmpty()) return;
            tree.forEach(ProcessHandle::destroyForcibly);
        }
    }

    /**
     * Every descendant of a live process. On Linux from {@code /proc/PID/task/TID/children}, a
     * few small files per process (cheap enough to call twice a second); elsewhere, or on a
     * kernel without those files, from the whole process table. Each handle knows its process's
     * start time, so killing it later never hits a process that took over the pid.
     */
    public static List<ProcessHandle> descendants(ProcessHandle root) {
        List<ProcessHandle> found = new ArrayList<>();
        Deque<Long> pending = new ArrayDeque<>();
        pending.add(root.pid());
        while (!pending.isEmpty()) {
            List<Long> children = childrenFromProc(pending.pop());
            if (children == null) return root.descendants().toList();
            for (long child : children) {
                ProcessHandle.of(child).ifPresent(found::add);
                pending.add(child);
            }
        }
        return found;
    }

    /** Children of a process as Linux lists them, or null when it does not. */
    private static List<Long> childrenFromProc(long pid) {
        Path tasks = Path.of("/proc", Long.toString(pid), "task");
        if (!Files.isDirectory(tasks)) return Files.isDirectory(Path.of("/proc/self/task")) ? List.of() : null;
        List<Long> children = new ArrayList<>();
        try (DirectoryStream<Path> threads = Files.newDirectoryStream(tasks)) {
            for (Path thread : threads) {
                String text;
                try {
                    text = Files.readString(thread.resolve("children"));
                } catch (NoSuchFileException e) {
                    if (!Files.exists(thread)) continue; // the thread just ended
                    return null; // a kernel without the file
                }
                for (String child : text.trim().split("\\s+")) {
                    if (!child.isEmpty()) children.add(Long.parseLong(child));
                }
            }
        } catch (IOException | RuntimeException e) {
            return children; // the process ended meanwhile: it has no children to report
        }
        return children;
    }

    /** Descendants first (deepest last found), then the root itself. */
    private static List<ProcessHandle> snapshot(ProcessHandle root) {
        List<ProcessHandle> all = root.descendants().collect(Collectors.toList());
        all.add(root);
        return all;
    }

    /** Resident memory of a process as the OS reports it (Linux /proc, else ps); empty if unknown. */
    public static OptionalLong residentBytes(long pid) {
        Path status = Path.of("/proc", Long.toString(pid), "status");
        if (Files.isReadable(status)) {
            try {
                for (String line : Files.readAllLines(status)) {
                    if (line.startsWith("VmRSS:")) {
                        String[] parts = line.substring(6).trim().split("\\s+");
                        return OptionalLong.of(Long.parseLong(parts[0]) * 1024);
                    }
                }
            } catch (IOException | RuntimeException e) {
                return OptionalLong.empty();
            }
            return OptionalLong.empty();
        }
        try {
            Process ps = new ProcessBuilder("ps", "-o", "rss=", "-p", Long.toString(pid)).start();
            String out = new String(ps.getInputStream().readAllBytes()).trim();
            if (ps.waitFor(5, TimeUnit.SECONDS) && !out.isEmpty()) {
                return OptionalLong.of(Long.parseLong(out) * 1024);
            }
        } catch (IOException | RuntimeException e) {
            return OptionalLong.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return OptionalLong.empty();
    }
}
