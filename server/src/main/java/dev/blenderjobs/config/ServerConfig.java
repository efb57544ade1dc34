package dev.blenderjobs.config;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Everything the server was told at start-up, as one immutable value. Built by {@code Main}
 * from the command line; every other module receives the parts it needs from here.
 *
 * @param blenderPath       explicit {@code --blender}; empty means "search for one"
 * @param workers           number of worker slots (Blender processes running at once)
 * @param maxJobsPerWorker  jobs a Blender process runs before it is replaced (1 = fresh per job)
 * @param maxWorkerMemoryMb resident memory after which a worker is replaced (0 = no limit)
 * @param stateDir          explicit private directory for job files; empty means the default: one
 *                          per client workspace under {@code dataHome}, or a temporary one
 * @param dataHome          per-user data directory holding the per-workspace state directories
 * @param resume            queue the jobs an earlier server left interrupted as soon as the state
 *                          directory is opened
 * @param retainJobs        finished jobs kept (oldest pruned first); 0 = no limit
 * @param retainDays        days a finished job is kept; 0 = no limit
 * @param progressInterval  minimum gap between two progress notifications of one job
 * @param workerStartTimeout how long a starting Blender may take to connect back
 * @param maxMessageBytes   largest JSON-RPC message the server reads
 * @param logTailLines      lines of a job's log returned by getJob
 * @param maxLogBytes       largest log file of one job: past it, output is cut (head and tail kept)
 * @param maxInputBytes     largest file addJob copies into a job (blendFile, passedDataBlocks.library)
 */
public record ServerConfig(
        Optional<Path> blenderPath,
        int workers,
        int maxJobsPerWorker,
        long maxWorkerMemoryMb,
        Optional<Path> stateDir,
        Path dataHome,
        boolean resume,
        int retainJobs,
        int retainDays,
        Duration progressInterval,
        Duration workerStartTimeout,
        long maxMessageBytes,
        int logTailLines,
        long maxLogBytes,
        long maxInputBytes) {

    public ServerConfig {
        if (workers < 1) throw new IllegalArgumentException("--workers must be at least 1, got " + workers);
        if (maxJobsPerWorker < 1)
            throw new IllegalArgumentException("--max-jobs-per-worker must be at least 1, got " + maxJobsPerWorker);
        if (maxWorkerMemoryMb < 0)
            throw new IllegalArgumentException("--max-worker-memory must be 0 (no limit) or more, got " + maxWorkerMemoryMb);
        if (maxMessageBytes < 1024)
            throw new IllegalArgumentException("--max-message-size must be at least 1 KB");
        if (retainJobs < 0) throw new IllegalArgumentException("--retain-jobs must be 0 (no limit) or more, got " + retainJobs);
        if (retainDays < 0) throw new IllegalArgumentException("--retain-days must be 0 (no limit) or more, got " + retainDays);
        if (maxLogBytes < 64 * 1024) throw new IllegalArgumentException("--max-log-size must be at least 1 MB");
        if (maxInputBytes < 1024 * 1024) throw new IllegalArgumentException("--max-input-size must be at least 1 MB");
    }

    /** --max-log-size default, MB. */
    public static final long DEFAULT_MAX_LOG_MB = 100;
    /** --max-input-size default, MB. */
    public static final long DEFAULT_MAX_INPUT_MB = 1024;

    /** Defaults used by tests and by {@code Main} when a flag is absent. */
    public static ServerConfig defaults() {
        return new ServerConfig(Optional.empty(), Runtime.getRuntime().availableProcessors(), 200, 2048,
                Optional.empty(), defaultDataHome(System.getenv(),
                        System.getProperty("os.name"), Path.of(System.getProperty("user.home"))),
                false, 10_000, 30, Duration.ofMillis(20), Duration.ofSeconds(60), 64L * 1024 * 1024, 100,
                DEFAULT_MAX_LOG_MB << 20, DEFAULT_MAX_INPUT_MB << 20);
    }

    /** Where per-user data goes on this OS ($XDG_DATA_HOME or ~/.local/share on Linux). */
    public static Path defaultDataHome(Map<String, String> env, String osName, Path userHome) {
        String os = osName.toLowerCase(Locale.ROOT);
        if (os.contains("win")) {
            String local = env.get("LOCALAPPDATA");
            if (local != null && !local.isBlank()) return Path.of(local);
            return userHome.resolve("AppData").resolve("Local");
        }
        if (os.contains("mac")) return userHome.resolve("Library").resolve("Application Support");
        String xdg = env.get("XDG_DATA_HOME");
        if (xdg != null && Path.of(xdg).isAbsolute()) return Path.of(xdg);
        return userHome.resolve(".local").resolve("share");
    }
}
