package dev.blenderjobs.workers.local;

import dev.blenderjobs.workers.JobLog;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Reads a worker's merged stdout/stderr continuously on its own thread (a pipe read only at
 * exit deadlocks once it fills) and routes each line to the log of the job that printed it.
 * The worker runtime brackets a job's output with marker lines carrying a per-process nonce;
 * output outside any job goes to the worker's own tail and the server log at FINE level.
 */
public final class OutputDrainer implements Runnable {
    private static final Logger LOG = Logger.getLogger(OutputDrainer.class.getName());
    /** Longest chunk handled as one line; longer output is passed on in pieces. */
    private static final int MAX_LINE_BYTES = 64 * 1024;

    private final InputStream input;
    private final String workerId;
    private final byte[] markerPrefix;
    private final Map<String, JobLog> expected = new HashMap<>();
    private final Set<String> ended = new HashSet<>();
    private final JobLog workerTail;
    private JobLog current;
    private boolean eof;
    /** Runs (holding this drainer's lock) each time {@link #awaitEnd} is about to wait. */
    private final Runnable beforeWait;

    public OutputDrainer(InputStream input, String workerId, String marker, JobLog workerTail) {
        this(input, workerId, marker, workerTail, () -> { });
    }

    /**
     * With a hook run just before {@link #awaitEnd} waits (with the lock held, so the marker
     * that ends the wait cannot be handled before the wait has begun): tests learn that a
     * caller is waiting from it instead of sleeping.
     */
    OutputDrainer(InputStream input, String workerId, String marker, JobLog workerTail, Runnable beforeWait) {
        this.input = input;
        this.workerId = workerId;
        this.markerPrefix = ("\u001e" + marker + ":").getBytes(StandardCharsets.UTF_8);
        this.workerTail = workerTail;
        this.beforeWait = beforeWait;
    }

    /** Registers where the output of a job goes, before the job is sent to the worker. */
    public synchronized void expect(String jobId, JobLog log) {
        expected.put(jobId, log);
    }

    /** Waits until the end marker of the job has been read (or the stream ended). */
    public synchronized boolean awaitEnd(String jobId, long timeoutMillis) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMillis;
        while (!ended.contains(jobId) && !eof) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) return false;
            beforeWait.run();
            wait(left);
        }
        return ended.contains(jobId);
    }

    @Override
    public void run() {
        byte[] buf = new byte[64 * 1024];
        ByteArrayOutputStream line = new ByteArrayOutputStream(256);
        try {
            int n;
            while ((n = input.read(buf)) >= 0) {
                for (int i = 0; i < n; i++) {
                    byte b = buf[i];
                    line.write(b);
                    if (b == '\n') {
                        handleLine(line.toByteArray());
                        line.reset();
                    } else if (line.size() >= MAX_LINE_BYTES) {
                        line = passOnLongLine(line);
                    }
                }
            }
        } catch (IOException e) {
            LOG.log(Level.FINE, "output of worker " + workerId + " closed: " + e.getMessage());
        } finally {
            if (line.size() > 0) handleLine(line.toByteArray());
            synchronized (this) {
                if (current != null) current.flush();
                eof = true;
                notifyAll();
            }
        }
    }

    /**
     * Passes on most of an over-long line, keeping its end when it may be the start of a
     * marker (which begins with the 0x1E byte), so a marker is never cut in two.
     */
    private ByteArrayOutputStream passOnLongLine(ByteArrayOutputStream line) {
        byte[] bytes = line.toByteArray();
        int keepFrom = bytes.length;
        for (int i = bytes.length - 1; i >= Math.max(0, bytes.length - 256); i--) {
            if (bytes[i] == 0x1e) {
                keepFrom = i;
                break;
            }
        }
        handleLine(java.util.Arrays.copyOfRange(bytes, 0, keepFrom));
        ByteArrayOutputStream rest = new ByteArrayOutputStream(256);
        rest.write(bytes, keepFrom, bytes.length - keepFrom);
        return rest;
    }

    private void handleLine(byte[] bytes) {
        int at = indexOf(bytes, markerPrefix);
        if (at < 0) {
            emit(bytes, 0, bytes.length);
            return;
        }
        if (at > 0) emit(bytes, 0, at);
        String rest = new String(bytes, at + markerPrefix.length, bytes.length - at - markerPrefix.length,
                StandardCharsets.UTF_8).strip();
        if (rest.endsWith("\u001e")) rest = rest.substring(0, rest.length() - 1);
        synchronized (this) {
            if (rest.startsWith("begin:")) {
                String jobId = rest.substring("begin:".length());
                current = expected.get(jobId);
            } else if (rest.startsWith("end:")) {
                String jobId = rest.substring("end:".length());
                if (current != null) current.flush();
                current = null;
                expected.remove(jobId);
                ended.add(jobId);
                notifyAll();
            }
        }
    }

    private void emit(byte[] bytes, int offset, int length) {
        JobLog target;
        synchronized (this) {
            target = current;
        }
        if (target != null) {
            target.append(bytes, offset, length);
        } else {
            workerTail.append(bytes, offset, length);
            if (LOG.isLoggable(Level.FINE)) {
                LOG.fine("[" + workerId + "] " + new String(bytes, offset, length, StandardCharsets.UTF_8).stripTrailing());
            }
        }
    }

    static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i <= haystack.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) continue outer;
            }
            return i;
        }
        return -1;
    }
}
