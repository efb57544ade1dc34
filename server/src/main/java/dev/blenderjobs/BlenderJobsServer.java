package dev.blenderjobs;

import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.concurrent.Threads;
import dev.blenderjobs.io.PrivateFiles;
import dev.blenderjobs.config.BlenderInstallation;
import dev.blenderjobs.config.BlenderLocator;
import dev.blenderjobs.config.ServerConfig;
import dev.blenderjobs.config.SlurmConfig;
import dev.blenderjobs.jobs.JobFiles;
import dev.blenderjobs.jobs.JobManager;
import dev.blenderjobs.runtime.RuntimeScript;
import dev.blenderjobs.store.JobStore;
import dev.blenderjobs.store.StateDirectory;
import dev.blenderjobs.wire.ClientNotifier;
import dev.blenderjobs.wire.JobClient;
import dev.blenderjobs.wire.JobServerEndpoint;
import dev.blenderjobs.wire.OutgoingQueue;
import dev.blenderjobs.wire.WireLauncher;
import dev.blenderjobs.wire.messages.Messages.BlenderInfo;
import dev.blenderjobs.wire.messages.Messages.Capabilities;
import dev.blenderjobs.wire.messages.Messages.InitializeResult;
import dev.blenderjobs.wire.messages.Messages.RecoveredJobs;
import dev.blenderjobs.wire.messages.Messages.ServerInfo;
import dev.blenderjobs.workers.Scaling;
import dev.blenderjobs.workers.WorkerPool;
import dev.blenderjobs.workers.slurm.SlurmLauncher;
import dev.blenderjobs.workers.local.BlenderCommand;
import dev.blenderjobs.workers.local.LocalLauncher;
import org.eclipse.lsp4j.jsonrpc.Launcher;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Wires the server together and owns its lifecycle: finds Blender, starts the worker pool in
 * the background, opens the state directory when the client initializes (it depends on the
 * client's workspace), serves JSON-RPC until exit or end of stdin, and on every way out
 * interrupts unfinished jobs, writes their records and stops all Blender processes.
 */
public final class BlenderJobsServer implements JobServerEndpoint.Host {
    public static final String NAME = "blender-jobs";
    public static final String VERSION = "0.2.0";
    private static final Logger LOG = Logger.getLogger(BlenderJobsServer.class.getName());

    private final ServerConfig config;
    /** The Slurm executor's settings, or null for local workers. */
    private final SlurmConfig slurm;
    private SlurmLauncher slurmLauncher;
    /** Why the Slurm executor cannot run jobs (no address for the pilots), or null. */
    private String executorProblem;
    private final AtomicBoolean stopped = new AtomicBoolean();
    /** Open until the first stop() has finished: later callers wait on it before the JVM exits. */
    private final java.util.concurrent.CountDownLatch stopDone = new java.util.concurrent.CountDownLatch(1);
    private BlenderLocator.Result blender;
    /** The explicit --state-dir, locked at start so that a second server fails fast. */
    private StateDirectory explicitStateDir;
    /** The state directory in use, once initialize has opened it. */
    private volatile StateDirectory stateDir;
    private volatile JobFiles files;
    /**
     * Job folders kept ready ahead of need: enough for the jobs a client adds in one go before
     * the maker catches up; each is seven empty files and folders.
     */
    private static final int SPARE_FOLDERS = 8;
    private CompletableFuture<InitializeResult> opening;
    /** Worker scratch space (runtime script, Blender user config, temp, crash reports), deleted at exit. */
    private Path scratchDir;
    private EventLoop loop;
    private JobManager jobs;
    private JobStore store;
    private WorkerPool pool;
    private ClientNotifier notifier;
    /** Everything sent to the client waits here for the writer thread. */
    private volatile OutgoingQueue output;
    private ExecutorService io;

    public BlenderJobsServer(ServerConfig config) {
        this(config, null);
    }

    /** With {@code slurm} non-null, workers are Slurm pilot jobs (--executor slurm). */
    public BlenderJobsServer(ServerConfig config, SlurmConfig slurm) {
        this.config = config;
        this.slurm = slurm;
    }

    /** Serves until the client sends exit or closes stdin; returns the process exit code. */
    public int run(InputStream in, OutputStream out) throws IOException {
        if (config.stateDir().isPresent()) explicitStateDir = StateDirectory.explicit(config.stateDir().get());
        scratchDir = PrivateFiles.createPrivateTempDirectory("blender-jobs-workers-");
        if (slurm == null) {
            blender = BlenderLocator.forThisMachine().locate(config.blenderPath());
            blender.installation().ifPresentOrElse(
                    b -> LOG.info("Blender " + b.version() + " at " + b.executable()),
                    () -> LOG.warning(blender.problem()));
        }

        loop = new EventLoop("job-loop");
        io = Executors.newFixedThreadPool(Math.max(2, config.workers()), Threads.daemon("request-io"));
        notifier = new ClientNotifier(config.progressInterval());
        notifier.hold(); // LSP: nothing before the initialize answer; a --resume may start jobs sooner
        store = new JobStore(notifier);
        if (slurm != null) startSlurm();
        String problem = slurm != null ? executorProblem
                : blender.installation().isPresent() ? null : blender.problem();
        jobs = new JobManager(loop, config.logTailLines(), problem,
                new JobManager.Retention(config.retainJobs(), Duration.ofDays(config.retainDays())),
                config.maxLogBytes());
        if (slurmLauncher != null) {
            Scaling scaling = new Scaling(slurm.minPilots(), config.workers(), slurm.idleRelease(), slurm.walltime(),
                    slurm.effectiveDrainMargin());
            pool = new WorkerPool(new WorkerPool.Settings(config.workers(), config.maxJobsPerWorker(),
                    config.maxWorkerMemoryMb(), Duration.ofMillis(500), scaling), slurmLauncher, loop, jobs);
        } else if (slurm == null && blender.installation().isPresent()) {
            Path runtime = RuntimeScript.install(scratchDir.resolve("runtime"));
            LocalLauncher launcher = new LocalLauncher(new BlenderCommand(blender.installation().get().executable(),
                    runtime, config.progressInterval().dividedBy(2)), scratchDir.resolve("workers"),
                    config.workerStartTimeout(), Duration.ofSeconds(3), Duration.ofSeconds(10));
            pool = new WorkerPool(new WorkerPool.Settings(config.workers(), config.maxJobsPerWorker(),
                    config.maxWorkerMemoryMb(), Duration.ofMillis(500)), launcher, loop, jobs);
        }
        jobs.attach(pool, store);

        JobServerEndpoint endpoint = new JobServerEndpoint(jobs, io, this, notifier, config.maxMessageBytes(),
                config.maxInputBytes());
        ExecutorService rpc = Executors.newCachedThreadPool(Threads.daemon("jsonrpc"));
        WireLauncher.Wire wire = WireLauncher.create(endpoint, in, out, config.maxMessageBytes(), rpc,
                notifier::answered);
        Launcher<JobClient> launcher = wire.launcher();
        output = wire.output();
        notifier.connect(launcher.getRemoteProxy());
        // An OutOfMemoryError anywhere: the client hears it (if it can still be written), the
        // workers are stopped, and the process ends with its own exit code (Fatal).
        dev.blenderjobs.concurrent.Fatal.install(message -> {
            notifier.error("SERVER_OUT_OF_MEMORY", message);
            stop("the server ran out of memory");
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> stop("the server received a signal to stop"),
                "shutdown-hook"));
        // Pilots carry an id of the state directory, known at initialize: they start then (open()).
        if (pool != null && slurm == null) pool.start();
        LOG.info(NAME + " " + VERSION + " serving on stdio; " + config.workers() + " workers"
                + (slurm != null ? " (Slurm pilots, " + slurm.minPilots() + " kept)" : "")
                + (explicitStateDir != null ? "; state in " + explicitStateDir.path() : ""));
        try {
            launcher.startListening().get();
        } catch (Exception e) {
            dev.blenderjobs.concurrent.Fatal.check(e); // the reader died of an OutOfMemoryError: not a clean end
            LOG.log(Level.FINE, "protocol stream ended", e);
        }
        LOG.info("stdin closed; shutting down");
        stop("the client closed the server's input (stdin)");
        return 0;
    }

    /**
     * The first initialize opens the state directory (the explicit one, the workspace's, or a
     * temporary one) and takes back the jobs an earlier server left there; later ones get the
     * same answer. Runs the file work on the I/O executor.
     */
    @Override
    public synchronized CompletableFuture<InitializeResult> initialize(String workspace, Capabilities capabilities) {
        if (opening == null) {
            opening = CompletableFuture.supplyAsync(() -> open(workspace), io).thenApply(recovered ->
                    new InitializeResult(new ServerInfo(NAME, VERSION), blenderInfo(), pool == null ? 0 : config.workers(),
                            config.maxJobsPerWorker(), stateDir.path().toString(), stateDir.temporary(),
                            stateDir.note(), recovered, capabilities));
        }
        return opening;
    }

    private RecoveredJobs open(String workspace) {
        StateDirectory dir = explicitStateDir != null ? explicitStateDir
                : workspace != null ? StateDirectory.forWorkspace(workspace, config.dataHome())
                : StateDirectory.temporary(null);
        stateDir = dir;
        JobFiles files = new JobFiles(dir.path());
        store.bind(files);
        if (slurmLauncher != null) {
            try {
                slurmLauncher.open(dir.path());
            } catch (IOException | RuntimeException e) {
                LOG.log(Level.WARNING, "could not prepare the state directory for Slurm pilots", e);
            }
        }
        JobStore.Loaded loaded;
        try {
            loaded = store.loadAll(files);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "could not list the jobs of " + dir.path() + "; starting with none", e);
            loaded = new JobStore.Loaded(List.of(), List.of());
        }
        files.keepSpareFolders(SPARE_FOLDERS);
        this.files = files;
        JobManager.Opened opened = jobs.open(files, loaded.jobs(), config.resume()).join();
        if (slurmLauncher != null && pool != null) pool.start();
        LOG.info("state in " + dir.path() + (dir.temporary() ? " (temporary)" : "") + "; " + opened.jobs()
                + " earlier jobs, " + opened.interrupted() + " interrupted, " + opened.resumed() + " resumed, "
                + opened.pruned() + " pruned, " + loaded.unreadable().size() + " unreadable");
        if (!loaded.unreadable().isEmpty()) {
            // Held by the notifier until the initialize answer is written, like every notification.
            List<String> named = loaded.unreadable().subList(0, Math.min(10, loaded.unreadable().size()));
            notifier.warning("RECORDS_UNREADABLE", loaded.unreadable().size() + " job record(s) in " + files.stateDir()
                    + " could not be read and are not listed; their directories are left in place for a person to "
                    + "look at (or delete): " + String.join("; ", named)
                    + (named.size() < loaded.unreadable().size() ? "; ..." : ""));
        }
        return new RecoveredJobs(opened.jobs(), opened.interrupted(), opened.resumed(), opened.pruned(),
                loaded.unreadable().size());
    }

    /**
     * Binds the pilots' listening socket (Slurm's sinfo picks the address unless --listen says);
     * without one, the server still answers and addJob says why it cannot run jobs.
     */
    private void startSlurm() {
        try {
            Path pilots = scratchDir.resolve("pilots");
            PrivateFiles.createPrivateDirectories(pilots);
            slurmLauncher = SlurmLauncher.start(new SlurmLauncher.Options(slurm, config.workerStartTimeout(),
                    config.progressInterval().dividedBy(2), pilots, Duration.ofSeconds(5), Duration.ofSeconds(10)));
        } catch (IOException | RuntimeException e) {
            executorProblem = "the Slurm executor cannot start: " + e.getMessage();
            LOG.severe(executorProblem);
        }
    }

    private BlenderInfo blenderInfo() {
        if (slurm != null) {
            // Blender runs on the nodes; its version is known once a pilot connects.
            return executorProblem == null ? new BlenderInfo(true, slurm.blender(), null, null)
                    : new BlenderInfo(false, null, null, executorProblem);
        }
        return blender.installation()
                .map(b -> new BlenderInfo(true, b.executable().toString(), b.version(), null))
                .orElseGet(() -> new BlenderInfo(false, null, null, blender.problem()));
    }

    @Override
    public void exit(int code) {
        stop(code == 0 ? "the client sent shutdown and exit" : "the client sent exit without shutdown");
        System.exit(code);
    }

    /**
     * Stops every worker and cleans up; safe to call more than once and from a shutdown hook.
     * Unfinished jobs become INTERRUPTED first, and their records are written before the
     * workers die, so that a server started later on the same state directory can resume them.
     */
    void stop(String why) {
        if (!stopped.compareAndSet(false, true)) {
            // exit, end of stdin and the shutdown hook can race: whoever comes second waits, or
            // System.exit would cut the first one off before the last records and notifications.
            try {
                if (!stopDone.await(15, TimeUnit.SECONDS)) LOG.warning("stopping took longer than 15 s");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return;
        }
        try {
            stopNow(why);
        } finally {
            stopDone.countDown();
        }
    }

    private void stopNow(String why) {
        if (jobs != null) {
            try {
                jobs.shutdown(why).get(2, TimeUnit.SECONDS);
            } catch (Exception e) {
                LOG.log(Level.FINE, "could not interrupt jobs at shutdown", e);
            }
        }
        if (store != null) store.close();
        if (files != null) files.close();
        if (pool != null) pool.shutdown(Duration.ofSeconds(slurm != null ? 5 : 2));
        if (slurmLauncher != null) slurmLauncher.close();
        if (notifier != null) notifier.close();
        if (output != null) {
            try {
                output.drain(Duration.ofSeconds(3)); // the last states reach a client that reads; none waits forever
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (io != null) io.shutdownNow();
        if (loop != null) loop.close();
        StateDirectory dir = stateDir != null ? stateDir : explicitStateDir;
        if (dir != null) dir.close();
        if (scratchDir != null) {
            try {
                PrivateFiles.deleteRecursively(scratchDir);
            } catch (IOException e) {
                LOG.log(Level.FINE, "could not delete " + scratchDir, e);
            }
        }
    }
}
