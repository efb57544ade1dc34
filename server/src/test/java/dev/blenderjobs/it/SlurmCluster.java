package dev.blenderjobs.it;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real two-node Slurm cluster (test-fixtures/slurm/cluster.sh) for one test class:
 * <pre>
 * &#64;RegisterExtension
 * static final SlurmCluster cluster = new SlurmCluster();
 * </pre>
 * brings it up into a fresh temporary directory before the class's first test and always takes it
 * down after its last (and from a JVM shutdown hook, should the JVM be stopped first). The nodes
 * are {@code node1} and {@code node2}, each a slurmd with its own address and hostname; a server
 * in this JVM binds {@link #hostAddress()}, which the nodes reach.
 *
 * <p>If the cluster cannot be set up (not root, no CAP_NET_ADMIN, packages cannot be installed)
 * every test of the class fails with cluster.sh's reason: the Slurm tests are never skipped.
 *
 * <p>The directory is deleted after a clean {@code down} unless a test failed (its Slurm logs
 * are then kept and their path printed) or {@code -Dblenderjobs.keepSlurmDir=true}.
 */
final class SlurmCluster implements BeforeAllCallback, AfterAllCallback, TestExecutionExceptionHandler, AutoCloseable {
    /** Hang guard for one Slurm command (sbatch, squeue, scancel...); they answer in milliseconds. */
    static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(60);
    /** Hang guard for cluster.sh up/down (up may apt-get install slurm-wlm and munge first). */
    static final Duration SCRIPT_TIMEOUT = Duration.ofMinutes(10);

    /** What a command did. */
    record Result(List<String> command, int exitCode, String stdout, String stderr) {
        boolean ok() {
            return exitCode == 0;
        }

        @Override
        public String toString() {
            return String.join(" ", command) + " -> exit " + exitCode
                    + (stdout.isBlank() ? "" : "\nstdout: " + stdout.strip())
                    + (stderr.isBlank() ? "" : "\nstderr: " + stderr.strip());
        }
    }

    private Path dir;
    private Map<String, String> env = Map.of();
    private Thread shutdownHook;
    private Duration upTime;
    private Duration downTime;
    private volatile boolean testFailed;

    // ---------------------------------------------------------------- lifecycle

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        up();
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        close();
    }

    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        testFailed = true; // keep the Slurm logs for whoever reads the failure
        throw throwable;
    }

    /** Starts the cluster; throws with cluster.sh's output when it cannot. */
    synchronized void up() throws IOException, InterruptedException {
        if (dir != null) throw new IllegalStateException("cluster already up in " + dir);
        dir = Files.createTempDirectory("blender-jobs-slurm-");
        shutdownHook = new Thread(this::downQuietly, "slurm-cluster-down");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
        long t0 = System.nanoTime();
        // The JVM is the owner: if it dies without running down (SIGKILL), the next up or
        // `cluster.sh gc` on this machine tears this cluster down.
        Result up = script(Map.of("BJ_SLURM_OWNER_PID", Long.toString(ProcessHandle.current().pid())), "up", dir.toString());
        upTime = Duration.ofNanos(System.nanoTime() - t0);
        if (!up.ok()) {
            testFailed = true; // keep the directory: its logs say what went wrong
            throw new IllegalStateException("could not start the Slurm test cluster (these tests need root with "
                    + "CAP_NET_ADMIN and the Debian packages slurm-wlm and munge, which cluster.sh installs): " + up);
        }
        Result envOut = script(Map.of(), "env", dir.toString());
        if (!envOut.ok()) throw new IllegalStateException("cluster.sh env failed: " + envOut);
        env = parseEnv(envOut.stdout());
        log("up in " + upTime.toMillis() + " ms (" + dir + ", controller " + hostAddress() + ")");
    }

    /** Stops the cluster and checks nothing is left; idempotent. */
    @Override
    public synchronized void close() throws IOException, InterruptedException {
        if (dir == null) return;
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException alreadyShuttingDown) {
            // the hook is running or about to; down below is idempotent
        }
        long t0 = System.nanoTime();
        Result down = script(Map.of(), "down", dir.toString());
        downTime = Duration.ofNanos(System.nanoTime() - t0);
        Path was = dir;
        dir = null;
        if (!down.ok()) throw new IllegalStateException("cluster.sh down did not stop everything: " + down);
        log("down in " + downTime.toMillis() + " ms");
        if (testFailed || Boolean.getBoolean("blenderjobs.keepSlurmDir")) {
            log("kept the cluster's directory with its Slurm logs: " + was);
        } else {
            deleteTree(was);
        }
    }

    private void downQuietly() {
        try {
            close();
        } catch (Exception e) {
            System.err.println("[slurm-cluster] down from the shutdown hook failed: " + e);
        }
    }

    // ---------------------------------------------------------------- what tests use

    /** The cluster's directory (slurm.conf, logs, {@code jobs/} where batch output lands). */
    Path dir() {
        return requireUp();
    }

    Path slurmConf() {
        return Path.of(env.get("SLURM_CONF"));
    }

    /** Environment a Slurm client (or a server launching pilots) needs: SLURM_CONF, PATH, BJ_SLURM_*. */
    Map<String, String> env() {
        requireUp();
        return env;
    }

    /** The root-namespace address of the bridge: bind servers here so the nodes can connect. */
    String hostAddress() {
        return env.get("BJ_SLURM_HOST_ADDR");
    }

    /** node1 or node2 -> its address (10.77.k.11 / .12). */
    String nodeAddress(String node) {
        String a = env.get("BJ_SLURM_" + node.toUpperCase(java.util.Locale.ROOT) + "_ADDR");
        if (a == null) throw new IllegalArgumentException("no node " + node);
        return a;
    }

    /** The default partition (both nodes). */
    String partition() {
        return env.get("BJ_SLURM_PARTITION");
    }

    /** A partition that is DOWN: jobs queue there and never start (reason PartitionDown). */
    String downPartition() {
        return env.get("BJ_SLURM_DOWN_PARTITION");
    }

    Duration upTime() {
        return upTime;
    }

    /** How long the last close() took, or null before it. */
    Duration downTime() {
        return downTime;
    }

    /** {@code sbatch --parsable ARGS} with extra environment for the job; returns the job id or fails with Slurm's message. */
    String sbatch(Map<String, String> jobEnv, String... args) throws IOException, InterruptedException {
        Result r = sbatchResult(jobEnv, args);
        if (!r.ok()) throw new AssertionError("sbatch failed: " + r);
        // --parsable prints "id" or "id;cluster"
        return r.stdout().strip().split(";", 2)[0];
    }

    /** {@code sbatch --parsable ARGS}, whatever it answers (for tests of refused submissions). */
    Result sbatchResult(Map<String, String> jobEnv, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("sbatch", "--parsable"));
        cmd.addAll(List.of(args));
        return run(jobEnv, cmd);
    }

    /** The job's state as squeue shows it (PENDING, RUNNING, ...), or "" once it has left the queue. */
    String squeueState(String jobId) throws IOException, InterruptedException {
        Result r = run(Map.of(), List.of("squeue", "-h", "-j", jobId, "-o", "%T"));
        // squeue fails with "Invalid job id specified" once the job is purged (MinJobAge)
        return r.ok() ? r.stdout().strip() : "";
    }

    /** {@code squeue ARGS}, checked. */
    String squeue(String... args) throws IOException, InterruptedException {
        return checked(run(Map.of(), concat("squeue", args))).stdout();
    }

    /** {@code scancel ARGS}, checked. */
    void scancel(String... args) throws IOException, InterruptedException {
        checked(run(Map.of(), concat("scancel", args)));
    }

    /** The final state Slurm keeps for a finished job (COMPLETED, CANCELLED, NODE_FAIL, ...). */
    String finalState(String jobId) throws IOException, InterruptedException {
        String out = checked(run(Map.of(), List.of("scontrol", "-o", "show", "job", jobId))).stdout();
        for (String field : out.split("\\s+")) {
            if (field.startsWith("JobState=")) return field.substring("JobState=".length());
        }
        throw new AssertionError("no JobState in: " + out);
    }

    /** Node {@code node} dies: SIGKILL to its slurmd and every process in its namespace (job steps, Blender). */
    void killNode(String node) throws IOException, InterruptedException {
        checked(script(Map.of(), "kill-node", requireUp().toString(), node));
    }

    /** Only the node's slurmd dies; its running jobs go on. */
    void killSlurmd(String node) throws IOException, InterruptedException {
        checked(script(Map.of(), "kill-node", requireUp().toString(), node, "--slurmd-only"));
    }

    /** Starts the node's slurmd again and waits until Slurm takes the node back. */
    void startNode(String node) throws IOException, InterruptedException {
        checked(script(Map.of(), "start-node", requireUp().toString(), node));
    }

    /** Any command with the cluster's environment plus {@code extraEnv}, in {@code dir()/jobs}, bounded. */
    Result run(Map<String, String> extraEnv, List<String> command) throws IOException, InterruptedException {
        Map<String, String> all = new HashMap<>(env());
        all.putAll(extraEnv);
        return exec(all, requireUp().resolve("jobs"), command, COMMAND_TIMEOUT);
    }

    /** A ProcessBuilder with the cluster's environment (e.g. for the server jar with --executor slurm). */
    ProcessBuilder processBuilder(List<String> command) {
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().putAll(env());
        return pb;
    }

    // ---------------------------------------------------------------- internals

    static Path script() {
        return ServerProcess.fixture("slurm/cluster.sh");
    }

    private Result script(Map<String, String> extraEnv, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("bash", script().toString()));
        cmd.addAll(List.of(args));
        return exec(extraEnv, Path.of(System.getProperty("java.io.tmpdir")), cmd, SCRIPT_TIMEOUT);
    }

    private Result exec(Map<String, String> extraEnv, Path cwd, List<String> command, Duration timeout)
            throws IOException, InterruptedException {
        // Output goes to files: no reader threads, and nothing blocks on a full pipe.
        Path scratch = Files.createTempDirectory("slurm-cmd-");
        try {
            Path out = scratch.resolve("out");
            Path err = scratch.resolve("err");
            ProcessBuilder pb = new ProcessBuilder(command).directory(cwd.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .redirectOutput(out.toFile()).redirectError(err.toFile());
            Map<String, String> e = pb.environment();
            e.putAll(extraEnv);
            Process p = pb.start();
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                throw new AssertionError(String.join(" ", command) + " did not finish within " + timeout
                        + "; stderr so far: " + Files.readString(err));
            }
            return new Result(command, p.exitValue(), Files.readString(out), Files.readString(err));
        } finally {
            deleteTree(scratch);
        }
    }

    private static Result checked(Result r) {
        if (!r.ok()) throw new AssertionError(r.toString());
        return r;
    }

    /** Parses cluster.sh env: {@code export NAME='value'} and {@code export PATH="dir:$PATH"}. */
    static Map<String, String> parseEnv(String text) {
        Map<String, String> m = new HashMap<>();
        for (String line : text.split("\n")) {
            line = line.strip();
            if (line.isEmpty()) continue;
            if (!line.startsWith("export ") || !line.contains("=")) {
                throw new IllegalArgumentException("unexpected line from cluster.sh env: " + line);
            }
            String assignment = line.substring("export ".length());
            int eq = assignment.indexOf('=');
            String name = assignment.substring(0, eq);
            String value = assignment.substring(eq + 1);
            if (value.length() >= 2 && (value.charAt(0) == '\'' || value.charAt(0) == '"')
                    && value.charAt(value.length() - 1) == value.charAt(0)) {
                value = value.substring(1, value.length() - 1);
            }
            // PATH comes as "dir:$PATH": the caller's own PATH after Slurm's directory.
            m.put(name, value.replace("$PATH", System.getenv().getOrDefault("PATH", "")));
        }
        for (String required : List.of("SLURM_CONF", "BJ_SLURM_HOST_ADDR", "BJ_SLURM_NODE1_ADDR", "BJ_SLURM_NODE2_ADDR")) {
            if (!m.containsKey(required)) throw new IllegalArgumentException("cluster.sh env did not give " + required + ": " + text);
        }
        return Map.copyOf(m);
    }

    private Path requireUp() {
        Path d = dir;
        if (d == null) throw new IllegalStateException("the Slurm cluster is not up");
        return d;
    }

    private static List<String> concat(String first, String... rest) {
        List<String> l = new ArrayList<>(List.of(first));
        l.addAll(List.of(rest));
        return l;
    }

    private static void log(String message) {
        System.err.println("[slurm-cluster] " + message);
    }

    private static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) return;
        try (Stream<Path> s = Files.walk(root)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }
}
