package dev.blenderjobs.workers.local;

import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ProtocolViolation;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.channel.WorkerChannel;
import dev.blenderjobs.concurrent.Threads;
import dev.blenderjobs.concurrent.Trace;
import dev.blenderjobs.io.PrivateFiles;
import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.workers.ResultCheck;
import dev.blenderjobs.workers.Worker;
import dev.blenderjobs.workers.WorkerExit;
import dev.blenderjobs.workers.WorkerListener;

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
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One headless Blender child process, from start to reaped exit. A supervisor thread starts it,
 * accepts its connection on a private loopback socket (refusing, and logging, any peer that
 * fails the handshake), and waits for the channel to end; an output drainer thread reads its
 * console into the running job's log. Whatever happens, the supervisor ends by making sure the
 * whole process tree is gone and reporting {@link WorkerListener#exited} exactly once.
 *
 * <p>The process tree: the runtime makes itself a child subreaper, so whatever a job starts
 * (daemons that fork twice and call setsid included) stays below Blender while Blender lives.
 * Its descendants are noted twice a second, so that the ones left when Blender itself dies (a
 * script's {@code os._exit()}, a crash), which the kernel hands to init, are still killed. Its
 * stdin is the lifeline: a pipe this server holds open and never writes to, whose end tells the
 * runtime and its guard process that the server is gone (the runtime's worker_runtime.py,
 * Supervisor).
 */
final class LocalWorker implements Worker {
    private static final Logger LOG = Logger.getLogger(LocalWorker.class.getName());
    /** How long a job's result waits for the end marker of its console output. */
    private static final long END_MARKER_WAIT_MS = 5000;
    /** How often the descendants of each Blender are noted. */
    private static final long TREE_WATCH_MS = 500;
    private static final ScheduledExecutorService TREE_WATCH =
            Executors.newSingleThreadScheduledExecutor(Threads.daemon("worker-tree-watch"));

    private final String id;
    private final Path dir;
    private final Path tmp;
    private final LocalLauncher launcher;
    private final WorkerListener listener;
    private final JobLog console;
    private final String secret = WorkerChannel.randomHex(32);
    private volatile Process process;
    private volatile OutputDrainer drainer;
    private volatile WorkerChannel channel;
    private volatile ToWorker.Run current;
    /** Blender's descendants when last noted (see the class comment). */
    private volatile List<ProcessHandle> lastDescendants = List.of();
    private volatile OutputStream lifeline;
    private volatile ScheduledFuture<?> treeWatch;

    LocalWorker(String id, Path dir, LocalLauncher launcher, WorkerListener listener) {
        this.id = id;
        this.dir = dir;
        // A temp folder per process, deleted when it is reaped: what a job leaves there (and
        // Blender's crash report, read first) does not outlive the process.
        this.tmp = dir.resolve("tmp-" + id);
        this.launcher = launcher;
        this.listener = listener;
        // Output between jobs (a thread a job left behind) is capped too: the folder is on disk.
        this.console = new JobLog(dir.resolve("console.log"), 50, 16L << 20);
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public long pid() {
        Process p = process;
        return p == null ? -1 : p.pid();
    }

    @Override
    public OptionalLong residentBytes() {
        Process p = process;
        return p == null || !p.isAlive() ? OptionalLong.empty() : ProcessTrees.residentBytes(p.pid());
    }

    void start() {
        Threads.startDaemon("worker-" + id, this::supervise);
    }

    @Override
    public void run(ToWorker.Run run, JobLog log) {
        WorkerChannel c = channel;
        if (c == null) throw new IllegalStateException("worker " + id + " is not connected");
        current = run;
        OutputDrainer d = drainer;
        if (d != null) d.expect(run.jobId(), log);
        c.send(run);
    }

    @Override
    public void stop() {
        WorkerChannel c = channel;
        if (c != null) c.send(new ToWorker.Shutdown());
        Process p = process;
        if (p != null) {
            CompletableFuture.delayedExecutor(launcher.stopGrace().toMillis(), TimeUnit.MILLISECONDS).execute(() -> {
                if (p.isAlive()) {
                    LOG.warning("worker " + id + " did not stop in time; killing it");
                    ProcessTrees.terminate(p.toHandle(), Duration.ofSeconds(1));
                }
            });
        }
    }

    @Override
    public void kill() {
        Process p = process;
        if (p == null) return;
        Threads.startDaemon("kill-" + id, () -> ProcessTrees.terminate(p.toHandle(), Duration.ofMillis(500)));
    }

    @Override
    public void awaitGone(Duration grace) {
        Process p = process;
        if (p == null) return;
        try {
            p.waitFor(Math.max(0, grace.toMillis()), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        ProcessTrees.terminate(p.toHandle(), Duration.ofMillis(500));
    }

    private void supervise() {
        boolean connected = false;
        String problem = null;
        Thread drainerThread = null;
        try (ServerSocket server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
            Files.createDirectories(tmp);
            Files.createDirectories(dir.resolve("config"));
            ProcessBuilder pb = new ProcessBuilder(launcher.command().arguments());
            pb.directory(dir.toFile());
            pb.redirectErrorStream(true);
            String marker = WorkerChannel.randomHex(12);
            launcher.command().configure(pb.environment(), dir.resolve("config"), tmp, id, server.getLocalPort(),
                    secret, marker);
            // Local-only promises to the runtime: stdin is the lifeline, and the temp folder is
            // the process's own (deleted when it is reaped), which the runtime empties after each job.
            pb.environment().put("BLENDER_JOBS_LIFELINE", "stdin");
            pb.environment().put("BLENDER_JOBS_TMPDIR", tmp.toString());

            Process p = pb.start();
            process = p;
            lifeline = p.getOutputStream(); // never written to; closed when the process is reaped
            treeWatch = TREE_WATCH.scheduleWithFixedDelay(() -> noteDescendants(p), TREE_WATCH_MS, TREE_WATCH_MS,
                    TimeUnit.MILLISECONDS);
            OutputDrainer d = new OutputDrainer(p.getInputStream(), id, marker, console);
            drainer = d;
            drainerThread = Threads.startDaemon("worker-" + id + "-output", d);
            // A process that dies before connecting must not leave us waiting for the timeout.
            p.onExit().thenRun(() -> closeQuietly(server));

            WorkerChannel c = acceptAuthenticated(server);
            closeQuietly(server); // one connection per process: nobody else may come in later
            if (c == null) {
                problem = p.isAlive()
                        ? "Blender did not connect back within " + launcher.startTimeout().toSeconds() + " s"
                        : "Blender exited during start-up";
                return;
            }
            channel = c;
            connected = true;
            listener.connected(this, c.hello());
            CountDownLatch ended = new CountDownLatch(1);
            c.start("worker-" + id, new ChannelEvents(d, ended));
            ended.await();
        } catch (IOException | RuntimeException e) {
            if (problem == null && !connected) problem = "could not start Blender: " + e.getMessage();
            LOG.log(Level.FINE, "worker " + id + " ended", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            listener.exited(this, reap(connected, problem, drainerThread));
        }
    }

    /** Channel events, on the channel's reader thread. */
    private final class ChannelEvents implements WorkerChannel.Listener {
        private final OutputDrainer drainer;
        private final CountDownLatch ended;

        ChannelEvents(OutputDrainer drainer, CountDownLatch ended) {
            this.drainer = drainer;
            this.ended = ended;
        }

        @Override
        public void message(FromWorker message) {
            if (message instanceof FromWorker.Completed || message instanceof FromWorker.Failed) {
                Trace.mark(message.jobId(), "outcome");
                try {
                    // The job's console output must be complete when its outcome is seen.
                    drainer.awaitEnd(message.jobId(), END_MARKER_WAIT_MS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            if (message instanceof FromWorker.Failed failed) {
                ToWorker.Run run = current;
                if (run != null && run.jobId().equals(failed.jobId())) message = ResultCheck.explain(failed, run.files());
            }
            if (message instanceof FromWorker.Completed completed) {
                ToWorker.Run run = current;
                if (run != null && run.jobId().equals(completed.jobId())) {
                    try {
                        ResultCheck.verify(completed, run.files());
                    } catch (ProtocolViolation v) {
                        violation(v);
                        channel.close(v.getMessage());
                        return;
                    }
                }
            }
            listener.message(LocalWorker.this, message);
        }

        @Override
        public void violation(ProtocolViolation violation) {
            LOG.warning("worker " + id + " broke the channel protocol: " + violation.getMessage() + "; killing it");
            listener.violation(LocalWorker.this, violation.getMessage());
            kill();
        }

        @Override
        public void closed(String why) {
            LOG.fine("worker " + id + " channel closed: " + why);
            ended.countDown();
        }
    }

    /** Accepts connections until one passes the handshake; others are refused and logged. */
    private WorkerChannel acceptAuthenticated(ServerSocket server) throws IOException {
        long deadline = System.nanoTime() + launcher.startTimeout().toNanos();
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
                // Before it has proven itself, a peer gets a small frame and a short wait, no more.
                return WorkerChannel.accept(s, worker -> id.equals(worker)
                        ? secret.getBytes(StandardCharsets.UTF_8) : null, Duration.ofSeconds(10), launcher.writeTimeout());
            } catch (IOException | RuntimeException e) {
                LOG.warning("refused a connection to worker " + id + "'s channel from " + s.getRemoteSocketAddress()
                        + ": " + e.getMessage());
                closeQuietly(s);
            }
        }
    }

    private void noteDescendants(Process p) {
        if (p.isAlive()) {
            List<ProcessHandle> now = ProcessTrees.descendants(p.toHandle());
            if (p.isAlive()) lastDescendants = now; // not the empty list of a process that just died
        }
    }

    /** Makes sure the process tree is gone, then collects what is known about its end. */
    private WorkerExit reap(boolean connected, String problem, Thread drainerThread) {
        WorkerChannel c = channel;
        if (c != null) c.close();
        Process p = process;
        int exitCode = -1;
        if (p != null) {
            try {
                if (!p.waitFor(launcher.stopGrace().toMillis(), TimeUnit.MILLISECONDS)) {
                    ProcessTrees.terminate(p.toHandle(), Duration.ofSeconds(1));
                }
                p.waitFor();
                exitCode = p.exitValue();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            ScheduledFuture<?> watch = treeWatch;
            if (watch != null) watch.cancel(false);
            // A job's processes may outlive Blender itself (it exited or crashed on its own, and the
            // kernel gave them to init): the ones noted last die now. The handles carry start times,
            // so a pid taken over meanwhile is left alone.
            lastDescendants.stream().filter(ProcessHandle::isAlive).forEach(ProcessHandle::destroyForcibly);
            p.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
            closeQuietly(lifeline);
        }
        if (drainerThread != null) {
            try {
                drainerThread.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        console.close();
        String crash = takeCrashReport();
        deleteQuietly(tmp);
        return new WorkerExit(connected, exitCode, problem, console.tail(), crash);
    }

    /** Reads the *.crash.txt Blender writes into its temp folder when it crashes. */
    private String takeCrashReport() {
        StringBuilder report = new StringBuilder();
        if (!Files.isDirectory(tmp)) return null;
        try (DirectoryStream<Path> crashes = Files.newDirectoryStream(tmp, "*.crash.txt")) {
            for (Path crash : crashes) {
                byte[] bytes = Files.readAllBytes(crash);
                report.append(new String(bytes, 0, Math.min(bytes.length, 64 * 1024), StandardCharsets.UTF_8));
            }
        } catch (IOException e) {
            LOG.log(Level.FINE, "could not read crash reports of worker " + id, e);
        }
        return report.length() == 0 ? null : report.toString();
    }

    private void deleteQuietly(Path folder) {
        try {
            PrivateFiles.deleteRecursively(folder);
        } catch (IOException e) {
            LOG.log(Level.FINE, "could not delete " + folder, e);
        }
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
