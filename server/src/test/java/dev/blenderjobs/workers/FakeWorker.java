package dev.blenderjobs.workers;

import dev.blenderjobs.channel.ChannelCodec;
import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.model.Timing;

import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A worker for the pool's unit tests: it records what the pool asked of it, and the test plays
 * the runtime's side of the channel through it. By default it behaves as the real runtime does:
 * it answers each run with started at once and says idle right after each outcome. A test that
 * needs a Slurm-like worker gives it a lease ({@link #endsAt}) and a {@link #batch} job.
 */
final class FakeWorker implements Worker {
    final String id;
    final WorkerListener listener;
    final List<ToWorker.Run> runs = new CopyOnWriteArrayList<>();
    volatile boolean stopped;
    volatile boolean killed;
    /** Its resident memory in bytes, or 0 for unknown. */
    volatile long rss;
    /** The end of its lease, in epoch ms of the test's clock, or 0 for none. */
    volatile long endsAt;
    /** The batch job it says it runs in, or null for a local worker. */
    volatile BatchJob batch;
    /** A runtime that answers each run with started, as the real one does at once. */
    volatile boolean takesRuns = true;
    /** A runtime that says idle, clean, after each outcome (false: the test says it). */
    volatile boolean becomesIdle = true;
    /** Whether its last run has gone out to it (a pilot's input files take a while). */
    volatile boolean delivered = true;

    FakeWorker(String id, WorkerListener listener) {
        this.id = id;
        this.listener = listener;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public long pid() {
        return 1000 + Math.abs(id.hashCode() % 1000);
    }

    @Override
    public OptionalLong residentBytes() {
        return rss == 0 ? OptionalLong.empty() : OptionalLong.of(rss);
    }

    @Override
    public void run(ToWorker.Run run, JobLog log) {
        runs.add(run);
        if (takesRuns) send(new FromWorker.Started(run.jobId()));
    }

    @Override
    public boolean delivered() {
        return delivered;
    }

    @Override
    public OptionalLong endsAtMillis() {
        return endsAt == 0 ? OptionalLong.empty() : OptionalLong.of(endsAt);
    }

    @Override
    public BatchJob batchJob() {
        return batch;
    }

    @Override
    public void stop() {
        stopped = true;
    }

    @Override
    public void kill() {
        killed = true;
    }

    @Override
    public void awaitGone(Duration grace) {
    }

    /** Its hello: the handshake is done and it is ready for a first run. */
    void connect() {
        listener.connected(this, new FromWorker.Hello(ChannelCodec.PROTOCOL, "0.2.0", id, pid(),
                "3.4.1", "3.10.8", "0".repeat(64)));
    }

    /** Sends a message as the runtime would, followed by idle after an outcome when it becomes idle. */
    void send(FromWorker m) {
        listener.message(this, m);
        if (becomesIdle && (m instanceof FromWorker.Completed || m instanceof FromWorker.Failed)) idle();
    }

    /** Completes a job with a two-byte result. */
    void complete(String jobId) {
        send(new FromWorker.Completed(jobId, 2, "a".repeat(64), null, Timing.NONE));
    }

    void idle() {
        listener.message(this, new FromWorker.Idle(null));
    }

    void exit(boolean connected, int code) {
        listener.exited(this, new WorkerExit(connected, code, connected ? null : "it failed", List.of("last line"), null));
    }
}
