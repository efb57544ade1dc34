package dev.blenderjobs.channel;

import com.google.gson.JsonObject;
import dev.blenderjobs.concurrent.Threads;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One authenticated connection to a worker runtime. {@link #accept} runs the handshake on a
 * fresh socket: the server sends a challenge (a random nonce), the worker answers hello with an
 * HMAC-SHA256 of it keyed with its secret (so the secret itself never crosses the network) and
 * the protocol version it speaks; a mismatch of either is refused, with the reason sent before
 * the connection closes. {@link #start} then reads messages on a thread of its own and writes
 * them from another: {@link #send} only queues, so no caller (the event loop above all) ever
 * blocks on a worker that stopped reading. A write stuck longer than the write timeout closes
 * the connection, which its owner treats as the worker's death.
 */
public final class WorkerChannel implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(WorkerChannel.class.getName());
    private static final SecureRandom RANDOM = new SecureRandom();
    /** A hello is a few hundred bytes; before a peer has proven itself it gets no more than this. */
    static final int MAX_HELLO_BYTES = 16 * 1024;
    private static final ScheduledExecutorService WATCHDOG =
            Executors.newSingleThreadScheduledExecutor(Threads.daemon("channel-watchdog"));
    private static final Object CLOSE = new Object();

    /** What the reader thread reports; called on that thread, implementations hand off. */
    public interface Listener {
        void message(FromWorker message);

        /** The worker sent something the protocol does not allow; the channel is closed after this. */
        void violation(ProtocolViolation violation);

        /** The connection ended (the worker closed it, or it broke); called once, last. */
        void closed(String why);
    }

    /** The handshake failed: the reason is for the log (and was sent to the peer when it got that far). */
    public static final class Refusal extends IOException {
        public Refusal(String reason) {
            super(reason);
        }
    }

    private final Socket socket;
    private final FromWorker.Hello hello;
    private final DataInputStream in;
    private final OutputStream out;
    private final LinkedBlockingQueue<Object> outbox = new LinkedBlockingQueue<>();
    private final Duration writeTimeout;
    private volatile long writingSince; // System.nanoTime() of the write in progress, 0 when none
    private volatile boolean closed;
    private volatile String closeReason;

    private WorkerChannel(Socket socket, FromWorker.Hello hello, DataInputStream in, Duration writeTimeout)
            throws IOException {
        this.socket = socket;
        this.hello = hello;
        this.in = in;
        // Buffered: frames queued together (a job's files and its run) go out in one write.
        this.out = new java.io.BufferedOutputStream(socket.getOutputStream(), 64 * 1024);
        this.writeTimeout = writeTimeout;
    }

    /**
     * Runs the handshake on a connection that just arrived.
     *
     * @param secretOf the secret of the worker a hello names, or null for a worker id this server
     *                 did not start
     * @param timeout  how long the peer has to answer the challenge
     * @throws Refusal when the peer is not a worker of this server speaking this protocol
     */
    public static WorkerChannel accept(Socket s, Function<String, byte[]> secretOf, Duration timeout,
                                       Duration writeTimeout) throws IOException {
        s.setSoTimeout((int) Math.max(1, Math.min(Integer.MAX_VALUE, timeout.toMillis())));
        s.setTcpNoDelay(true);
        String nonce = randomHex(32);
        FrameCodec.write(s.getOutputStream(), ChannelCodec.encode(new ToWorker.Challenge(nonce)));
        DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream(), 64 * 1024));
        JsonObject frame = FrameCodec.read(in, MAX_HELLO_BYTES);
        if (frame == null) throw new Refusal("the peer closed the connection without saying hello");
        FromWorker first;
        try {
            first = ChannelCodec.decode(frame);
        } catch (ProtocolViolation v) {
            // A runtime of another protocol version may not even parse as this one's hello.
            throw refuse(s, "its hello is not one of channel protocol " + ChannelCodec.PROTOCOL + " (" + v.getMessage()
                    + "); is it the runtime shipped with this server?");
        }
        if (!(first instanceof FromWorker.Hello hello)) throw refuse(s, "it did not begin with hello");
        byte[] secret = secretOf.apply(hello.worker());
        if (secret == null || !MessageDigest.isEqual(proof(secret, nonce, hello.worker()).getBytes(StandardCharsets.UTF_8),
                hello.proof().getBytes(StandardCharsets.UTF_8))) {
            throw refuse(s, "it did not prove it holds the secret of worker \"" + hello.worker() + "\"");
        }
        if (hello.protocol() != ChannelCodec.PROTOCOL) {
            throw refuse(s, "worker " + hello.worker() + " runs a blender-jobs runtime " + hello.runtimeVersion()
                    + " speaking channel protocol " + hello.protocol() + ", but this server speaks protocol "
                    + ChannelCodec.PROTOCOL + ". Use the runtime that ships with this server (it is written "
                    + "next to the workers at start-up; on a cluster, install the same blender-jobs version).");
        }
        FrameCodec.write(s.getOutputStream(), ChannelCodec.encode(new ToWorker.Welcome(hello.worker())));
        s.setSoTimeout(0);
        return new WorkerChannel(s, hello, in, writeTimeout);
    }

    /** The proof a worker gives: HMAC-SHA256 of "nonce:worker" keyed with its secret, in hex. */
    public static String proof(byte[] secret, String nonce, String worker) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            return HexFormat.of().formatHex(mac.doFinal((nonce + ":" + worker).getBytes(StandardCharsets.UTF_8)));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is part of every Java 17", e);
        }
    }

    private static Refusal refuse(Socket s, String reason) {
        try {
            FrameCodec.write(s.getOutputStream(), ChannelCodec.encode(new ToWorker.Refused(reason)));
        } catch (IOException | RuntimeException ignored) {
            // The peer may be gone already; the refusal is logged by the caller either way.
        }
        return new Refusal(reason);
    }

    public static String randomHex(int bytes) {
        byte[] b = new byte[bytes];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    public FromWorker.Hello hello() {
        return hello;
    }

    public String remoteAddress() {
        return String.valueOf(socket.getRemoteSocketAddress());
    }

    /** Starts the reader and writer threads. */
    public void start(String name, Listener listener) {
        Threads.startDaemon(name + "-channel-out", this::writeLoop);
        Threads.startDaemon(name + "-channel-in", () -> readLoop(listener));
    }

    /** Queues a message for the worker; never blocks. Dropped (and logged) after close. */
    public void send(ToWorker message) {
        if (closed) {
            LOG.fine("message to a closed worker channel dropped: " + message.getClass().getSimpleName());
            return;
        }
        queued.incrementAndGet();
        outbox.add(message);
    }

    /**
     * Whether everything queued so far has been written to the socket (an input file streaming to
     * a pilot, and the run behind it, are not yet). Read from any thread.
     */
    public boolean drained() {
        return queued.get() == 0 || closed;
    }

    /** Messages and files queued and not yet written; the writer counts them down. */
    private final java.util.concurrent.atomic.AtomicInteger queued = new java.util.concurrent.atomic.AtomicInteger();

    /**
     * Queues a file to be sent as {@link ToWorker.FileChunk}s of the job's input {@code name};
     * never blocks. The writer thread reads it chunk by chunk as it sends, so memory stays at one
     * chunk whatever the file's size. A file that cannot be read is logged and sent without its
     * last chunk, which the worker treats as missing (the attempt fails with SETUP_FAILED).
     */
    public void sendFile(String jobId, String name, Path file) {
        if (!ToWorker.INPUT_NAMES.contains(name)) throw new IllegalArgumentException("not an input: " + name);
        if (closed) return;
        queued.incrementAndGet();
        outbox.add(new FileStream(jobId, name, file));
    }

    /** An input file waiting in the outbox, read only when its turn comes. */
    private record FileStream(String jobId, String name, Path file) {
    }

    private void readLoop(Listener listener) {
        String why = "the worker closed its channel";
        try {
            while (true) {
                FrameCodec.Frame frame = FrameCodec.readFrame(in);
                if (frame == null) break;
                listener.message(ChannelCodec.decode(frame));
            }
        } catch (ProtocolViolation v) {
            why = v.getMessage();
            listener.violation(v);
        } catch (IOException e) {
            why = closeReason != null ? closeReason : "the channel broke: " + e.getMessage();
        } catch (RuntimeException e) {
            why = "the channel's reader failed: " + e;
            LOG.log(Level.WARNING, why, e);
        } finally {
            close(null);
            listener.closed(closeReason != null ? closeReason : why);
        }
    }

    private void writeLoop() {
        java.util.concurrent.ScheduledFuture<?> watch = WATCHDOG.scheduleWithFixedDelay(this::checkStuckWrite,
                1, 1, TimeUnit.SECONDS);
        try {
            while (true) {
                Object next = outbox.take();
                if (next == CLOSE || closed) {
                    flushQuietly();
                    return;
                }
                try {
                    if (next instanceof FileStream f) {
                        stream(f);
                    } else {
                        write(ChannelCodec.frame((ToWorker) next));
                    }
                } finally {
                    queued.decrementAndGet();
                }
            }
        } catch (IOException e) {
            close("the worker's channel broke while the server was writing to it: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            watch.cancel(false);
        }
    }

    private void flushQuietly() {
        try {
            out.flush();
        } catch (IOException ignored) {
            // closing anyway
        }
    }

    /** Writes a frame, flushing when nothing else waits in the outbox (one write for a batch). */
    private void write(byte[] frame) throws IOException {
        writingSince = System.nanoTime();
        out.write(frame);
        if (outbox.isEmpty()) out.flush();
        writingSince = 0;
    }

    /** The writer thread's read buffer for files, made on first use and kept (one chunk per channel). */
    private byte[] fileBuffer;

    /** Sends a file chunk by chunk; a read error is the job's problem, a write error the channel's. */
    private void stream(FileStream f) throws IOException {
        if (fileBuffer == null) fileBuffer = new byte[ChannelCodec.CHUNK_BYTES];
        byte[] buf = fileBuffer;
        long offset = 0;
        InputStream file;
        try {
            file = Files.newInputStream(f.file(), LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            LOG.warning("could not send input " + f.name() + " of job " + f.jobId() + ": " + e);
            return;
        }
        try (file) {
            while (true) {
                int n;
                try {
                    n = file.readNBytes(buf, 0, buf.length);
                } catch (IOException e) {
                    LOG.warning("could not send input " + f.name() + " of job " + f.jobId() + ": " + e);
                    return;
                }
                // A short read is the end; a file of whole chunks ends with an empty last chunk.
                boolean last = n < buf.length;
                JsonObject header = ChannelCodec.encode(new ToWorker.FileChunk(f.jobId(), f.name(), offset, last, null));
                write(FrameCodec.encodeBinary(header, buf, 0, n));
                offset += n;
                if (last) return;
            }
        }
    }

    private void checkStuckWrite() {
        long since = writingSince;
        if (since != 0 && System.nanoTime() - since > writeTimeout.toNanos()) {
            close("the worker stopped reading its channel (a write waited more than " + writeTimeout.toSeconds() + " s)");
        }
    }

    /** Closes the connection; the reader then reports {@link Listener#closed} with the reason. */
    public void close(String reason) {
        if (reason != null && closeReason == null) closeReason = reason;
        if (closed) return;
        closed = true;
        outbox.add(CLOSE);
        try {
            socket.close();
        } catch (IOException ignored) {
            // Nothing to do: closing is what we wanted.
        }
    }

    @Override
    public void close() {
        close(null);
    }
}
