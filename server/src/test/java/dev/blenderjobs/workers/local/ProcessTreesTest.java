package dev.blenderjobs.workers.local;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The process-tree helpers on real (non-Blender) processes. */
@Timeout(30)
class ProcessTreesTest {

    @Test
    void descendantsAreFoundAtEveryDepthAndCanBeKilledAfterTheRootIsGone() throws Exception {
        // sh -> (sh -> sleep), sleep: two levels below the root.
        Process root = new ProcessBuilder("sh", "-c", "sh -c 'sleep 60' & sleep 60 & wait").start();
        try {
            List<ProcessHandle> found = List.of();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (System.nanoTime() < deadline) {
                found = ProcessTrees.descendants(root.toHandle());
                if (found.size() >= 3) break;
                Thread.sleep(20);
            }
            Set<Long> expected = root.toHandle().descendants().map(ProcessHandle::pid).collect(Collectors.toSet());
            assertEquals(expected, found.stream().map(ProcessHandle::pid).collect(Collectors.toSet()));
            assertEquals(3, found.size(), "an inner sh, its sleep, and a sleep: " + found);
            assertTrue(found.stream().allMatch(h -> h.info().startInstant().isPresent()),
                    "each handle knows its start time, so a reused pid is never killed");

            // What LocalWorker does when Blender died on its own: its children were handed to
            // init, so only the handles noted while it lived still reach them.
            root.toHandle().destroyForcibly();
            root.waitFor(10, TimeUnit.SECONDS);
            assertTrue(found.stream().anyMatch(ProcessHandle::isAlive), "the orphans outlive their parent");
            found.forEach(ProcessHandle::destroyForcibly);
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (found.stream().anyMatch(ProcessTreesTest::running) && System.nanoTime() < until) Thread.sleep(20);
            assertFalse(found.stream().anyMatch(ProcessTreesTest::running));
        } finally {
            root.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
            root.destroyForcibly();
        }
    }

    /** Alive and not a zombie (an orphan's zombie stays until init reaps it, which some containers never do). */
    private static boolean running(ProcessHandle p) {
        if (!p.isAlive()) return false;
        try {
            String stat = java.nio.file.Files.readString(java.nio.file.Path.of("/proc", Long.toString(p.pid()), "stat"));
            return stat.charAt(stat.lastIndexOf(')') + 2) != 'Z';
        } catch (java.io.IOException e) {
            return false;
        }
    }

    @Test
    void aProcessThatEndedHasNoDescendants() throws Exception {
        Process p = new ProcessBuilder("true").start();
        p.waitFor(10, TimeUnit.SECONDS);
        assertEquals(List.of(), ProcessTrees.descendants(p.toHandle()));
    }
}
