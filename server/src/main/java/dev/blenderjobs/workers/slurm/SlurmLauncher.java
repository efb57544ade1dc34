package dev.blenderjobs.workers.slurm;

import dev.blenderjobs.channel.WorkerChannel;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.config.SlurmConfig;
import dev.blenderjobs.io.PrivateFiles;
import dev.blenderjobs.runtime.RuntimeScript;
import dev.blenderjobs.workers.Worker;
import dev.blenderjobs.workers.WorkerLauncher;
import dev.blenderjobs.workers.WorkerListener;

import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * Workers as Slurm pilot jobs ({@code --executor slurm}), in the pattern of dask-jobqueue's
 * SLURMCluster: each worker is one {@code sbatch --parsable} job that starts Blender with the
 * runtime on a node; the runtime connects back to the one {@link PilotListener} of this server
 * and proves it holds its pilot's secret (the channel's HMAC handshake), then runs jobs warm over
 * that channel exactly as a local worker does, with job files, results and console output
 * travelling over the channel (or in place with {@code --slurm-shared-fs}).
 *
 * <p>Slurm's commands run on threads of their own with time limits ({@link Commands}); one
 * {@code squeue} call polls every pilot of this server (every second while one is starting or
 * ending, every ten otherwise) for its state, pending reason, node and time left; {@code scancel}
 * stops what must stop. Pilot state lives on this launcher's own event loop, never the pool's.
 *
 * <p>Every pilot's job name is {@code bj-<server id>-<worker id>}, where the server id is
 * derived from the state directory: a server started on the same state directory cancels the
 * pilots an earlier one left in the queue ({@link #open}), and {@link #close} cancels all of this
 * server's pilots.
 */
public final class SlurmLauncher implements WorkerLauncher, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(SlurmLauncher.class.getName());
    static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(30);
    static final long FAST_POLL_MS = 250;
    static final long STARTING_POLL_MS = 1000;
    static final long SLOW_POLL_MS = 10_000;

    /**
     * @param startTimeout     how long a pilot may stay pending for a reason other than waiting
     *                         its turn, or run without connecting, before it counts as failed
     * @param progressInterval the runtime's minimum gap between two progress messages of a job
     * @param scratchDir       a private folder of the server for the pilots' console logs
     * @param stopGrace        how long a pilot asked to stop may take before it is cancelled
     */
    public record Options(SlurmConfig config, Duration startTimeout, Duration progressInterval, Path scratchDir,
                          Duration stopGrace, Duration writeTimeout) {
    }

    private final Options options;
    private final Commands commands;
    private final EventLoop loop = new EventLoop("slurm");
    private final PilotListener listener;
    private final String runtimeSource;
    private final String user = System.getProperty("user.name", "");
    /** Pilots that have not exited, by worker id; touched on the loop (read by the listener's threads). */
    private final Map<String, SlurmWorker> pilots = new ConcurrentHashMap<>();
    private volatile String serverId;
    private volatile Path stagedRuntime;
    private volatile boolean closed;
    // Loop-owned poll state.
    private boolean pollInFlight;
    private ScheduledFuture<?> nextPoll;
    private long pollFailingSince;

    private SlurmLauncher(Options options, Commands commands, InetSocketAddress bind) throws IOException {
        this.options = options;
        this.commands = commands;
        this.runtimeSource = RuntimeScript.source();
        this.listener = new PilotListener(bind, new PilotListener.Pilots() {
            @Override
            public byte[] secretOf(String workerId) {
                SlurmWorker w = pilots.get(workerId);
                return w == null ? null : PilotListener.bytes(w.secret);
            }

            @Override
            public void connected(String workerId, WorkerChannel channel) {
                SlurmWorker w = pilots.get(workerId);
                if (w == null) {
                    channel.close("no pilot " + workerId + " waits for a connection");
                    return;
                }
                loop.execute(() -> w.connected(channel));
            }
        }, Duration.ofSeconds(10), options.writeTimeout());
        LOG.info("pilots connect to " + addressText());
        schedulePoll(STARTING_POLL_MS);
    }

    /**
     * Binds the pilots' listening socket to {@code --listen HOST[:PORT]}, or to the address of
     * this host on the route to the partition's nodes. Runs Slurm's {@code sinfo} for that, on the
     * calling thread (start-up, never an event loop).
     */
    public static SlurmLauncher start(Options options) throws IOException {
        ProcessCommands commands = new ProcessCommands();
        try {
            InetSocketAddress bind = options.config().listen().isPresent()
                    ? parseListen(options.config().listen().get())
                    : new InetSocketAddress(defaultAddress(options.config(), commands), 0);
            return new SlurmLauncher(options, commands, bind);
        } catch (IOException | RuntimeException e) {
            commands.close();
            throw e;
        }
    }

    /** For tests: a launcher with commands of their own, bound to {@code bind}. */
    static SlurmLauncher startWith(Options options, Commands commands, InetSocketAddress bind) throws IOException {
        return new SlurmLauncher(options, commands, bind);
    }

    /** HOST, HOST:PORT or [IPv6]:PORT; a wildcard address is refused. */
    static InetSocketAddress parseListen(String text) throws IOException {
        String host = text.strip();
        int port = 0;
        if (host.startsWith("[")) {
            int end = host.indexOf(']');
            if (end < 0) throw new IOException("--listen " + text + ": missing ]");
            String rest = host.substring(end + 1);
            host = host.substring(1, end);
            if (rest.startsWith(":")) port = port(rest.substring(1), text);
        } else if (host.indexOf(':') >= 0 && host.indexOf(':') == host.lastIndexOf(':')) {
            port = port(host.substring(host.indexOf(':') + 1), text);
            host = host.substring(0, host.indexOf(':'));
        }
        InetAddress address;
        try {
            address = InetAddress.getByName(host);
        } catch (IOException e) {
            throw new IOException("--listen " + text + ": cannot resolve " + host + " (" + e.getMessage() + ")");
        }
        if (address.isAnyLocalAddress()) {
            throw new IOException("--listen " + text + " would listen on every address of this host; give one address "
                    + "of this host that the nodes can reach (the pilots authenticate, but the server never binds a "
                    + "wildcard address)");
        }
        return new InetSocketAddress(address, port);
    }

    private static int port(String s, String text) throws IOException {
        try {
            int p = Integer.parseInt(s);
            if (p < 0 || p > 65535) throw new NumberFormatException();
            return p;
        } catch (NumberFormatException e) {
            throw new IOException("--listen " + text + ": the port must be a number from 0 to 65535");
        }
    }

    /**
     * The address of this host that the nodes reach: the source address the kernel picks on the
     * route to a node of the partition ({@code sinfo -N -o %o}), else to any node.
     */
    static InetAddress defaultAddress(SlurmConfig config, Commands commands) throws IOException {
        List<String> tried = new ArrayList<>();
        for (boolean partitionOnly : new boolean[]{true, false}) {
            if (partitionOnly && config.partition().isEmpty()) continue;
            List<String> cmd = new ArrayList<>(List.of("sinfo", "-h", "-N", "-o", "%o"));
            if (partitionOnly) cmd.addAll(List.of("-p", config.partition().get()));
            Commands.Result r = commands.run(cmd, null, COMMAND_TIMEOUT).join();
            if (!r.ok()) {
                tried.add(String.join(" ", cmd) + ": " + r.problem());
                continue;
            }
            for (String line : r.stdout().split("\n")) {
                String node = line.strip();
                if (node.isEmpty()) continue;
                try (DatagramSocket probe = new DatagramSocket()) {
                    probe.connect(InetAddress.getByName(node), 9); // no packet is sent: only the route is chosen
                    InetAddress local = probe.getLocalAddress();
                    if (local != null && !local.isAnyLocalAddress()) {
                        LOG.info("listening for pilots on " + local.getHostAddress() + ", this host's address on the "
                                + "route to node address " + node + " (--listen overrides)");
                        return local;
                    }
                    tried.add("no route to node address " + node);
                } catch (IOException | RuntimeException e) {
                    tried.add("node address " + node + ": " + e.getMessage());
                }
            }
        }
        throw new IOException("cannot choose an address of this host that the Slurm nodes can reach (" + String.join("; ",
                tried) + "). Start the server with --listen HOST[:PORT], an address of this host the nodes reach");
    }

    // ------------------------------------------------------------------ the state directory

    /**
     * Takes the state directory into use: derives this server's id from it (the pilots' job
     * names carry it), stages the runtime there with {@code --slurm-shared-fs}, and cancels the
     * pilots an earlier server on the same directory left in Slurm's queue (one killed before it
     * could cancel them; a pilot that had connected has exited by itself). Blocks (file and Slurm
     * commands), so call it off the event loops, before the pool starts.
     */
    public void open(Path stateDir) throws IOException {
        serverId = idOf(stateDir);
        if (options.config().sharedFs()) {
            Path dir = stateDir.resolve("pilot-runtime");
            PrivateFiles.createPrivateDirectories(dir);
            stagedRuntime = RuntimeScript.install(dir);
        }
        cancelLeftovers();
    }

    /** 12 hex digits of the SHA-256 of the state directory's real path. */
    static String idOf(Path stateDir) throws IOException {
        String path = stateDir.toRealPath().toString();
        try {
            byte[] h = MessageDigest.getInstance("SHA-256").digest(path.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(h, 0, 6);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every Java 17", e);
        }
    }

    private String namePrefix() {
        return "bj-" + serverId + "-";
    }

    private void cancelLeftovers() {
        Commands.Result r = commands.run(List.of("squeue", "-h", "-u", user, "-o", SlurmJob.SQUEUE_FORMAT), null,
                COMMAND_TIMEOUT).join();
        if (!r.ok()) {
            LOG.warning("could not list this user's Slurm jobs to cancel pilots an earlier server left: " + r.problem());
            return;
        }
        List<String> leftovers = new ArrayList<>();
        for (SlurmJob j : SlurmJob.parseSqueue(r.stdout()).values()) {
            if (j.name() != null && j.name().startsWith(namePrefix())) leftovers.add(j.id());
        }
        if (leftovers.isEmpty()) return;
        LOG.warning("cancelling " + leftovers.size() + " pilot(s) an earlier server on this state directory left in "
                + "Slurm's queue: " + leftovers);
        scancelNow(leftovers);
    }

    // ------------------------------------------------------------------ WorkerLauncher

    @Override
    public Worker launch(String id, WorkerListener workerListener) {
        SlurmWorker w = new SlurmWorker(id, this, workerListener, options.scratchDir().resolve("pilot-" + id + ".log"));
        pilots.put(id, w);
        loop.execute(() -> submit(w));
        return w;
    }

    @Override
    public String name() {
        return "slurm";
    }

    private void submit(SlurmWorker w) {
        if (closed) {
            w.submitFailed("the server is stopping");
            return;
        }
        if (serverId == null) {
            w.submitFailed("the state directory could not be prepared for pilots (see the server log)");
            return;
        }
        InetSocketAddress at = listener.address();
        PilotScript script = PilotScript.build(options.config(), namePrefix() + w.id, "blender-jobs pilot " + w.id
                        + " of server " + serverId, w.id, at.getAddress().getHostAddress(), at.getPort(), w.secret,
                w.marker, options.progressInterval(), stagedRuntime == null ? runtimeSource : null, stagedRuntime);
        commands.run(script.sbatchArgs(), script.text().getBytes(StandardCharsets.UTF_8), COMMAND_TIMEOUT)
                .thenAccept(r -> loop.execute(() -> {
                    java.util.Optional<String> id = r.ok() ? SlurmJob.parseSbatch(r.stdout()) : java.util.Optional.empty();
                    if (id.isPresent()) {
                        w.submitted(id.get());
                        pollSoon();
                    } else {
                        w.submitFailed("sbatch refused the pilot job: " + r.problem());
                    }
                }));
    }

    // ------------------------------------------------------------------ polling (loop)

    private void schedulePoll(long delayMs) {
        if (closed) return;
        if (nextPoll != null) nextPoll.cancel(false);
        nextPoll = loop.schedule(this::poll, delayMs, TimeUnit.MILLISECONDS);
    }

    /** Polls at once (a pilot was submitted, or its channel ended). */
    void pollSoon() {
        loop.execute(() -> {
            if (!pollInFlight) schedulePoll(0);
        });
    }

    private void poll() {
        if (closed || pollInFlight) return;
        List<SlurmWorker> tracked = new ArrayList<>();
        for (SlurmWorker w : pilots.values()) {
            if (w.jobId() != null && w.phase != SlurmWorker.Phase.EXITED) tracked.add(w);
        }
        if (tracked.isEmpty()) {
            schedulePoll(interval());
            return;
        }
        List<String> ids = tracked.stream().map(SlurmWorker::jobId).toList();
        long at = System.currentTimeMillis();
        pollInFlight = true;
        commands.run(List.of("squeue", "-h", "-j", String.join(",", ids), "-o", SlurmJob.SQUEUE_FORMAT), null,
                COMMAND_TIMEOUT).thenAccept(r -> loop.execute(() -> {
                    pollInFlight = false;
                    polled(tracked, r, at);
                    schedulePoll(interval());
                }));
    }

    private void polled(List<SlurmWorker> tracked, Commands.Result r, long at) {
        Map<String, SlurmJob> jobs;
        if (r.ok()) {
            jobs = SlurmJob.parseSqueue(r.stdout());
        } else if (r.stderr().contains("Invalid job id")) {
            jobs = Map.of(); // none of them is in the queue any more
        } else {
            if (pollFailingSince == 0) {
                pollFailingSince = at;
                LOG.warning("squeue failed: " + r.problem() + "; trying again");
            }
            if (at - pollFailingSince > options.startTimeout().toMillis()) {
                // Without Slurm's view a starting pilot could wait forever: it fails instead.
                for (SlurmWorker w : tracked) {
                    if (w.phase == SlurmWorker.Phase.QUEUED) {
                        w.finish(false, -1, "squeue has failed for " + (at - pollFailingSince) / 1000 + " s ("
                                + r.problem() + "), so the pilot's start cannot be followed", null);
                        scancel(w.jobId());
                    }
                }
            }
            return;
        }
        pollFailingSince = 0;
        for (SlurmWorker w : tracked) w.polled(jobs.get(w.jobId()), at);
    }

    private long interval() {
        boolean starting = false;
        for (SlurmWorker w : pilots.values()) {
            if (w.phase == SlurmWorker.Phase.ENDING) return FAST_POLL_MS;
            if (w.phase != SlurmWorker.Phase.CONNECTED) starting = true;
        }
        return starting ? STARTING_POLL_MS : SLOW_POLL_MS;
    }

    /** Asks scontrol what became of a pilot that left the queue; the answer goes to {@link SlurmWorker#fate}. */
    void askFate(SlurmWorker w) {
        String id = w.jobId();
        commands.run(List.of("scontrol", "-o", "show", "job", id), null, COMMAND_TIMEOUT)
                .thenAccept(r -> loop.execute(() -> w.fate(r.ok() ? SlurmJob.parseScontrol(r.stdout()).orElse(null) : null)));
    }

    // ------------------------------------------------------------------ for pilots

    EventLoop loop() {
        return loop;
    }

    SlurmConfig config() {
        return options.config();
    }

    Duration startTimeout() {
        return options.startTimeout();
    }

    Duration stopGrace() {
        return options.stopGrace();
    }

    /** Where pilots connect, for messages and getStats. */
    public String addressText() {
        InetSocketAddress a = listener.address();
        return a.getAddress().getHostAddress() + ":" + a.getPort();
    }

    public InetSocketAddress address() {
        return listener.address();
    }

    void forget(SlurmWorker w) {
        pilots.remove(w.id, w);
    }

    /** scancel in the background; a failure is logged (the pilot then ends by its walltime at the latest). */
    void scancel(String jobId) {
        commands.run(List.of("scancel", jobId), null, COMMAND_TIMEOUT).thenAccept(r -> {
            if (!r.ok()) LOG.warning("scancel " + jobId + " failed: " + r.problem());
        });
    }

    /** scancel on the calling thread (shutdown), bounded. */
    void scancelNow(List<String> jobIds) {
        if (jobIds.isEmpty()) return;
        List<String> cmd = new ArrayList<>(List.of("scancel"));
        cmd.addAll(jobIds);
        try {
            Commands.Result r = commands.run(cmd, null, COMMAND_TIMEOUT).get(COMMAND_TIMEOUT.toSeconds() + 5, TimeUnit.SECONDS);
            if (!r.ok()) LOG.warning("scancel " + jobIds + " failed: " + r.problem());
        } catch (Exception e) {
            LOG.warning("scancel " + jobIds + " failed: " + e);
        }
    }

    /**
     * Cancels every pilot of this server still in Slurm's queue and stops listening. Called at
     * shutdown after the pool asked its workers to stop: whatever did not stop by then goes.
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        List<String> left = new ArrayList<>();
        for (SlurmWorker w : pilots.values()) {
            if (w.jobId() != null) left.add(w.jobId());
        }
        if (!left.isEmpty()) {
            LOG.info("cancelling the pilots still in Slurm's queue: " + left);
            scancelNow(left);
        }
        listener.close();
        loop.close();
        if (commands instanceof AutoCloseable c) {
            try {
                c.close();
            } catch (Exception ignored) {
                // threads are daemons
            }
        }
    }
}
