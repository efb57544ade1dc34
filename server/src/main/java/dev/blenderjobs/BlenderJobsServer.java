package dev.blenderjobs;

import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.config.BlenderInstallation;
import dev.blenderjobs.config.BlenderLocator;
import dev.blenderjobs.config.ServerConfig;
import dev.blenderjobs.jobs.JobFiles;
import dev.blenderjobs.jobs.JobManager;
import dev.blenderjobs.runtime.RuntimeScript;
import dev.blenderjobs.wire.ClientNotifier;
import dev.blenderjobs.wire.JobClient;
import dev.blenderjobs.wire.JobServerEndpoint;
import dev.blenderjobs.wire.WireLauncher;
import dev.blenderjobs.wire.messages.Messages.BlenderInfo;
import dev.blenderjobs.wire.messages.Messages.Capabilities;
import dev.blenderjobs.wire.messages.Messages.InitializeResult;
import dev.blenderjobs.wire.messages.Messages.ServerInfo;
import dev.blenderjobs.workers.WorkerPool;
import dev.blenderjobs.workers.WorkerProcess;
import org.eclipse.lsp4j.jsonrpc.Launcher;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Wires the server together and owns its lifecycle: finds Blender, prepares the private
 * directory, starts the worker pool in the background, serves JSON-RPC until exit or end of
 * stdin, and on every way out stops all Blender processes.
 */
public final class BlenderJobsServer implements JobServerEndpoint.Host {
    public static final String NAME = "blender-jobs";
    public static final String VERSION = "0.1.0";
    private static final Logger LOG = Logger.getLogger(BlenderJobsServer.class.getName());

    private final ServerConfig config;
    private final AtomicBoolean stopped = new AtomicBoolean();
    private BlenderLocator.Result blender;
    private Path stateDir;
    private boolean temporaryStateDir;
    private EventLoop loop;
    private java.nio.channels.FileLock stateDirLock;
    private JobManager jobs;
    private WorkerPool pool;
    private ClientNotifier notifier;
    private ExecutorService io;

    public BlenderJobsServer(ServerConfig config) {
        this.config = config;
    }

    /** Serves until the client sends exit or closes stdin; returns the process exit code. */
    public int run(InputStream in, OutputStream out) throws IOException {
        stateDir = prepareStateDir();
        blender = BlenderLocator.forThisMachine().locate(config.blenderPath());
        blender.installation().ifPresentOrElse(
                b -> LOG.info("Blender " + b.version() + " at " + b.executable()),
                () -> LOG.warning(blender.problem()));

        loop = new EventLoop("job-loop");
        io = Executors.newFixedThreadPool(Math.max(2, config.workers()), daemon("request-io"));
        notifier = new ClientNotifier(config.progressInterval());
        jobs = new JobManager(loop, new JobFiles(stateDir), config.logTailLines(),
                blender.installation().isPresent() ? null : blender.problem());
        if (blender.installation().isPresent()) {
            Path runtime = RuntimeScript.install(stateDir.resolve("runtime"));
            WorkerProcess.Launch launch = new WorkerProcess.Launch(blender.installation().get().executable(), runtime,
                    config.workerStartTimeout(), config.progressInterval().dividedBy(2), Duration.ofSeconds(3));
            pool = new WorkerPool(new WorkerPool.Settings(config.workers(), config.maxJobsPerWorker(),
                    config.maxWorkerMemoryMb(), stateDir.resolve("workers"), launch), loop, jobs);
        }
        jobs.attach(pool, notifier);

        JobServerEndpoint endpoint = new JobServerEndpoint(jobs, io, this, config.maxMessageBytes());
        ExecutorService rpc = Executors.newCachedThreadPool(daemon("jsonrpc"));
        Launcher<JobClient> launcher = WireLauncher.create(endpoint, in, out, config.maxMessageBytes(), rpc);
        notifier.connect(launcher.getRemoteProxy());
        Runtime.getRuntime().addShutdownHook(new Thread(this::stop, "shutdown-hook"));
        if (pool != null) pool.start();
        LOG.info(NAME + " " + VERSION + " serving on stdio; " + config.workers() + " workers; state in " + stateDir);
        try {
            launcher.startListening().get();
        } catch (Exception e) {
            LOG.log(Level.FINE, "protocol stream ended", e);
        }
        LOG.info("stdin closed; shutting down");
        stop();
        return 0;
    }

    @Override
    public InitializeResult describe(Capabilities capabilities) {
        BlenderInfo info = blender.installation()
                .map(b -> new BlenderInfo(true, b.executable().toString(), b.version(), null))
                .orElseGet(() -> new BlenderInfo(false, null, null, blender.problem()));
        return new InitializeResult(new ServerInfo(NAME, VERSION), info, pool == null ? 0 : config.workers(),
                config.maxJobsPerWorker(),
                stateDir.toString(), capabilities);
    }

    @Override
    public void exit(int code) {
        stop();
        System.exit(code);
    }

    /** Stops every worker and cleans up; safe to call more than once and from a shutdown hook. */
    void stop() {
        if (!stopped.compareAndSet(false, true)) return;
        // Unfinished jobs are canceled first, so that a client still listening is told so
        // (CANCELED) rather than seeing them fail when their workers are killed.
        if (jobs != null) {
            try {
                jobs.shutdown().get(2, TimeUnit.SECONDS);
            } catch (Exception e) {
                LOG.log(Level.FINE, "could not cancel jobs at shutdown", e);
            }
        }
        if (pool != null) pool.shutdown(Duration.ofSeconds(2));
        if (notifier != null) notifier.close();
        if (io != null) io.shutdownNow();
        if (loop != null) loop.close();
        if (temporaryStateDir) {
            try {
                JobFiles.deleteRecursively(stateDir);
            } catch (IOException e) {
                LOG.log(Level.FINE, "could not delete " + stateDir, e);
            }
        }
    }

    private Path prepareStateDir() throws IOException {
        if (config.stateDir().isPresent()) {
            Path dir = config.stateDir().get().toAbsolutePath();
            JobFiles.createPrivateDirectories(dir);
            lockStateDir(dir);
            return dir;
        }
        temporaryStateDir = true;
        try {
            return Files.createTempDirectory("blender-jobs-",
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (UnsupportedOperationException e) {
            return Files.createTempDirectory("blender-jobs-");
        }
    }

    /**
     * One server per state directory: two servers sharing one would trample each other's job
     * and worker files. The OS releases the lock when this process ends, however it ends.
     */
    private void lockStateDir(Path dir) throws IOException {
        Path lockFile = dir.resolve("server.lock");
        java.nio.channels.FileChannel channel = java.nio.channels.FileChannel.open(lockFile,
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE,
                java.nio.file.StandardOpenOption.READ);
        java.nio.channels.FileLock lock;
        try {
            lock = channel.tryLock();
        } catch (java.nio.channels.OverlappingFileLockException e) {
            lock = null;
        }
        if (lock == null) {
            String holder = Files.readString(lockFile).strip();
            channel.close();
            throw new StateDirInUseException("The state directory " + dir + " is in use by another blender-jobs server"
                    + (holder.isEmpty() ? "" : " (" + holder + ")") + "; give this one another --state-dir, or stop "
                    + "the other server first.");
        }
        channel.truncate(0);
        channel.write(java.nio.ByteBuffer.wrap(("pid " + ProcessHandle.current().pid()).getBytes(
                java.nio.charset.StandardCharsets.UTF_8)));
        stateDirLock = lock; // held, and so kept alive, for the life of the process
    }

    /** The explicit --state-dir is locked by another server. */
    public static final class StateDirInUseException extends IOException {
        StateDirInUseException(String message) {
            super(message);
        }
    }

    private static java.util.concurrent.ThreadFactory daemon(String name) {
        java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();
        return r -> {
            Thread t = new Thread(r, name + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

}
