package dev.blenderjobs.workers;

import com.google.gson.JsonObject;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One headless Blender process, from start to reaped exit. A supervisor thread starts it,
 * waits for its runtime to connect back over a private loopback socket and prove itself with
 * a per-process secret, then reads its messages until the channel closes; an output drainer
 * thread reads its console. Whatever happens, the supervisor ends by making sure the whole
 * process tree is gone and reporting {@link Listener#exited} exactly once.
 */
public final class WorkerProcess {
    private static final Logger LOG = Logger.getLogger(WorkerProcess.class.getName());
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final long END_MARKER_WAIT_MS = 5000;

    /** How to start a worker; shared by every process of the pool. */
    public record Launch(Path blender, Path runtimeScript, Duration startTimeout, Duration progressInterval,
                         Duration stopGrace) {
    }

    /** Called on the supervisor thread; implementations hand off to the event loop. */
    public interface Listener {
        void ready(WorkerProcess worker, JsonObject hello);

        /** A progress or result message; a result arrives after the job's output has been read. */
        void message(WorkerProcess worker, JsonObject message);

        void exited(WorkerProcess worker, Exit exit);
    }

    /**
     * How a process ended.
     *
     * @param connected   whether its runtime ever connected (false = failed to start)
     * @param exitCode    the exit code, 128+N for signal N
     * @param problem     what went wrong on our side, if anything (e.g. no connection in time)
     * @param consoleTail its last console lines outside any job
     * @param crashReport the *.crash.txt Blender wrote, if any
     */
    public record Exit(boolean connected, int exitCode, String problem, List<String> consoleTail, String crashReport) {
    }

    private final String id;
    private final Path dir;
    private final Launch launch;
    private final Listener listener;
    private final JobLog console;
    private volatile Process process;
    private volatile OutputDrainer drainer;
    private volatile OutputStream channelOut;
    private volatile Socket socket;

    public WorkerProcess(String id, Path dir, Launch launch, Listener listener) {
        this.id = id;
        this.dir = dir;
        this.launch = launch;
        this.listener = listener;
        this.console = new JobLog(dir.resolve("console.log"), 50);
    }

    public String id() {
        return id;
    }

    public long pid() {
        Process p = process;
        return p == null ? -1 : p.pid();
    }

    public OptionalLong residentBytes() {
        Process p = process;
        return p == null || !p.isAlive() ? OptionalLong.empty() : ProcessTrees.residentBytes(p.pid());
    }

    /** Starts the process on a new supervisor thread; returns at once. */
    public void start() {
        Thread t = new Thread(this::supervise, "worker-" + id);
        t.setDaemon(true);
        t.start();
    }

    /** Registers the log that receives a job's console output; call before {@link #send}. */
    public void expectOutput(String jobId, JobLog log) {
        OutputDrainer d = drainer;
        if (d != null) d.expect(jobId, log);
    }

    /** Sends a message to the runtime. Thread-safe. */
    public void send(JsonObject message) throws IOException {
        OutputStream out = channelOut;
        if (out == null) throw new IOException("worker " + id + " is not connected");
        synchronized (out) {
            FrameCodec.write(out, message);
        }
    }

    /** Asks the runtime to exit after its current job; kills it if it has not after the grace period. */
    public void stop() {
        try {
            JsonObject bye = new JsonObject();
            bye.addProperty("type", "shutdown");
            send(bye);
        } catch (IOException e) {
            LOG.log(Level.FINE, "worker " + id + " could not be asked to stop: " + e.getMessage());
        }
        Process p = process;
        if (p != null) {
            CompletableFuture.delayedExecutor(launch.stopGrace().toMillis(), TimeUnit.MILLISECONDS)
                    .execute(() -> {
                        if (p.isAlive()) {
                            LOG.warning("worker " + id + " did not stop in time; killing it");
                            ProcessTrees.terminate(p.toHandle(), Duration.ofSeconds(1));
                        }
                    });
        }
    }

    /** Kills the process tree now (TERM, then KILL after a short grace), off the caller's thread. */
    public void kill() {
        Process p = process;
        if (p == null) return;
        Thread t = new Thread(() -> ProcessTrees.terminate(p.toHandle(), Duration.ofMillis(500)), "kill-" + id);
        t.setDaemon(true);
        t.start();
    }

    /** Waits for the process to exit by itself; true if it did. */
    public boolean awaitExit(Duration timeout) {
        Process p = process;
        if (p == null) return true;
        try {
            return p.waitFor(Math.max(0, timeout.toMillis()), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** Kills the process tree and waits for it (for server shutdown). */
    public void killAndWait(Duration grace) {
        Process p = process;
        if (p != null) ProcessTrees.terminate(p.toHandle(), grace);
    }

    private void supervise() {
        boolean connected = false;
        String problem = null;
        Thread drainerThread = null;
        try (ServerSocket server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
            String secret = randomHex(32);
            Path tmp = dir.resolve("tmp");
            Files.createDirectories(tmp);
            Files.createDirectories(dir.resolve("config"));
            ProcessBuilder pb = new ProcessBuilder(
                    launch.blender().toString(), "-b", "--factory-startup", "-noaudio",
                    "--python-exit-code", "1", "--python", launch.runtimeScript().toString());
            pb.directory(dir.toFile());
            pb.redirectErrorStream(true);
            Map<String, String> env = pb.environment();
            env.remove("PYTHONPATH");
            env.remove("PYTHONHOME");
            env.remove("PYTHONSTARTUP");
            env.put("PYTHONIOENCODING", "utf-8:backslashreplace");
            env.put("BLENDER_USER_CONFIG", dir.resolve("config").toString());
            env.put("TMPDIR", tmp.toString());
            env.put("TEMP", tmp.toString());
            env.put("TMP", tmp.toString());
            env.put("BLENDER_JOBS_PORT", Integer.toString(server.getLocalPort()));
            env.put("BLENDER_JOBS_SECRET", secret);
            env.put("BLENDER_JOBS_MARKER", randomHex(12));
            env.put("BLENDER_JOBS_WORKER", id);
            env.put("BLENDER_JOBS_PROGRESS_INTERVAL_MS", Long.toString(launch.progressInterval().toMillis()));
            String marker = env.get("BLENDER_JOBS_MARKER");

            Process p = pb.start();
            process = p;
            p.getOutputStream().close();
            OutputDrainer d = new OutputDrainer(p.getInputStream(), id, marker, console);
            drainer = d;
            drainerThread = new Thread(d, "worker-" + id + "-output");
            drainerThread.setDaemon(true);
            drainerThread.start();
            // A process that dies before connecting must not leave us waiting for the timeout.
            p.onExit().thenRun(() -> closeQuietly(server));

            JsonObject hello = acceptAuthenticated(server, secret);
            closeQuietly(server); // one connection per process: nobody else may come in later
            if (hello == null) {
                problem = p.isAlive()
                        ? "Blender did not connect back within " + launch.startTimeout().toSeconds() + " s"
                        : "Blender exited during start-up";
                return;
            }
            connected = true;
            listener.ready(this, hello);
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 64 * 1024));
            while (true) {
                JsonObject message = FrameCodec.read(in);
                if (message == null) break;
                if ("result".equals(stringOf(message, "type"))) {
                    // The job's console output must be complete when its result is seen.
                    d.awaitEnd(stringOf(message, "jobId"), END_MARKER_WAIT_MS);
                }
                listener.message(this, message);
            }
        } catch (IOException | RuntimeException e) {
            if (problem == null && !connected) problem = "could not start Blender: " + e.getMessage();
            LOG.log(Level.FINE, "worker " + id + " channel ended", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            listener.exited(this, reap(connected, problem, drainerThread));
        }
    }

    /** The hello frame is a few hundred bytes; anything much larger is not a worker. */
    static final int MAX_HELLO_BYTES = 64 * 1024;

    /** Accepts connections until one presents the secret; others are refused and logged. */
    private JsonObject acceptAuthenticated(ServerSocket server, String secret) throws IOException {
        long deadline = System.nanoTime() + launch.startTimeout().toNanos();
        while (true) {
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0) return null;
            server.setSoTimeout((int) Math.min(Integer.MAX_VALUE, left));
            Socket s;
            try {
                s = server.accept();
            } catch (SocketTimeoutException e) {
                return null;
            } catch (IOException e) {
                if (server.isClosed()) return null; // the process exited
                throw e;
            }
            try {
                s.setSoTimeout(10_000);
                s.setTcpNoDelay(true);
                DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
                // Before it has proven itself, a peer gets a small frame and a short wait, no more.
                JsonObject hello = FrameCodec.read(in, MAX_HELLO_BYTES);
                String presented = hello == null ? null : stringOf(hello, "secret");
                if (presented != null && MessageDigest.isEqual(presented.getBytes(StandardCharsets.UTF_8),
                        secret.getBytes(StandardCharsets.UTF_8)) && "hello".equals(stringOf(hello, "type"))) {
                    s.setSoTimeout(0);
                    socket = s;
                    channelOut = new BufferedOutputStream(s.getOutputStream(), 64 * 1024);
                    hello.remove("secret");
                    return hello;
                }
                LOG.warning("refused a connection to worker " + id + "'s channel from " + s.getRemoteSocketAddress()
                        + ": it did not present the worker's secret");
            } catch (IOException | RuntimeException e) {
                LOG.warning("refused a connection to worker " + id + "'s channel: " + e.getMessage());
            }
            closeQuietly(s);
        }
    }

    /** Makes sure the process tree is gone, then collects what is known about its end. */
    private Exit reap(boolean connected, String problem, Thread drainerThread) {
        closeQuietly(socket);
        Process p = process;
        int exitCode = -1;
        if (p != null) {
            try {
                if (!p.waitFor(launch.stopGrace().toMillis(), TimeUnit.MILLISECONDS)) {
                    ProcessTrees.terminate(p.toHandle(), Duration.ofSeconds(1));
                }
                p.waitFor();
                exitCode = p.exitValue();
                // A job's children may outlive Blender itself; they die with it.
                p.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (drainerThread != null) {
            try {
                drainerThread.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        console.close();
        return new Exit(connected, exitCode, problem, console.tail(), takeCrashReport());
    }

    /** Reads and removes the *.crash.txt Blender writes into its temp folder when it crashes. */
    private String takeCrashReport() {
        Path tmp = dir.resolve("tmp");
        StringBuilder report = new StringBuilder();
        if (!Files.isDirectory(tmp)) return null;
        try (DirectoryStream<Path> crashes = Files.newDirectoryStream(tmp, "*.crash.txt")) {
            for (Path crash : crashes) {
                byte[] bytes = Files.readAllBytes(crash);
                report.append(new String(bytes, 0, Math.min(bytes.length, 64 * 1024), StandardCharsets.UTF_8));
                Files.deleteIfExists(crash);
            }
        } catch (IOException e) {
            LOG.log(Level.FINE, "could not read crash reports of worker " + id, e);
        }
        return report.length() == 0 ? null : report.toString();
    }

    private static String stringOf(JsonObject o, String key) {
        return o.has(key) && o.get(key).isJsonPrimitive() ? o.get(key).getAsString() : null;
    }

    private static String randomHex(int bytes) {
        byte[] b = new byte[bytes];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private static void closeQuietly(AutoCloseable c) {
        if (c == null) return;
        try {
            c.close();
        } catch (Exception ignored) {
            // Closing is best effort; the process is being reaped anyway.
        }
    }
}
