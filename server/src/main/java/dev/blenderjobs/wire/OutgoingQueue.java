package dev.blenderjobs.wire;

import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.ShowMessageParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressParams;
import org.eclipse.lsp4j.jsonrpc.MessageConsumer;
import org.eclipse.lsp4j.jsonrpc.json.MessageJsonHandler;
import org.eclipse.lsp4j.jsonrpc.messages.Message;
import org.eclipse.lsp4j.jsonrpc.messages.NotificationMessage;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseMessage;
import dev.blenderjobs.concurrent.Trace;
import dev.blenderjobs.wire.messages.JsonFile;
import dev.blenderjobs.wire.messages.Messages;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Everything the server sends goes through here: LSP4J hands each message over (on whatever
 * thread completed a request or raised a notification, the job event loop among them) and one
 * writer thread writes it to stdout. So a client that stops reading blocks only the writer; the
 * event loop, timeouts and workers go on.
 *
 * <p>What waits is bounded, except answers:
 * <ul>
 *   <li>Responses (and any request the server sends) are never dropped.</li>
 *   <li>{@code job/progress} and {@code $/progress} "report" notifications are coalesced per job
 *       (per token): one waiting for the client is replaced by the newer one, in its place. A
 *       progress notification never moves past any other notification: every other notification
 *       seals the progress waiting before it, so a later report queues behind it (a job's last
 *       report still comes before its next state, and a retry's reports never overtake the state
 *       change that started the retry). Beyond {@code progressBytes} of waiting notifications, a
 *       progress notification that has nothing to replace is dropped and counted.</li>
 *   <li>{@code job/log} notifications (live logs, already bounded per job and second by
 *       {@link LogFollowers}) keep their place, but beyond {@code progressBytes} of waiting
 *       notifications they are dropped and counted like progress: a followed job that prints a lot
 *       for a client that does not read must not push its job states out.</li>
 *   <li>Every other notification (job/stateChanged, job/removed, window/showMessage,
 *       textDocument/publishDiagnostics, $/progress begin and end) is kept up to
 *       {@code notificationBytes} of waiting notifications. Beyond that the client has not read
 *       for so long that keeping more would only exhaust memory: they are dropped, counted and
 *       logged as SEVERE.</li>
 * </ul>
 * When the client reads again (waiting notifications back under half of {@code progressBytes})
 * after anything was dropped, it gets a {@code window/showMessage} of kind
 * {@code NOTIFICATIONS_DROPPED} saying how many and what to do (ask getJob/listJobs).
 */
public final class OutgoingQueue implements MessageConsumer {
    private static final Logger LOG = Logger.getLogger(OutgoingQueue.class.getName());
    public static final String DROPPED_KIND = "NOTIFICATIONS_DROPPED";
    private static final String LOG_METHOD = "job/log";
    /** At most this much is written per system call (unless one message is larger). */
    static final int BATCH_BYTES = 64 * 1024;

    /**
     * @param progressBytes     waiting notifications beyond which progress is dropped
     * @param notificationBytes waiting notifications beyond which every notification is dropped
     */
    public record Limits(long progressBytes, long notificationBytes) {
        /** 4 MiB is thousands of notifications; 32 MiB is far beyond any client that still reads. */
        public static final Limits DEFAULT = new Limits(4L << 20, 32L << 20);
    }

    private enum Kind {
        /** Responses and requests: never dropped, not counted against the limits. */
        ANSWER,
        /** A notification that is kept up to the hard limit, and seals waiting progress. */
        KEPT,
        /** A progress report: coalesced per key, dropped beyond the soft limit. */
        PROGRESS,
        /** A live-log notification: never coalesced, seals waiting progress, dropped beyond the soft limit. */
        LIVE_LOG
    }

    private static final class Entry {
        final Kind kind;
        final String key;
        byte[] header;
        byte[] body;
        Message message;
        /** An answer whose result is streamed from a file: body is then the envelope before it. */
        JsonFile file;
        byte[] after;

        Entry(Kind kind, String key, Message message, byte[] body) {
            this.kind = kind;
            this.key = key;
            set(message, body);
        }

        /** A response whose result is the file's JSON: {@code before} + the file + {@code after}. */
        Entry(Message message, byte[] before, JsonFile file, byte[] after) {
            this.kind = Kind.ANSWER;
            this.key = null;
            this.message = message;
            this.body = before;
            this.file = file;
            this.after = after;
            this.header = ("Content-Length: " + (before.length + file.size() + after.length) + "\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII);
        }

        void set(Message message, byte[] body) {
            this.message = message;
            this.body = body;
            this.header = ("Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
        }

        long size() {
            return header.length + body.length + (file == null ? 0 : file.size() + after.length);
        }
    }

    private final OutputStream out;
    private final MessageJsonHandler json;
    private final Consumer<Message> afterWrite;
    private final Limits limits;
    private final Thread writer;

    // Guarded by this.
    private final ArrayDeque<Entry> queue = new ArrayDeque<>();
    /** Progress entries still waiting that a newer report of the same key may replace. */
    private final Map<String, Entry> replaceable = new HashMap<>();
    /** Bytes of notifications queued or being written. */
    private long notificationBytes;
    private boolean writing;
    private long droppedProgress;
    private long droppedLog;
    private long droppedOther;
    private long coalesced;
    /** stdout failed (the client closed it): nothing more can be sent. */
    private boolean broken;

    /**
     * @param afterWrite runs on the writer thread right after a message is written (e.g. to
     *                   release notifications once the initialize answer is out)
     */
    public OutgoingQueue(OutputStream out, MessageJsonHandler json, Consumer<Message> afterWrite, Limits limits) {
        this.out = out;
        this.json = json;
        this.afterWrite = afterWrite;
        this.limits = limits;
        this.writer = new Thread(this::writeLoop, "client-writer");
        writer.setDaemon(true);
        writer.start();
    }

    /** Queues a message; never blocks on the client. */
    @Override
    public void consume(Message message) {
        if (Trace.ON && message instanceof ResponseMessage r && r.getResult() instanceof Messages.AddJobResult a) {
            Trace.mark(a.jobId(), "enqueued");
        }
        String key = progressKey(message);
        Kind kind = key != null ? Kind.PROGRESS
                : message instanceof NotificationMessage n ? (LOG_METHOD.equals(n.getMethod()) ? Kind.LIVE_LOG : Kind.KEPT)
                : Kind.ANSWER;
        // Serialized here, on the caller's thread, as LSP4J does: the size decides what is kept.
        Entry entry;
        try {
            entry = message instanceof ResponseMessage r && r.getResult() instanceof JsonFile file
                    ? streamed(r, file)
                    : new Entry(kind, key, message, json.serialize(message).getBytes(StandardCharsets.UTF_8));
        } catch (RuntimeException | Error e) {
            // LSP4J would answer an OutOfMemoryError here with -32603 and go on half broken.
            dev.blenderjobs.concurrent.Fatal.check(e);
            throw e;
        }
        synchronized (this) {
            if (broken) {
                if (entry.file != null) entry.file.close();
                return;
            }
            switch (kind) {
                case ANSWER -> queue.addLast(entry);
                case KEPT -> {
                    if (notificationBytes + entry.size() > limits.notificationBytes()) {
                        if (droppedOther++ == 0) {
                            LOG.severe("The client has not read the server's output for a long time ("
                                    + notificationBytes + " bytes of notifications wait): job state notifications "
                                    + "are being dropped; the client will be told when it reads again.");
                        }
                        return;
                    }
                    replaceable.clear();
                    queue.addLast(entry);
                    notificationBytes += entry.size();
                }
                case LIVE_LOG -> {
                    if (notificationBytes + entry.size() > limits.progressBytes()) {
                        if (droppedLog++ == 0 && droppedOther == 0) {
                            LOG.warning("The client is not reading the server's output (" + notificationBytes
                                    + " bytes of notifications wait): live-log notifications (job/log) are dropped "
                                    + "until it reads again.");
                        }
                        return;
                    }
                    replaceable.clear(); // a later progress report must not move past this text
                    queue.addLast(entry);
                    notificationBytes += entry.size();
                }
                case PROGRESS -> {
                    Entry waiting = replaceable.get(key);
                    if (waiting != null) {
                        notificationBytes += entry.size() - waiting.size();
                        waiting.set(entry.message, entry.body);
                        coalesced++;
                        return;
                    }
                    if (notificationBytes + entry.size() > limits.progressBytes()) {
                        if (droppedProgress++ == 0 && droppedOther == 0) {
                            LOG.warning("The client is not reading the server's output (" + notificationBytes
                                    + " bytes of notifications wait): progress notifications are dropped until it "
                                    + "reads again.");
                        }
                        return;
                    }
                    replaceable.put(key, entry);
                    queue.addLast(entry);
                    notificationBytes += entry.size();
                }
            }
            notifyAll();
        }
    }

    /**
     * Waits until everything queued so far is written (or stdout failed), at most {@code timeout}:
     * a server about to exit lets its last notifications out, but never waits forever on a
     * client that does not read.
     *
     * @return true if everything was written
     */
    public synchronized boolean drain(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while ((writing || !queue.isEmpty()) && !broken) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                LOG.warning("the client did not read the server's last " + queue.size() + " messages");
                return false;
            }
            wait(Math.max(1, left / 1_000_000));
        }
        return !broken;
    }

    /** How many progress notifications were replaced by a newer one while waiting (for tests and logs). */
    synchronized long coalesced() {
        return coalesced;
    }

    /**
     * Takes what waits (up to {@link #BATCH_BYTES}, at least one message) and writes it in one
     * go: under load, many small notifications cost one system call instead of two each.
     */
    private void writeLoop() {
        while (true) {
            List<Entry> batch = new ArrayList<>();
            synchronized (this) {
                while (queue.isEmpty()) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                long bytes = 0;
                while (!queue.isEmpty() && (batch.isEmpty() || (bytes + queue.peekFirst().size() <= BATCH_BYTES
                        && queue.peekFirst().file == null && batch.get(0).file == null))) {
                    Entry entry = queue.pollFirst();
                    if (entry.key != null) replaceable.remove(entry.key, entry); // being written: no longer replaceable
                    batch.add(entry);
                    bytes += entry.size();
                }
                writing = true;
            }
            boolean written = write(batch);
            synchronized (this) {
                writing = false;
                if (written) { // (a failed write has emptied the queue and its count)
                    for (Entry entry : batch) if (entry.kind != Kind.ANSWER) notificationBytes -= entry.size();
                }
                if (written && droppedProgress + droppedLog + droppedOther > 0
                        && notificationBytes <= limits.progressBytes() / 2) {
                    tellDropped();
                }
                notifyAll();
            }
            if (!written) continue;
            for (Entry entry : batch) {
                if (Trace.ON) trace(entry.message);
                try {
                    afterWrite.accept(entry.message);
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "after writing a message", e);
                }
            }
        }
    }

    /** The stages of a job the client has just been told of (Trace). */
    private static void trace(Message message) {
        if (message instanceof ResponseMessage r && r.getResult() instanceof Messages.AddJobResult a) {
            Trace.mark(a.jobId(), "answered");
        } else if (message instanceof NotificationMessage n && n.getParams() instanceof JobStateChangedParams p
                && ("COMPLETED".equals(p.state()) || "FAILED".equals(p.state()))) {
            Trace.end(p.jobId(), "told");
        }
    }

    /** The envelope of a response whose result is streamed from a file. */
    private static Entry streamed(ResponseMessage r, JsonFile file) {
        String id = r.getRawId() == null ? "null"
                : r.getRawId().isLeft() ? quote(r.getRawId().getLeft()) : r.getRawId().getRight().toString();
        byte[] before = ("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"result\":").getBytes(StandardCharsets.UTF_8);
        return new Entry(r, before, file, "}".getBytes(StandardCharsets.US_ASCII));
    }

    private static String quote(String s) {
        return new com.google.gson.JsonPrimitive(s).toString();
    }

    /**
     * Streams a file's JSON in chunks with bounded memory: the bytes of the open file that was
     * checked. Should the file have shrunk since (which nothing of the server does), the frame
     * cannot be kept whole: that is logged, and the message ends short.
     */
    private void writeFile(JsonFile file) throws IOException {
        java.nio.ByteBuffer buffer = java.nio.ByteBuffer.allocate(256 * 1024);
        long position = 0;
        try {
            while (position < file.size()) {
                buffer.clear();
                buffer.limit((int) Math.min(buffer.capacity(), file.size() - position));
                int n = file.channel().read(buffer, position);
                if (n < 0) {
                    LOG.severe("a result file shrank while it was being sent (" + position + " of " + file.size()
                            + " bytes): the client gets a broken answer; nothing of the server writes result files "
                            + "after they are checked");
                    return;
                }
                out.write(buffer.array(), 0, n);
                position += n;
            }
        } finally {
            file.close();
        }
    }

    private boolean write(List<Entry> batch) {
        try {
            if (batch.size() == 1 && batch.get(0).file != null) {
                Entry entry = batch.get(0);
                out.write(entry.header);
                out.write(entry.body);
                writeFile(entry.file);
                out.write(entry.after);
            } else if (batch.size() == 1 && batch.get(0).body.length > BATCH_BYTES) {
                out.write(batch.get(0).header);
                out.write(batch.get(0).body); // a large answer is not copied
            } else {
                java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream(BATCH_BYTES);
                for (Entry entry : batch) {
                    all.write(entry.header);
                    all.write(entry.body);
                }
                all.writeTo(out);
            }
            out.flush();
            return true;
        } catch (IOException e) {
            synchronized (this) {
                if (!broken) {
                    LOG.warning("cannot write to the client (stdout): " + e.getMessage() + "; nothing more will be sent");
                    LOG.log(Level.FINE, "stdout failed", e);
                }
                broken = true;
                for (Entry entry : batch) if (entry.file != null) entry.file.close();
                for (Entry entry : queue) if (entry.file != null) entry.file.close();
                queue.clear();
                replaceable.clear();
                notificationBytes = 0;
                notifyAll();
            }
            return false;
        }
    }

    /** The client reads again after notifications were dropped: tell it (and the log) how many. Holds the lock. */
    private void tellDropped() {
        List<String> parts = new ArrayList<>();
        if (droppedOther > 0) {
            parts.add(droppedOther + " job notifications (job/stateChanged, job/removed, window/showMessage, "
                    + "textDocument/publishDiagnostics, $/progress begin and end)");
        }
        if (droppedProgress > 0 || droppedOther > 0) {
            parts.add(droppedProgress + " progress notifications (job/progress, $/progress reports)");
        }
        if (droppedLog > 0) parts.add(droppedLog + " live-log notifications (job/log)");
        String what = String.join(" and ", parts);
        String text = "The client did not read the server's output for a while, so the server dropped " + what
                + ". Jobs were not affected. Ask getJob or listJobs for the current state of the jobs you follow"
                + (droppedLog > 0 ? "; a job's log file (getJob logFile) has all its output." : ".");
        int type = droppedOther == 0 ? ShowMessageParams.WARNING : ShowMessageParams.ERROR;
        LOG.log(droppedOther == 0 ? Level.WARNING : Level.SEVERE, text);
        droppedProgress = 0;
        droppedLog = 0;
        droppedOther = 0;
        NotificationMessage notice = new NotificationMessage();
        notice.setJsonrpc("2.0");
        notice.setMethod("window/showMessage");
        notice.setParams(new ShowMessageParams(type, text, DROPPED_KIND));
        Entry entry = new Entry(Kind.KEPT, null, notice, json.serialize(notice).getBytes(StandardCharsets.UTF_8));
        replaceable.clear();
        queue.addLast(entry);
        notificationBytes += entry.size();
    }

    /** The coalescing key of a progress report (job/progress per job, $/progress report per token), else null. */
    private static String progressKey(Message message) {
        if (!(message instanceof NotificationMessage n)) return null;
        if ("job/progress".equals(n.getMethod()) && n.getParams() instanceof JobProgressParams p) {
            return "job/progress " + p.jobId();
        }
        if ("$/progress".equals(n.getMethod()) && n.getParams() instanceof WorkDoneProgressParams p
                && p.value() != null && "report".equals(p.value().kind())) {
            return "$/progress " + p.token();
        }
        return null;
    }
}
