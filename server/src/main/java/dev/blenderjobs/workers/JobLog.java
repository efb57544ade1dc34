package dev.blenderjobs.workers;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The console output of one job: every byte goes to the job's log file as it arrives, and the
 * last lines stay in memory for {@code getJob}. Written by a worker's output drainer thread and
 * read by the event loop, hence synchronized.
 * <p>
 * A job's log ({@link #committedOnRelease}) grows under {@code <name>.part} and is renamed to its
 * name when it is released, as the job comes to rest: a file under the final name is always a
 * whole log, the same rule as for the other files of a job. Writing it again (a resumed job)
 * first moves it back to the {@code .part} name.
 * <p>
 * A reader can {@link #follow} the log: it gets the log's last bytes and, atomically with them,
 * becomes a {@link Listener} of every byte appended after them, until the log is released.
 */
public final class JobLog {
    private static final Logger LOG = Logger.getLogger(JobLog.class.getName());
    /** Longest line kept in the tail; longer lines are cut (the file keeps them whole). */
    static final int MAX_LINE_CHARS = 2000;

    private final Path file;
    /** Where the bytes go while the log is open: {@code file}, or its {@code .part} sibling. */
    private final Path writing;
    /** The file that holds the log now: {@code writing}, then {@code file} once renamed. */
    private Path current;
    private final int tailLines;
    private final ArrayDeque<String> tail = new ArrayDeque<>();
    private final StringBuilder partial = new StringBuilder();
    private OutputStream out;
    private long bytes;
    private boolean writeFailed;
    private boolean released;
    /** Largest size of the file; past it output is cut (the tail is added when the log is closed). */
    private final long maxFileBytes;
    /** Bytes in the file, including what an earlier server or attempt wrote there. */
    private long fileBytes;
    /** Bytes not written because the file reached {@link #maxFileBytes}. */
    private long cutBytes;
    private final List<Listener> listeners = new ArrayList<>(1);

    /**
     * Hears a log's bytes as they are appended. Its methods are called on the writer's thread
     * (a worker's output drainer, or the event loop for notes and release) with the log's lock
     * held: they must copy what they need and return at once, never block, never call back
     * into the log.
     */
    public interface Listener {
        /** Console bytes, exactly as appended (partial lines and invalid UTF-8 included). */
        void appended(byte[] data, int offset, int length);

        /** The log was released (its job rests): nothing more will be appended. */
        void released();
    }

    /**
     * What {@link #follow} found.
     *
     * @param tail      the log's last bytes (at most the number asked for), as they are in the log
     * @param skipped   bytes of the log before {@code tail} that were left out
     * @param following whether the listener was registered (false: the log was already released)
     */
    public record Followed(byte[] tail, long skipped, boolean following) {
    }

    /** A log written straight to {@code file} (a worker's own console). */
    public JobLog(Path file, int tailLines) {
        this(file, file, tailLines, Long.MAX_VALUE);
    }

    /** The same, at most {@code maxFileBytes} long (plus its cut marker and tail). */
    public JobLog(Path file, int tailLines, long maxFileBytes) {
        this(file, file, tailLines, maxFileBytes);
    }

    private JobLog(Path file, Path writing, int tailLines, long maxFileBytes) {
        this.file = file;
        this.writing = writing;
        this.current = writing;
        this.tailLines = tailLines;
        this.maxFileBytes = maxFileBytes;
    }

    /** A job's log: written to {@code <file>.part}, renamed to {@code file} by {@link #release()}. */
    public static JobLog committedOnRelease(Path file, int tailLines) {
        return committedOnRelease(file, tailLines, Long.MAX_VALUE);
    }

    /**
     * A job's log whose file grows to at most {@code maxFileBytes} (--max-log-size): past it the
     * output is cut at a marker line, and the last lines are appended when the log is released.
     */
    public static JobLog committedOnRelease(Path file, int tailLines, long maxFileBytes) {
        return new JobLog(file, file.resolveSibling(file.getFileName() + ".part"), tailLines, maxFileBytes);
    }

    /** The file that holds the log now: the {@code .part} name until it is released. */
    public synchronized Path file() {
        return current;
    }

    /** Appends a header line, e.g. at the start of an attempt. */
    public synchronized void note(String line) {
        append((line + "\n").getBytes(StandardCharsets.UTF_8), 0, -1);
    }

    /** Appends raw console bytes (may hold partial lines and invalid UTF-8). */
    public synchronized void append(byte[] data, int offset, int length) {
        // A released log belongs to a finished job, whose directory may be gone already.
        if (released) return;
        if (length < 0) length = data.length - offset;
        writeFile(data, offset, length);
        bytes += length;
        for (Listener listener : listeners) {
            try {
                listener.appended(data, offset, length);
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "a listener of job log " + writing + " failed", e);
            }
        }
        // new String(...) replaces invalid UTF-8 with U+FFFD: a bad byte never breaks the log.
        String text = new String(data, offset, length, StandardCharsets.UTF_8);
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '\n') {
                pushLine();
            } else if (c != '\r' && partial.length() < MAX_LINE_CHARS) {
                partial.append(c);
            }
        }
    }

    private void pushLine() {
        tail.addLast(partial.toString());
        partial.setLength(0);
        while (tail.size() > tailLines) tail.removeFirst();
    }

    private void writeFile(byte[] data, int offset, int length) {
        if (writeFailed) return;
        try {
            if (out == null) {
                Files.createDirectories(writing.getParent());
                // A resumed job's log goes on from what its earlier attempts printed.
                if (!writing.equals(file) && Files.exists(file) && !Files.exists(writing)) {
                    Files.move(file, writing, StandardCopyOption.ATOMIC_MOVE);
                }
                // Unbuffered: each chunk the drainer read is one write, so a server killed with
                // SIGKILL leaves in the log everything its workers had printed.
                out = Files.newOutputStream(writing, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                fileBytes = Files.size(writing);
            }
            if (cutBytes > 0) {
                cutBytes += length;
                return;
            }
            long room = maxFileBytes - fileBytes;
            if (length > room) {
                int fits = (int) Math.max(0, room);
                out.write(data, offset, fits);
                byte[] marker = ("\n=== blender-jobs: this log reached its limit of " + megabytes(maxFileBytes)
                        + " (--max-log-size); the output is cut here, and its last lines are added at the end when "
                        + "the job stops ===\n").getBytes(StandardCharsets.UTF_8);
                out.write(marker);
                fileBytes += fits + marker.length;
                cutBytes = length - fits;
                return;
            }
            out.write(data, offset, length);
            fileBytes += length;
        } catch (IOException e) {
            writeFailed = true;
            LOG.log(Level.WARNING, "cannot write job log " + writing + "; keeping only its tail in memory", e);
        }
    }

    /**
     * The log's last {@code maxBytes} bytes and, if the log is still open, the listener for every
     * byte appended after them: nothing is missed or repeated between the two. Reads the end of
     * the log file with the lock held (the writer waits that long; the file is written through,
     * so it holds every byte appended so far); when the file could not be written, the tail
     * comes from the lines kept in memory.
     */
    public synchronized Followed follow(Listener listener, int maxBytes) {
        byte[] all = lastBytes(maxBytes);
        long size = writeFailed || all == null ? -1 : fileSize();
        byte[] tail = all == null ? memoryTail() : all;
        long skipped = size < 0 ? 0 : Math.max(0, size - tail.length);
        if (released) return new Followed(tail, skipped, false);
        listeners.add(listener);
        return new Followed(tail, skipped, true);
    }

    /** The listener hears nothing more. */
    public synchronized void unfollow(Listener listener) {
        listeners.remove(listener);
    }

    /** The file's last bytes, or null when it cannot serve them (write failed, unreadable). */
    private byte[] lastBytes(int maxBytes) {
        if (writeFailed && !released) return null;
        Path file = current;
        if (!Files.isRegularFile(file)) return new byte[0];
        try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(file.toFile(), "r")) {
            long length = raf.length();
            int window = (int) Math.min(length, maxBytes);
            byte[] data = new byte[window];
            raf.seek(length - window);
            raf.readFully(data);
            return data;
        } catch (IOException e) {
            LOG.log(Level.FINE, "cannot read the end of job log " + file, e);
            return null;
        }
    }

    private long fileSize() {
        try {
            return Files.size(current);
        } catch (IOException e) {
            return -1;
        }
    }

    private byte[] memoryTail() {
        StringBuilder text = new StringBuilder();
        for (String line : tail) text.append(line).append('\n');
        text.append(partial);
        return text.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** The last lines, including a trailing partial line. */
    public synchronized List<String> tail() {
        if (released) return tailFromFile();
        List<String> lines = new ArrayList<>(tail);
        if (partial.length() > 0) lines.add(partial.toString());
        return lines;
    }

    /**
     * Closes the file, renames it to its final name, and drops the in-memory tail of a finished
     * job: the server keeps thousands of finished jobs, and their tails are read back from the
     * file on demand. Also commits the {@code .part} log of a job a killed server left behind.
     */
    public synchronized void release() {
        writeCutTail();
        close();
        if (!released && !writing.equals(file)) {
            try {
                if (Files.exists(writing)) {
                    Files.move(writing, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                }
                current = file;
            } catch (IOException e) {
                LOG.log(Level.WARNING, "cannot rename job log " + writing + " to " + file.getFileName(), e);
            }
        }
        released = true;
        for (Listener listener : listeners) {
            try {
                listener.released();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "a listener of job log " + file + " failed", e);
            }
        }
        listeners.clear();
        tail.clear();
        partial.setLength(0);
        partial.trimToSize();
    }

    private List<String> tailFromFile() {
        Path file = current;
        if (!Files.isRegularFile(file)) return List.of();
        try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(file.toFile(), "r")) {
            long length = raf.length();
            int window = (int) Math.min(length, 256L * 1024);
            byte[] data = new byte[window];
            raf.seek(length - window);
            raf.readFully(data);
            String text = new String(data, StandardCharsets.UTF_8);
            List<String> lines = new ArrayList<>(List.of(text.split("\r?\n", -1)));
            if (window < length && !lines.isEmpty()) lines.remove(0); // cut mid-line
            if (!lines.isEmpty() && lines.get(lines.size() - 1).isEmpty()) lines.remove(lines.size() - 1);
            List<String> last = lines.subList(Math.max(0, lines.size() - tailLines), lines.size());
            List<String> out = new ArrayList<>(last.size());
            for (String l : last) out.add(l.length() > MAX_LINE_CHARS ? l.substring(0, MAX_LINE_CHARS) : l);
            return out;
        } catch (IOException e) {
            return List.of("(log unreadable: " + e.getMessage() + ")");
        }
    }

    /** After a cut: how much was cut, then the lines the tail kept, so the log ends as the output did. */
    private void writeCutTail() {
        if (cutBytes == 0 || out == null || writeFailed) return;
        StringBuilder sb = new StringBuilder();
        List<String> last = new ArrayList<>(tail);
        if (partial.length() > 0) last.add(partial.toString());
        sb.append("=== blender-jobs: ").append(cutBytes).append(" bytes of output were cut here (--max-log-size); the last ")
                .append(last.size()).append(" lines were (each at most ").append(MAX_LINE_CHARS).append(" characters): ===\n");
        for (String line : last) sb.append(line).append('\n');
        try {
            out.write(sb.toString().getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            LOG.log(Level.WARNING, "cannot write the tail of job log " + writing, e);
        }
        cutBytes = 0;
    }

    private static String megabytes(long bytes) {
        return bytes % (1024 * 1024) == 0 ? (bytes >> 20) + " MB" : bytes + " bytes";
    }

    public synchronized long bytes() {
        return bytes;
    }

    public synchronized void flush() {
        try {
            if (out != null) out.flush();
        } catch (IOException e) {
            LOG.log(Level.FINE, "flush of " + writing + " failed", e);
        }
    }

    public synchronized void close() {
        try {
            if (out != null) out.close();
        } catch (IOException e) {
            LOG.log(Level.FINE, "close of " + writing + " failed", e);
        }
        out = null;
    }
}
