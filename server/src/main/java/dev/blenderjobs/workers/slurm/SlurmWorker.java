package dev.blenderjobs.workers.slurm;

import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ProtocolViolation;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.channel.WorkerChannel;
import dev.blenderjobs.workers.BatchJob;
import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.workers.RemoteResults;
import dev.blenderjobs.workers.ResultCheck;
import dev.blenderjobs.workers.Worker;
import dev.blenderjobs.workers.WorkerExit;
import dev.blenderjobs.workers.WorkerListener;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One pilot: a Slurm job running one Blender worker that connects back to the server's
 * {@link PilotListener}. Its life, all decided on the launcher's own event loop:
 * <pre>
 *   SUBMITTING --sbatch ok--> QUEUED --authenticated connection--> CONNECTED --channel ends--> ENDING --> EXITED
 *        |                      |  (pending with a blocking reason, or running without connecting,
 *        |                      |   longer than the start timeout: scancel; ended before connecting)
 *        +--sbatch refused------+--------------------------------------------------------------> EXITED (not connected)
 * </pre>
 * When the channel of a connected pilot ends, Slurm is asked what happened (the job's final
 * state and exit code, for a few seconds): a job that ended by itself is an exit like a local
 * process's (exit code, signal); one taken away (cancelled, node failure, walltime) or still
 * running on a node that no longer answers is <em>lost</em> ({@link WorkerExit#lost}), and is
 * cancelled if it is still there. {@link WorkerListener#exited} is reported exactly once, last.
 *
 * <p>The channel's reader thread does the per-message work, as for a local worker: console
 * chunks go into the running job's log, result chunks into its result folder
 * ({@link RemoteResults}), and a Completed is checked against those files ({@link ResultCheck})
 * before the pool sees it.
 */
final class SlurmWorker implements Worker {
    private static final Logger LOG = Logger.getLogger(SlurmWorker.class.getName());
    /** How long Slurm is asked about a pilot whose channel ended before it is taken as lost. */
    static final Duration FATE_BOUND = Duration.ofSeconds(5);
    /** After the channel of a killed pilot closed, how long it may take to leave Slurm's queue before scancel. */
    static final Duration KILL_GRACE = Duration.ofSeconds(2);

    enum Phase { SUBMITTING, QUEUED, CONNECTED, ENDING, EXITED }

    final String id;
    final String secret = WorkerChannel.randomHex(32);
    final String marker = WorkerChannel.randomHex(12);
    private final SlurmLauncher launcher;
    private final WorkerListener listener;
    private final JobLog console;
    private final Path consoleFile;
    private final CountDownLatch gone = new CountDownLatch(1);

    // Owned by the launcher's loop.
    Phase phase = Phase.SUBMITTING;
    private long submittedAt;
    /** The last time Slurm said the job had not started yet (or its submission). */
    private long notStartedAt;
    private long runningSince;
    private long blockedSince;
    private long endingSince;
    private String closeWhy;
    private boolean stopRequested;
    private boolean killRequested;
    private boolean scancelled;

    // Read from other threads.
    private volatile String jobId;
    private volatile String state;
    private volatile String reason;
    private volatile String node;
    private volatile long endsAt;
    private volatile long pid = -1;
    private volatile WorkerChannel channel;
    private volatile ToWorker.Run current;
    private volatile JobLog currentLog;
    /** The current attempt's results, on the reader thread. */
    private RemoteResults results;

    SlurmWorker(String id, SlurmLauncher launcher, WorkerListener listener, Path consoleFile) {
        this.id = id;
        this.launcher = launcher;
        this.listener = listener;
        this.consoleFile = consoleFile;
        this.console = new JobLog(consoleFile, 50);
        this.submittedAt = System.currentTimeMillis();
        this.notStartedAt = submittedAt;
        this.endsAt = submittedAt + launcher.config().walltime().toMillis();
    }

    // ------------------------------------------------------------------ Worker (any thread)

    @Override
    public String id() {
        return id;
    }

    @Override
    public long pid() {
        return pid;
    }

    @Override
    public OptionalLong residentBytes() {
        return OptionalLong.empty(); // on another machine: not measured
    }

    @Override
    public OptionalLong endsAtMillis() {
        return OptionalLong.of(endsAt);
    }

    @Override
    public boolean delivered() {
        WorkerChannel c = channel;
        return c == null || c.drained();
    }

    @Override
    public BatchJob batchJob() {
        return new BatchJob("slurm", jobId, state == null ? (jobId == null ? "SUBMITTING" : null) : state, reason, node);
    }

    String jobId() {
        return jobId;
    }

    @Override
    public void run(ToWorker.Run run, JobLog log) {
        WorkerChannel c = channel;
        if (c == null) throw new IllegalStateException("pilot " + id + " is not connected");
        currentLog = log;
        current = run;
        if (launcher.config().sharedFs()) {
            c.send(run); // the node sees the state directory: the files stay where they are
            return;
        }
        ToWorker.RunFiles f = run.files();
        c.sendFile(run.jobId(), "script", Path.of(f.script()));
        c.sendFile(run.jobId(), "passedData", Path.of(f.passedData()));
        if (f.library() != null) c.sendFile(run.jobId(), "library", Path.of(f.library()));
        if (f.blendFile() != null) c.sendFile(run.jobId(), "blendFile", Path.of(f.blendFile()));
        // Paths inside the job folder the runtime makes for itself on the node.
        c.send(new ToWorker.Run(run.jobId(), run.attempt(), run.spec(), new ToWorker.RunFiles("input/script.py",
                "input/passed_data.json", f.library() == null ? null : "input/passed.blend",
                f.blendFile() == null ? null : "input/scene.blend", "work", "result")));
    }

    @Override
    public void stop() {
        launcher.loop().execute(() -> {
            stopRequested = true;
            switch (phase) {
                case QUEUED -> {
                    scancel("stopped before it connected");
                    finish(false, -1, null, null);
                }
                case CONNECTED -> {
                    channel.send(new ToWorker.Shutdown());
                    launcher.loop().schedule(() -> {
                        if (phase == Phase.CONNECTED || phase == Phase.ENDING) {
                            LOG.warning("pilot " + id + " did not stop in time; cancelling it");
                            killNow();
                        }
                    }, launcher.stopGrace().toMillis(), TimeUnit.MILLISECONDS);
                }
                default -> {
                    // SUBMITTING: handled when sbatch answers; ENDING, EXITED: on their way
                }
            }
        });
    }

    @Override
    public void kill() {
        launcher.loop().execute(this::killNow);
    }

    private void killNow() {
        killRequested = true;
        switch (phase) {
            case QUEUED -> {
                scancel("killed before it connected");
                finish(false, -1, null, null);
            }
            case CONNECTED, ENDING -> {
                // Closing the channel makes the runtime kill what its job started and exit; the
                // pilot is cancelled if it is still in Slurm's queue shortly after.
                WorkerChannel c = channel;
                if (c != null) c.close("the server stopped the worker");
                launcher.loop().schedule(() -> {
                    if (phase != Phase.EXITED) scancel("it did not end when its channel was closed");
                }, KILL_GRACE.toMillis(), TimeUnit.MILLISECONDS);
            }
            default -> {
                // SUBMITTING: handled when sbatch answers
            }
        }
    }

    @Override
    public void awaitGone(Duration grace) {
        try {
            if (gone.await(Math.max(0, grace.toMillis()), TimeUnit.MILLISECONDS)) return;
            String j = jobId;
            if (j != null) launcher.scancelNow(List.of(j));
            launcher.loop().execute(() -> {
                if (phase != Phase.EXITED) {
                    scancelled = true;
                    killRequested = true;
                    WorkerChannel c = channel;
                    if (c != null) c.close("the server is stopping");
                }
            });
            if (!gone.await(FATE_BOUND.toMillis() + 1000, TimeUnit.MILLISECONDS)) {
                launcher.loop().execute(() -> finish(channel != null, -1, "the server stopped", null));
                gone.await(1, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ------------------------------------------------------------------ life (launcher loop)

    void submitted(String slurmJobId) {
        jobId = slurmJobId;
        state = "PENDING";
        if (stopRequested || killRequested) {
            scancel("stopped before it started");
            finish(false, -1, null, null);
            return;
        }
        phase = Phase.QUEUED;
        LOG.fine("pilot " + id + " submitted as Slurm job " + slurmJobId);
    }

    void submitFailed(String problem) {
        finish(false, -1, problem, null);
    }

    /** What squeue said at {@code at} (epoch ms); {@code job} null when the job is not in the queue. */
    void polled(SlurmJob job, long at) {
        if (phase == Phase.EXITED || phase == Phase.SUBMITTING) return;
        if (job == null) {
            if (phase == Phase.QUEUED || phase == Phase.ENDING) launcher.askFate(this);
            return;
        }
        state = job.state();
        reason = job.reason();
        if (job.node() != null) node = job.node();
        if (job.timeLeftSeconds() != null && job.running()) {
            endsAt = at + job.timeLeftSeconds() * 1000;
        } else if ("PENDING".equals(job.state())) {
            notStartedAt = at;
            endsAt = at + launcher.config().walltime().toMillis();
        }
        if (phase == Phase.ENDING) {
            if (!job.live()) ended(job);
            return;
        }
        if (phase != Phase.QUEUED) return;
        long limit = launcher.startTimeout().toMillis();
        if ("PENDING".equals(job.state())) {
            runningSince = 0;
            if (job.reason() != null && !SlurmJob.WAITING_TURN.contains(job.reason())) {
                if (blockedSince == 0) blockedSince = at;
                if (at - blockedSince > limit) {
                    scancel("it could not start");
                    finish(false, -1, "the pilot (Slurm job " + jobId + ") could not start: Slurm keeps it PENDING "
                            + "with reason " + job.reason() + " (for " + (at - blockedSince) / 1000 + " s, more than "
                            + "the start timeout of " + launcher.startTimeout().toSeconds() + " s; --worker-start-timeout). "
                            + "Check the partition, account and limits given to the pilots (--slurm-partition, "
                            + "--slurm-account, --slurm-qos, --slurm-sbatch-arg)", null);
                }
            } else {
                blockedSince = 0;
            }
        } else if (job.running()) {
            blockedSince = 0;
            if (runningSince == 0) runningSince = at;
            if (at - runningSince > limit) {
                scancel("it did not connect back");
                finish(false, -1, "the pilot (Slurm job " + jobId + ") ran on " + (node == null ? "its node" : node)
                        + " for " + (at - runningSince) / 1000 + " s without connecting back to the server at "
                        + launcher.addressText() + ". Check that the nodes can reach that address (--listen HOST) and "
                        + "that Blender starts there (--slurm-blender)", null);
            }
        }
    }

    /** The job left the queue (scontrol's view), or {@code job} null when Slurm forgot it. */
    void fate(SlurmJob job) {
        if (phase == Phase.EXITED) return;
        if (job != null && job.live()) return; // squeue raced with it: asked again on the next poll
        if (phase == Phase.QUEUED) {
            Integer code = job == null ? null : job.exitCode();
            if (job != null && job.node() != null) node = job.node();
            String meaning = code == null ? null : PilotScript.meaningOf(code, launcher.config(), node);
            String state = job == null ? "unknown (Slurm no longer knows the job)" : job.state();
            finish(false, code == null ? -1 : code, "the pilot (Slurm job " + jobId + ") ended before connecting back: "
                    + "Slurm state " + state + (code == null ? "" : ", exit code " + code)
                    + (meaning != null ? ": " + meaning : code != null && code == 1 ? ": Blender's Python failed at "
                    + "start-up; can the nodes reach the server at " + launcher.addressText() + " (--listen)?" : ""), null);
        } else if (phase == Phase.ENDING) {
            ended(job);
        }
    }

    /** A proven connection for this pilot arrived (on the loop). */
    void connected(WorkerChannel c) {
        if (phase != Phase.QUEUED) {
            c.close("the pilot " + id + " is " + phase);
            return;
        }
        channel = c;
        pid = c.hello().pid();
        phase = Phase.CONNECTED;
        blockedSince = 0;
        LOG.fine("pilot " + id + " (Slurm job " + jobId + ") connected from " + c.remoteAddress());
        c.start("pilot-" + id, new ChannelEvents());
        listener.connected(this, c.hello());
    }

    private void closed(String why) {
        if (phase != Phase.CONNECTED) return;
        phase = Phase.ENDING;
        closeWhy = why;
        endingSince = System.currentTimeMillis();
        launcher.pollSoon();
        launcher.loop().schedule(() -> {
            if (phase != Phase.ENDING) return;
            // Slurm still shows it (a node that died is noticed only after SlurmdTimeout): lost.
            String still = state;
            scancel("its channel ended and it did not leave the queue");
            finish(true, -1, null, stopRequested || killRequested ? null : "the connection to pilot " + id
                    + " (Slurm job " + jobId + " on " + (node == null ? "its node" : node) + ") broke (" + why
                    + ") and Slurm still showed the job " + still + " " + FATE_BOUND.toSeconds() + " s later, so its "
                    + "node may be down; the pilot was cancelled");
        }, FATE_BOUND.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The pilot's job is over (or {@code job} null: Slurm forgot it); report the exit. */
    private void ended(SlurmJob job) {
        Integer code = job == null ? null : job.exitCode();
        String lost = null;
        if (!(stopRequested || killRequested)) {
            if (job == null) {
                lost = "the pilot " + id + " (Slurm job " + jobId + ") closed its connection (" + closeWhy
                        + ") and Slurm no longer knows the job";
            } else if (SlurmJob.TAKEN_AWAY.contains(job.state())) {
                lost = "the pilot " + id + " (Slurm job " + jobId + " on " + (node == null ? "its node" : node)
                        + ") was " + describe(job.state()) + " (Slurm state " + job.state()
                        + (job.reason() != null ? ", reason " + job.reason() : "") + ")";
            }
        }
        finish(true, code == null ? -1 : code, null, lost);
    }

    private static String describe(String state) {
        return switch (state) {
            case "CANCELLED" -> "cancelled";
            case "TIMEOUT" -> "ended by its walltime";
            case "NODE_FAIL" -> "lost with its node";
            case "PREEMPTED" -> "preempted";
            case "OUT_OF_MEMORY" -> "killed for using more memory than it was given";
            default -> "ended by Slurm";
        };
    }

    private void scancel(String why) {
        if (scancelled || jobId == null) return;
        scancelled = true;
        LOG.fine("cancelling pilot " + id + " (Slurm job " + jobId + "): " + why);
        launcher.scancel(jobId);
    }

    /** Reports the exit, once. */
    void finish(boolean connected, int exitCode, String problem, String lost) {
        if (phase == Phase.EXITED) return;
        phase = Phase.EXITED;
        launcher.forget(this);
        WorkerChannel c = channel;
        if (c != null) c.close();
        console.close();
        List<String> tail = console.tail();
        try {
            java.nio.file.Files.deleteIfExists(consoleFile);
        } catch (java.io.IOException e) {
            LOG.log(Level.FINE, "could not delete " + consoleFile, e);
        }
        if (problem != null) LOG.warning("pilot " + id + ": " + problem);
        else if (lost != null) LOG.warning("pilot " + id + " lost: " + lost);
        gone.countDown();
        listener.exited(this, new WorkerExit(connected, exitCode, problem, tail, null, lost));
    }

    // ------------------------------------------------------------------ channel (reader thread)

    private final class ChannelEvents implements WorkerChannel.Listener {
        @Override
        public void message(FromWorker message) {
            ToWorker.Run run = current;
            if (message instanceof FromWorker.Console out) {
                JobLog log = currentLog;
                if (out.jobId() != null && run != null && out.jobId().equals(run.jobId()) && log != null) {
                    log.append(out.data(), 0, out.data().length);
                } else {
                    console.append(out.data(), 0, out.data().length);
                    if (LOG.isLoggable(Level.FINE)) {
                        LOG.fine("[" + id + "] " + new String(out.data(), java.nio.charset.StandardCharsets.UTF_8).stripTrailing());
                    }
                }
                return;
            }
            try {
                if (message instanceof FromWorker.ResultChunk chunk) {
                    if (launcher.config().sharedFs()) throw new ProtocolViolation("a result chunk, but its results are "
                            + "written in place (--slurm-shared-fs)");
                    if (run == null) throw new ProtocolViolation("a result chunk while it ran no job");
                    if (results == null || !chunk.jobId().equals(run.jobId())) {
                        results = new RemoteResults(run.jobId(), Path.of(run.files().resultDir()));
                    }
                    results.accept(chunk);
                    return;
                }
                if (run != null && (message instanceof FromWorker.Completed || message instanceof FromWorker.Failed)
                        && message.jobId().equals(run.jobId())) {
                    JobLog log = currentLog;
                    if (log != null) log.flush();
                    if (!launcher.config().sharedFs()) {
                        RemoteResults r = results != null ? results
                                : new RemoteResults(run.jobId(), Path.of(run.files().resultDir()));
                        results = null;
                        r.finish();
                    }
                    if (message instanceof FromWorker.Completed completed) ResultCheck.verify(completed, run.files());
                    current = null;
                    currentLog = null;
                }
            } catch (ProtocolViolation v) {
                violation(v);
                channel.close(v.getMessage());
                return;
            }
            listener.message(SlurmWorker.this, message);
        }

        @Override
        public void violation(ProtocolViolation violation) {
            LOG.warning("pilot " + id + " broke the channel protocol: " + violation.getMessage() + "; cancelling it");
            listener.violation(SlurmWorker.this, violation.getMessage());
            if (results != null) results.abandon();
            kill();
        }

        @Override
        public void closed(String why) {
            if (results != null) results.abandon();
            launcher.loop().execute(() -> SlurmWorker.this.closed(why));
        }
    }

    @Override
    public String toString() {
        return "pilot " + id + " (Slurm job " + jobId + ", " + phase + ")";
    }
}
