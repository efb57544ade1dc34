package dev.blenderjobs.workers.slurm;

import dev.blenderjobs.channel.WorkerChannel;
import dev.blenderjobs.concurrent.Threads;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Semaphore;
import java.util.function.Function;
import java.util.logging.Logger;

/**
 * The one listening socket every pilot of this server connects to, bound to one address of this
 * host (never every address). Each connection runs the channel's HMAC handshake on a short-lived
 * thread of its own, so a slow or hostile peer holds up no one: the peer must prove it holds the
 * secret of a pilot this server submitted and that has not connected yet, without the secret ever
 * crossing the network. A connection that fails is answered "refused" with the reason, closed
 * and logged, and never given a job.
 */
final class PilotListener implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(PilotListener.class.getName());
    /** Handshakes in progress at once; more connections than this are closed at once. */
    static final int MAX_HANDSHAKES = 32;

    /** Who may connect: the pilots still waiting for their connection. */
    interface Pilots {
        /** The secret of the pilot with this id that has not connected yet, or null. */
        byte[] secretOf(String workerId);

        /** A pilot proved itself: hand it its channel (it closes the channel if it no longer wants one). */
        void connected(String workerId, WorkerChannel channel);
    }

    private final ServerSocket server;
    private final Pilots pilots;
    private final Duration handshakeTimeout;
    private final Duration writeTimeout;
    private final Semaphore handshakes = new Semaphore(MAX_HANDSHAKES);

    PilotListener(InetSocketAddress bind, Pilots pilots, Duration handshakeTimeout, Duration writeTimeout)
            throws IOException {
        if (bind.getAddress() == null || bind.getAddress().isAnyLocalAddress()) {
            throw new IOException("refusing to listen on every address of this host (" + bind + "); give --listen "
                    + "one address of this host that the nodes can reach");
        }
        this.server = new ServerSocket();
        this.server.bind(bind, 64);
        this.pilots = pilots;
        this.handshakeTimeout = handshakeTimeout;
        this.writeTimeout = writeTimeout;
        Threads.startDaemon("pilot-listener", this::acceptLoop);
    }

    /** The address and port pilots connect to. */
    InetSocketAddress address() {
        return (InetSocketAddress) server.getLocalSocketAddress();
    }

    private void acceptLoop() {
        while (!server.isClosed()) {
            Socket s;
            try {
                s = server.accept();
            } catch (IOException e) {
                if (!server.isClosed()) LOG.warning("pilot listener: " + e.getMessage());
                continue;
            }
            if (!handshakes.tryAcquire()) {
                LOG.warning("refused a connection from " + s.getRemoteSocketAddress() + ": " + MAX_HANDSHAKES
                        + " handshakes are already in progress");
                closeQuietly(s);
                continue;
            }
            Threads.startDaemon("pilot-handshake", () -> {
                try {
                    handshake(s);
                } finally {
                    handshakes.release();
                }
            });
        }
    }

    private void handshake(Socket s) {
        try {
            WorkerChannel c = WorkerChannel.accept(s, pilots::secretOf, handshakeTimeout, writeTimeout);
            pilots.connected(c.hello().worker(), c);
        } catch (IOException | RuntimeException e) {
            LOG.warning("refused a connection to the pilot channel from " + s.getRemoteSocketAddress() + ": "
                    + e.getMessage());
            closeQuietly(s);
        }
    }

    /** A secret as the handshake wants it. */
    static byte[] bytes(String secret) {
        return secret.getBytes(StandardCharsets.UTF_8);
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // best effort
        }
    }

    @Override
    public void close() {
        try {
            server.close();
        } catch (IOException ignored) {
            // nothing to do
        }
    }

    /** For {@link Function}-style lookups in tests. */
    static Pilots of(Function<String, byte[]> secrets, java.util.function.BiConsumer<String, WorkerChannel> connected) {
        return new Pilots() {
            @Override
            public byte[] secretOf(String workerId) {
                return secrets.apply(workerId);
            }

            @Override
            public void connected(String workerId, WorkerChannel channel) {
                connected.accept(workerId, channel);
            }
        };
    }
}
