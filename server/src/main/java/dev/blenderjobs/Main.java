package dev.blenderjobs;

import dev.blenderjobs.config.ServerConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.Callable;

/** The command line: parses flags into a {@link ServerConfig} and runs the server over stdio. */
@Command(name = "blender-jobs", mixinStandardHelpOptions = true, version = BlenderJobsServer.VERSION,
        description = "Runs Blender Python scripts in a pool of headless Blender processes, driven by JSON-RPC "
                + "(LSP base-protocol framing) over stdin/stdout. Logs go to stderr.",
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
                "0:after shutdown and exit, at the end of stdin, or on SIGTERM",
                "1:exit without shutdown",
                "2:the --state-dir is in use by another server; or a bad command line",
                "3:the --state-dir cannot be used (not creatable, not writable)"})
public final class Main implements Callable<Integer> {
    /** Exit codes (protocol.md, command-line flags): 0 and 1 are the lifecycle's, 2 and 3 the state directory's. */
    static final int EXIT_STATE_DIR_IN_USE = 2;
    static final int EXIT_STATE_DIR_UNUSABLE = 3;

    @Option(names = "--blender", paramLabel = "PATH",
            description = "Blender executable. Default: $BLENDER, then PATH, then the usual install places.")
    Path blender;

    @Option(names = "--workers", paramLabel = "N", description = "Blender processes running jobs at once. Default: number of cores.")
    Integer workers;

    @Option(names = "--max-jobs-per-worker", paramLabel = "N", defaultValue = "1000",
            description = "Jobs a Blender process runs before it is replaced; 1 = a fresh Blender per job. Default: ${DEFAULT-VALUE}.")
    int maxJobsPerWorker;

    @Option(names = "--max-worker-memory", paramLabel = "MB", defaultValue = "2048",
            description = "Replace a worker whose resident memory passes this after a job; 0 = no limit. Default: ${DEFAULT-VALUE}.")
    long maxWorkerMemoryMb;

    @Option(names = "--state-dir", paramLabel = "DIR",
            description = "Private directory for jobs and their results (created with mode 0700), kept across "
                    + "restarts; one server at a time. Default: one per client workspace (rootUri/workspaceFolders "
                    + "of initialize) under $XDG_DATA_HOME/blender-jobs, or a temporary directory deleted at exit "
                    + "when the client names no workspace.")
    Path stateDir;

    @Option(names = "--resume",
            description = "Queue the jobs a previous server left interrupted (queued or running when it stopped) "
                    + "as soon as the state directory is opened. Default: they wait for resumeJob.")
    boolean resume;

    @Option(names = "--retain-jobs", paramLabel = "N", defaultValue = "10000",
            description = "Finished jobs kept with their results; the oldest are pruned. 0 = no limit. "
                    + "Default: ${DEFAULT-VALUE}.")
    int retainJobs;

    @Option(names = "--retain-days", paramLabel = "DAYS", defaultValue = "30",
            description = "Days a finished job is kept after it ended. 0 = no limit. Default: ${DEFAULT-VALUE}.")
    int retainDays;

    @Option(names = "--progress-interval", paramLabel = "MS", defaultValue = "20",
            description = "Minimum gap between two job/progress notifications of one job. Default: ${DEFAULT-VALUE}.")
    long progressIntervalMs;

    @Option(names = "--worker-start-timeout", paramLabel = "SECONDS", defaultValue = "60",
            description = "How long a starting Blender may take to connect back. Default: ${DEFAULT-VALUE}.")
    long workerStartTimeoutSeconds;

    @Option(names = "--max-message-size", paramLabel = "MB", defaultValue = "64",
            description = "Largest JSON-RPC message read; larger ones are skipped with an error. Default: ${DEFAULT-VALUE}.")
    long maxMessageMb;

    @Option(names = "--max-log-size", paramLabel = "MB", defaultValue = "100",
            description = "Largest log of one job; past it the output is cut, keeping its start, a marker line "
                    + "and its last lines. Default: ${DEFAULT-VALUE}.")
    long maxLogMb;

    @Option(names = "--max-input-size", paramLabel = "MB", defaultValue = "1024",
            description = "Largest file addJob copies into a job (blendFile, passedDataBlocks.library); larger "
                    + "ones are refused. Default: ${DEFAULT-VALUE}.")
    long maxInputMb;

    @Option(names = "--log-level", paramLabel = "LEVEL", defaultValue = "INFO",
            description = "SEVERE, WARNING, INFO, FINE or ALL. Default: ${DEFAULT-VALUE}.")
    String logLevel;

    @Option(names = "--log-file", paramLabel = "FILE", description = "Also write the log to this file.")
    Path logFile;

    @Option(names = "--stdio", description = "Accepted and ignored: the server always speaks on stdin/stdout. "
            + "(LSP clients such as vscode-languageclient add it to the command line.)")
    boolean stdio;

    // ------------------------------------------------------------------ executor (protocol.md §1)

    @Option(names = "--executor", paramLabel = "local|slurm", defaultValue = "local",
            description = "Where workers run: local (Blender child processes of the server) or slurm (pilot jobs "
                    + "on a Slurm cluster that connect back; SLURM_CONF and PATH come from the environment). "
                    + "Default: ${DEFAULT-VALUE}.")
    String executor;

    @Option(names = "--listen", paramLabel = "HOST[:PORT]",
            description = "slurm: the address of this host pilots connect back to (never a wildcard). Default: the "
                    + "address of this host on the route to the partition's nodes, on a free port.")
    String listen;

    @Option(names = "--slurm-partition", paramLabel = "NAME", description = "slurm: the partition of the pilots. "
            + "Default: the cluster's default partition.")
    String slurmPartition;

    @Option(names = "--slurm-time", paramLabel = "MINUTES", defaultValue = "60",
            description = "slurm: walltime of one pilot. Default: ${DEFAULT-VALUE}.")
    int slurmTime;

    @Option(names = "--slurm-min-pilots", paramLabel = "N", defaultValue = "0",
            description = "slurm: pilots kept even when no job waits (--workers is the most). Default: ${DEFAULT-VALUE}.")
    int slurmMinPilots;

    @Option(names = "--slurm-account", paramLabel = "NAME", description = "slurm: the account the pilots are charged to.")
    String slurmAccount;

    @Option(names = "--slurm-qos", paramLabel = "NAME", description = "slurm: the QOS of the pilots.")
    String slurmQos;

    @Option(names = "--slurm-cpus-per-pilot", paramLabel = "N", defaultValue = "1",
            description = "slurm: CPUs of one pilot (--cpus-per-task). Default: ${DEFAULT-VALUE}.")
    int slurmCpus;

    @Option(names = "--slurm-mem-per-pilot", paramLabel = "MB", description = "slurm: memory of one pilot (--mem). "
            + "Default: the partition's.")
    Long slurmMemMb;

    @Option(names = "--slurm-gres", paramLabel = "SPEC", description = "slurm: generic resources of one pilot, e.g. gpu:1.")
    String slurmGres;

    @Option(names = "--slurm-sbatch-arg", paramLabel = "ARG",
            description = "slurm: an extra sbatch option for the pilots, as one word (repeatable), e.g. "
                    + "--slurm-sbatch-arg=--constraint=avx2. Added last, so it may override the others.")
    java.util.List<String> slurmSbatchArgs = new java.util.ArrayList<>();

    @Option(names = "--slurm-blender", paramLabel = "PATH", defaultValue = "blender",
            description = "slurm: the Blender executable on the nodes. Default: ${DEFAULT-VALUE} (from the nodes' PATH).")
    String slurmBlender;

    @Option(names = "--slurm-idle-release", paramLabel = "SECONDS", defaultValue = "300",
            description = "slurm: a pilot idle this long is released (down to --slurm-min-pilots). Default: ${DEFAULT-VALUE}.")
    long slurmIdleRelease;

    @Option(names = "--slurm-drain-margin", paramLabel = "SECONDS",
            description = "slurm: a pilot with less walltime left than this takes no new job; its replacement is "
                    + "submitted then. Default: 10%% of --slurm-time, between 10 s and 300 s.")
    Long slurmDrainMargin;

    @Option(names = "--slurm-shared-fs",
            description = "slurm: the state directory is on a filesystem the nodes share: job files are used in "
                    + "place and the runtime is staged there, instead of travelling over the channel.")
    boolean slurmSharedFs;

    /** The Slurm executor's settings with --executor slurm; null for local. Wrong flags: a message why. */
    dev.blenderjobs.config.SlurmConfig slurmConfig(ServerConfig config) {
        boolean anySlurmFlag = listen != null || slurmPartition != null || slurmAccount != null || slurmQos != null
                || slurmMemMb != null || slurmGres != null || !slurmSbatchArgs.isEmpty() || slurmDrainMargin != null
                || slurmSharedFs || slurmMinPilots != 0 || slurmTime != 60 || slurmCpus != 1
                || !"blender".equals(slurmBlender) || slurmIdleRelease != 300;
        switch (executor) {
            case "local":
                if (anySlurmFlag) {
                    throw new IllegalArgumentException("--listen and the --slurm-* flags need --executor slurm");
                }
                return null;
            case "slurm":
                break;
            default:
                throw new IllegalArgumentException("--executor must be local or slurm, got " + executor);
        }
        if (slurmMinPilots > config.workers()) {
            throw new IllegalArgumentException("--slurm-min-pilots " + slurmMinPilots + " is more than --workers "
                    + config.workers() + " (the most pilots)");
        }
        if (slurmDrainMargin != null && (slurmDrainMargin < 0 || slurmDrainMargin >= slurmTime * 60L)) {
            throw new IllegalArgumentException("--slurm-drain-margin must be 0 or more and shorter than --slurm-time");
        }
        return new dev.blenderjobs.config.SlurmConfig(Optional.ofNullable(listen), Optional.ofNullable(slurmPartition),
                slurmTime, slurmMinPilots, Optional.ofNullable(slurmAccount), Optional.ofNullable(slurmQos), slurmCpus,
                Optional.ofNullable(slurmMemMb), Optional.ofNullable(slurmGres), slurmSbatchArgs, slurmBlender,
                Duration.ofSeconds(Math.max(0, slurmIdleRelease)),
                Optional.ofNullable(slurmDrainMargin).map(Duration::ofSeconds), slurmSharedFs);
    }

    public static void main(String[] args) {
        // Keep stdout for the protocol before anything can print to it.
        StdioGuard.claimStdout();
        CommandLine cli = new CommandLine(new Main());
        // Only --help and --version print to picocli's "out", and they do not start the server,
        // so stdout is not the protocol then: they print there and exit 0, as command-line tools do.
        cli.setOut(new java.io.PrintWriter(new java.io.OutputStreamWriter(StdioGuard.protocolOut(),
                java.nio.charset.StandardCharsets.UTF_8), true));
        int code = cli.execute(args);
        System.exit(code);
    }

    @Override
    public Integer call() throws Exception {
        ServerConfig defaults = ServerConfig.defaults();
        ServerConfig config = new ServerConfig(
                Optional.ofNullable(blender),
                workers == null ? defaults.workers() : workers,
                maxJobsPerWorker,
                maxWorkerMemoryMb,
                Optional.ofNullable(stateDir),
                defaults.dataHome(),
                resume,
                retainJobs,
                retainDays,
                Duration.ofMillis(Math.max(0, progressIntervalMs)),
                Duration.ofSeconds(Math.max(1, workerStartTimeoutSeconds)),
                maxMessageMb * 1024 * 1024,
                defaults.logTailLines(),
                Math.max(1, maxLogMb) << 20,
                Math.max(1, maxInputMb) << 20);
        Logging.configure(logLevel, logFile);
        dev.blenderjobs.config.SlurmConfig slurm;
        try {
            slurm = slurmConfig(config);
        } catch (IllegalArgumentException e) {
            java.util.logging.Logger.getLogger(Main.class.getName()).severe(e.getMessage());
            return CommandLine.ExitCode.USAGE; // 2: a bad command line
        }
        try {
            return new BlenderJobsServer(config, slurm).run(StdioGuard.protocolIn(), StdioGuard.protocolOut());
        } catch (dev.blenderjobs.store.StateDirectory.InUseException e) {
            java.util.logging.Logger.getLogger(Main.class.getName()).severe(e.getMessage());
            return EXIT_STATE_DIR_IN_USE;
        } catch (dev.blenderjobs.store.StateDirectory.UnusableException e) {
            // A person's mistake, not a bug: the message says what and what to do; the trace is for FINE.
            java.util.logging.Logger.getLogger(Main.class.getName()).severe(e.getMessage());
            java.util.logging.Logger.getLogger(Main.class.getName()).log(java.util.logging.Level.FINE, "details",
                    e.getCause());
            return EXIT_STATE_DIR_UNUSABLE;
        }
    }
}
