package dev.blenderjobs.workers;

import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.concurrent.Trace;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.JobResult;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The worker slots: workers kept warm, each running one job at a time. Owns every slot's state
 * on the event loop; starts workers through a {@link WorkerLauncher} (which knows where and how
 * they run), recycles and replaces them, and turns their events into attempt outcomes for its
 * owner ({@link WorkerEvents}). Recycling: after {@code maxJobsPerWorker} jobs (once no job
 * waits, or after twice as many), past
 * {@code maxWorkerMemoryMb} of resident memory, after a job that needed a fresh process, after a
 * runtime failure or a protocol violation, when the runtime says its job left state behind that
 * cannot be undone, and always after an aborted or crashed job.
 * <p>
 * A worker is free again only when it says {@code idle} after a job's outcome (it checks and
 * resets after sending the outcome, off the outcome's path). A worker that does not take a run
 * (answer {@code started}) within {@code takeTimeout} of receiving it is killed, and so is one
 * that does not say idle within {@code idleTimeout}: its runtime no longer works, and jobs would
 * wait forever. Both rules hold for every worker, local or remote; for a worker that receives a
 * job's input files over its channel first (a pilot), the take timeout counts from when the run
 * has been delivered ({@link Worker#delivered}).
 * <p>
 * How many slots there are is the {@link Scaling} policy's: a fixed number started at once (the
 * local executor, {@code --workers N}), or a dynamic set that grows while jobs wait
 * ({@link #waiting}), shrinks when workers idle, and retires workers whose lease runs out
 * ({@link Worker#endsAtMillis}), never giving a job to a worker that has less time left than the
 * job's timeout. The policy counts a worker as idle (free, releasable) only once it said idle.
 */
public final class WorkerPool {
    private static final Logger LOG = Logger.getLogger(WorkerPool.class.getName());
    /** Consecutive failed starts of one slot after which waiting jobs are failed. */
    static final int FAILING_AFTER = 3;
    static final Duration MAX_RESTART_DELAY = Duration.ofSeconds(30);
    /**
     * How long a worker may take to answer a run with {@code started}. Its main loop takes the
     * run as soon as it has reset Blender after the previous job (milliseconds, a second or two
     * after a job that filled Blender with data).
     */
    public static final Duration TAKE_TIMEOUT = Duration.ofSeconds(10);
    /**
     * How long a worker may take, after a job's outcome, to say it is idle: checking what the job
     * left and resetting Blender to empty data, seconds at most after a job that filled it.
     */
    public static final Duration IDLE_TIMEOUT = Duration.ofSeconds(60);

    /**
     * Pool-wide settings.
     *
     * @param restartBackoff the delay before a slot whose worker failed to start tries again; it
     *                       doubles with each failure in a row, up to {@link #MAX_RESTART_DELAY}
     * @param takeTimeout    how long a worker may take to answer a run with {@code started}
     * @param idleTimeout    how long a worker may take to say idle after a job's outcome
     * @param scaling        how many workers, and for how long each may live
     */
    public record Settings(int workers, int maxJobsPerWorker, long maxWorkerMemoryMb, Duration restartBackoff,
                           Duration takeTimeout, Duration idleTimeout, Scaling scaling) {
        public Settings {
            if (scaling.max() != workers) {
                throw new IllegalArgumentException("workers " + workers + " but scaling up to " + scaling.max());
            }
        }

        /** {@code workers} slots, always (the local executor), with the default timeouts. */
        public Settings(int workers, int maxJobsPerWorker, long maxWorkerMemoryMb, Duration restartBackoff) {
            this(workers, maxJobsPerWorker, maxWorkerMemoryMb, restartBackoff, TAKE_TIMEOUT, IDLE_TIMEOUT,
                    Scaling.fixed(workers));
        }

        /** {@code workers} slots, always, with timeouts of their own (tests). */
        public Settings(int workers, int maxJobsPerWorker, long maxWorkerMemoryMb, Duration restartBackoff,
                        Duration takeTimeout, Duration idleTimeout) {
            this(workers, maxJobsPerWorker, maxWorkerMemoryMb, restartBackoff, takeTimeout, idleTimeout,
                    Scaling.fixed(workers));
        }

        /** Slots as {@code scaling} says, with the default timeouts. */
        public Settings(int workers, int maxJobsPerWorker, long maxWorkerMemoryMb, Duration restartBackoff,
                        Scaling scaling) {
            this(workers, maxJobsPerWorker, maxWorkerMemoryMb, restartBackoff, TAKE_TIMEOUT, IDLE_TIMEOUT, scaling);
        }
    }

    /** How often a dynamic pool looks at idle times and leases. */
    static final Duration TICK = Duration.ofSeconds(1);
    /** How often the pool looks whether a run still on its way to a worker has reached it. */
    static final Duration DELIVERY_POLL = Duration.ofMillis(200);

    /** What a slot is doing; shown in getStats (protocol.md lists these names). */
    public enum SlotState { STARTING, IDLE, BUSY, WAITING_TO_RESTART, SHUT_DOWN }

    /**
     * One slot, for getStats. {@code jobId} is null when the slot runs none; {@code timeLeftSeconds}
     * when its worker has no lease; {@code draining} unless it is (it takes no more jobs: its lease
     * is ending); {@code batchJob} unless its worker is a batch job (a Slurm pilot).
     */
    public record SlotView(String worker, SlotState state, long pid, int jobsRun, int processesStarted, String jobId,
                           Long timeLeftSeconds, Boolean draining, BatchJob batchJob) {
        public SlotView(String worker, SlotState state, long pid, int jobsRun, int processesStarted, String jobId) {
            this(worker, state, pid, jobsRun, processesStarted, jobId, null, null, null);
        }
    }

    /** Mutable state of one slot; touched only on the event loop. */
    private static final class Slot {
        final int index;
        SlotState state = SlotState.STARTING;
        Worker worker;
        int generation;
        int jobsRun;
        ToWorker.Run job;
        /** Whether the worker answered the job's run with started. */
        boolean taken;
        /** The check that it does, cancelled when it has. */
        ScheduledFuture<?> takeCheck;
        /** Between a job's outcome and the worker's idle message: not free yet. */
        boolean cleaning;
        ScheduledFuture<?> idleCheck;
        boolean aborting;
        int failedStarts;
        /** Its lease ends soon: it takes no more jobs and goes when idle (dynamic pools). */
        boolean draining;
        /** When it last became idle (the pool's clock). */
        long idleSince;
        /**
         * It has run its jobs ({@code maxJobsPerWorker}) while others waited: it is replaced at
         * the first moment no job waits, or after twice its jobs.
         */
        boolean recycleDue;

        Slot(int index) {
            this.index = index;
        }

        String name() {
            return "w" + index;
        }
    }

    private final Settings settings;
    private final WorkerLauncher launcher;
    private final EventLoop loop;
    private final WorkerEvents events;
    private final Scaling scaling;
    private final LongSupplier clock;
    private final List<Slot> slots = new ArrayList<>();
    /** Replaced workers still finishing their exit. */
    private final List<Worker> retiring = new ArrayList<>();
    private int nextIndex = 1;
    /** Jobs waiting for a worker, as the owner last said ({@link #waiting}). */
    private int waiting;
    private boolean shuttingDown;

    public WorkerPool(Settings settings, WorkerLauncher launcher, EventLoop loop, WorkerEvents events) {
        this(settings, launcher, loop, events, System::currentTimeMillis);
    }

    /** With a clock of its own (epoch ms) for idle times and leases: tests move time by hand. */
    public WorkerPool(Settings settings, WorkerLauncher launcher, EventLoop loop, WorkerEvents events,
                      LongSupplier clock) {
        this.settings = settings;
        this.scaling = settings.scaling();
        this.launcher = launcher;
        this.loop = loop;
        this.events = events;
        this.clock = clock;
        for (int i = 0; i < scaling.min(); i++) slots.add(new Slot(nextIndex++));
    }

    /** Starts every slot's first worker in the background (a dynamic pool: its minimum). */
    public void start() {
        loop.execute(() -> {
            slots.forEach(this::launch);
            if (scaling.dynamic()) loop.schedule(this::tickPeriodically, TICK.toMillis(), TimeUnit.MILLISECONDS);
        });
    }

    private void tickPeriodically() {
        if (shuttingDown) return;
        tick();
        loop.schedule(this::tickPeriodically, TICK.toMillis(), TimeUnit.MILLISECONDS);
    }

    private void launch(Slot slot) {
        loop.assertInLoop();
        if (shuttingDown) {
            slot.state = SlotState.SHUT_DOWN;
            return;
        }
        slot.generation++;
        slot.jobsRun = 0;
        slot.recycleDue = false;
        slot.job = null;
        slot.aborting = false;
        slot.cleaning = false;
        slot.state = SlotState.STARTING;
        String id = slot.name() + "." + slot.generation;
        LOG.fine("starting worker " + id + " (" + launcher.name() + ")");
        slot.worker = launcher.launch(id, new WorkerListener() {
            @Override
            public void connected(Worker w, FromWorker.Hello hello) {
                loop.execute(() -> onConnected(slot, w, hello));
            }

            @Override
            public void message(Worker w, FromWorker message) {
                loop.execute(() -> onMessage(slot, w, message));
            }

            @Override
            public void violation(Worker w, String problem) {
                loop.execute(() -> onViolation(slot, w, problem));
            }

            @Override
            public void exited(Worker w, WorkerExit exit) {
                loop.execute(() -> onExit(slot, w, exit));
            }
        });
    }

    // ------------------------------------------------------------------ commands (event loop)

    /**
     * Hands the attempt to a free worker. Returns false when none can take it now; for a job
     * that needs a fresh process, a free used worker is then recycled so that one soon can.
     */
    public boolean tryRun(ToWorker.Run run, JobLog log) {
        loop.assertInLoop();
        boolean fresh = run.spec().freshProcess();
        long now = clock.getAsLong();
        Slot chosen = null;
        for (Slot s : slots) {
            if (s.state != SlotState.IDLE || s.draining) continue;
            if (fresh && s.jobsRun > 0) continue;
            if (!fits(s, run, now)) continue;
            chosen = s;
            break;
        }
        if (chosen == null) {
            if (fresh && !hasFreshSoon()) {
                for (Slot s : slots) {
                    if (s.state == SlotState.IDLE && !s.draining) {
                        recycle(s, "a job asked for a fresh process");
                        break;
                    }
                }
            }
            if (run.spec().timeout() > 0 && !shuttingDown && !hasTimeSoon(run, now)) makeRoomFor(run, now);
            return false;
        }
        chosen.state = SlotState.BUSY;
        chosen.job = run;
        chosen.taken = false;
        chosen.aborting = false;
        chosen.worker.run(run, log);
        awaitDelivery(chosen, chosen.worker, run);
        return true;
    }

    /**
     * Starts the take timeout once the run has reached the worker: at once for a local worker; a
     * pilot receives the job's input files over its channel before the run (a large blend file
     * takes a while), so its clock starts when those have gone out. A channel that makes no
     * progress for its write timeout is closed, so this wait ends too.
     */
    private void awaitDelivery(Slot slot, Worker w, ToWorker.Run run) {
        if (slot.worker != w || slot.job != run || slot.taken || slot.aborting) return;
        if (!w.delivered()) {
            slot.takeCheck = loop.schedule(() -> awaitDelivery(slot, w, run), DELIVERY_POLL.toMillis(),
                    TimeUnit.MILLISECONDS);
            return;
        }
        slot.takeCheck = loop.schedule(() -> checkTaken(slot, w, run), settings.takeTimeout().toMillis(),
                TimeUnit.MILLISECONDS);
    }

    /**
     * Whether the worker has time for the job: at least the job's timeout (and a few seconds for
     * its result to travel back), or, for a job without a timeout, more than the drain margin.
     */
    private boolean fits(Slot s, ToWorker.Run run, long now) {
        OptionalLong end = s.worker == null ? OptionalLong.empty() : s.worker.endsAtMillis();
        if (end.isEmpty()) return true;
        long left = end.getAsLong() - now;
        if (run.spec().timeout() <= 0) return left > scaling.drainMargin().toMillis();
        return left >= Math.round(run.spec().timeout() * 1000) + Scaling.RESULT_ALLOWANCE.toMillis();
    }

    /** A worker starting (full lease ahead) or busy with enough time left will do for the job. */
    private boolean hasTimeSoon(ToWorker.Run run, long now) {
        for (Slot s : slots) {
            if (s.draining) continue;
            if (s.state == SlotState.STARTING || s.state == SlotState.WAITING_TO_RESTART) return true;
            if (s.state == SlotState.BUSY && fits(s, run, now)) return true;
        }
        return false;
    }

    /**
     * No worker has time for the job and none that will is on its way: start one with a whole
     * lease, or, at the maximum, replace an idle one whose time is too short.
     */
    private void makeRoomFor(ToWorker.Run run, long now) {
        if (!scaling.dynamic()) return;
        if (active() < scaling.max()) {
            LOG.fine("no worker has " + run.spec().timeout() + " s left for job " + run.jobId() + "; starting one");
            addSlot();
            return;
        }
        for (Slot s : slots) {
            if (s.state == SlotState.IDLE && !s.draining && !fits(s, run, now)) {
                retire(s, "it has too little time left for job " + run.jobId() + ", which waits for a worker with "
                        + run.spec().timeout() + " s");
                addSlot();
                return;
            }
        }
    }

    /**
     * Why the job can never run on these workers (its timeout is longer than a whole lease), or
     * null when it can. The owner fails such a job rather than let it wait forever.
     */
    public String refusal(ToWorker.Run run) {
        if (scaling.lifetime() == null || run.spec().timeout() <= 0) return null;
        long lifetime = scaling.lifetime().toMillis();
        long start = Math.min(Scaling.START_ALLOWANCE.toMillis(), lifetime / 4);
        long usable = lifetime - start;
        long needed = Math.round(run.spec().timeout() * 1000) + Scaling.RESULT_ALLOWANCE.toMillis();
        if (needed <= usable) return null;
        return "its timeout of " + formatSeconds(run.spec().timeout()) + " is longer than any worker can give it: a "
                + "worker's lease (walltime) is " + lifetime / 1000 + " s, of which up to " + start / 1000 + " s go "
                + "to starting Blender and " + Scaling.RESULT_ALLOWANCE.toSeconds() + " s are kept for the result to "
                + "travel back. Lower the job's timeout, or start the server with a longer walltime (--slurm-time)";
    }

    private static String formatSeconds(double s) {
        return s == Math.rint(s) ? ((long) s) + " s" : s + " s";
    }

    /**
     * The worker did not take the run in time: its runtime stopped reading its channel (a script
     * of an earlier job on it can do that). The attempt fails as a protocol violation (the worker
     * broke the channel's rule to answer a run at once; it is retried if attempts remain) and the
     * worker is killed and replaced.
     */
    private void checkTaken(Slot slot, Worker w, ToWorker.Run run) {
        if (slot.worker != w || slot.job != run || slot.taken || slot.aborting) return;
        Duration t = settings.takeTimeout();
        String within = t.toMillis() % 1000 == 0 ? t.toSeconds() + " s" : t.toMillis() + " ms";
        LOG.warning("worker " + w.id() + " did not take job " + run.jobId() + " within " + within + "; killing it");
        slot.aborting = true; // its exit is not a second outcome
        slot.state = SlotState.BUSY; // not free: it is being killed
        events.attemptFinished(run.jobId(), run.attempt(), new AttemptOutcome.Failed(FailureKind.PROTOCOL_VIOLATION,
                "The worker did not take the job within " + within + " of being sent it: its runtime stopped "
                        + "reading its channel, which the script of an earlier job on the same worker can cause. The "
                        + "job's script did not start; the worker was replaced.", null, null));
        w.kill();
    }

    private boolean hasFreshSoon() {
        for (Slot s : slots) {
            if (s.state == SlotState.STARTING || s.state == SlotState.WAITING_TO_RESTART) return true;
        }
        return false;
    }

    /**
     * The owner says how many jobs wait for a worker (after each dispatch). A dynamic pool starts
     * workers for them, up to its maximum, counting those already on their way.
     */
    public void waiting(int jobs) {
        loop.assertInLoop();
        waiting = jobs;
        if (jobs == 0 && !shuttingDown && !replacing()) {
            // A worker whose replacement waited for the queue to empty (see onOutcome); one at a
            // time, so that the others stay warm for the next job (the next is replaced after the
            // dispatch that follows its successor's start).
            for (Slot s : slots) {
                if (s.recycleDue && s.state == SlotState.IDLE && !s.draining) {
                    recycle(s, ranItsJobs(s));
                    break;
                }
            }
        }
        scaleUp();
    }

    private void scaleUp() {
        if (!scaling.dynamic() || shuttingDown || waiting <= 0) return;
        int more = Math.min(scaling.max() - active(), waiting - coming(null));
        for (int i = 0; i < more; i++) addSlot();
    }

    private static String ranItsJobs(Slot slot) {
        return "it ran " + slot.jobsRun + " jobs";
    }

    /** Whether a worker is being started (a replacement, or a slot's first): the pool is not all warm. */
    private boolean replacing() {
        for (Slot s : slots) {
            if (!s.draining && (s.state == SlotState.STARTING || s.state == SlotState.WAITING_TO_RESTART)) return true;
        }
        return false;
    }

    /** Slots that count against the maximum: all but those draining. */
    private int active() {
        return (int) slots.stream().filter(s -> !s.draining).count();
    }

    /** Workers on their way (starting, or about to start again), other than {@code except}'s. */
    private int coming(Slot except) {
        return (int) slots.stream().filter(s -> s != except && !s.draining
                && (s.state == SlotState.STARTING || s.state == SlotState.WAITING_TO_RESTART)).count();
    }

    /** Whether a dynamic pool still wants the slot's worker replaced (or started again). */
    private boolean stillNeeded(Slot slot) {
        if (!scaling.dynamic()) return true;
        int others = (int) slots.stream().filter(s -> s != slot && !s.draining).count();
        return others < scaling.min() || waiting > coming(slot);
    }

    private void addSlot() {
        Slot slot = new Slot(nextIndex++);
        slots.add(slot);
        launch(slot);
    }

    /** Takes the slot out of a dynamic pool; its worker is asked to stop and exits in the background. */
    private void retire(Slot slot, String reason) {
        slots.remove(slot);
        if (slot.worker != null) {
            LOG.fine("releasing worker " + slot.worker.id() + ": " + reason);
            retiring.add(slot.worker);
            slot.worker.stop();
        }
    }

    /**
     * Once a second in a dynamic pool: workers whose lease ends within the drain margin stop
     * taking jobs (an idle one goes at once, a busy one after its job) and are replaced when
     * needed; workers idle for longer than the release time go, down to the minimum.
     */
    void tick() {
        loop.assertInLoop();
        if (shuttingDown) return;
        long now = clock.getAsLong();
        for (Slot s : new ArrayList<>(slots)) {
            if (s.worker == null || s.draining) continue;
            OptionalLong end = s.worker.endsAtMillis();
            if (end.isPresent() && end.getAsLong() - now < scaling.drainMargin().toMillis()) {
                boolean busy = s.state == SlotState.BUSY;
                boolean needed = busy || stillNeeded(s);
                s.draining = true;
                LOG.info("worker " + s.worker.id() + " has " + Math.max(0, (end.getAsLong() - now) / 1000)
                        + " s left: it takes no more jobs" + (busy ? " after its current one" : "")
                        + (needed ? "; starting its replacement" : ""));
                if (!busy) retire(s, "its lease ends");
                if (needed && active() < scaling.max()) addSlot();
            }
        }
        if (scaling.idleRelease() != null && waiting == 0) {
            for (Slot s : new ArrayList<>(slots)) {
                if (active() <= scaling.min()) break;
                if (s.state == SlotState.IDLE && !s.draining && now - s.idleSince >= scaling.idleRelease().toMillis()) {
                    retire(s, "idle for " + (now - s.idleSince) / 1000 + " s");
                }
            }
        }
        scaleUp();
    }

    /** Kills the worker running the job; the attempt's outcome is then the caller's to decide. */
    public void abort(String jobId) {
        loop.assertInLoop();
        for (Slot s : slots) {
            if (s.job != null && s.job.jobId().equals(jobId) && !s.aborting) {
                s.aborting = true;
                LOG.fine("aborting job " + jobId + " on worker " + s.worker.id());
                s.worker.kill();
            }
        }
    }

    /** The pid of the Blender running the job, or -1. */
    public long pidOf(String jobId) {
        loop.assertInLoop();
        for (Slot s : slots) {
            if (s.job != null && s.job.jobId().equals(jobId)) return s.worker.pid();
        }
        return -1;
    }

    public int freeWorkers() {
        loop.assertInLoop();
        return (int) slots.stream().filter(s -> s.state == SlotState.IDLE).count();
    }

    public int busyWorkers() {
        loop.assertInLoop();
        return (int) slots.stream().filter(s -> s.state == SlotState.BUSY).count();
    }

    public int size() {
        return slots.size();
    }

    /** Where workers run ("local"), for getStats. */
    public String executor() {
        return launcher.name();
    }

    /** One entry per slot, for getStats. */
    public List<SlotView> describe() {
        loop.assertInLoop();
        List<SlotView> out = new ArrayList<>();
        long now = clock.getAsLong();
        for (Slot s : slots) {
            OptionalLong end = s.worker == null ? OptionalLong.empty() : s.worker.endsAtMillis();
            Long left = end.isPresent() ? Math.max(0, (end.getAsLong() - now) / 1000) : null;
            out.add(new SlotView(s.name(), s.state, s.worker == null ? -1 : s.worker.pid(), s.jobsRun, s.generation,
                    s.job == null ? null : s.job.jobId(), left, s.draining ? Boolean.TRUE : null,
                    s.worker == null ? null : s.worker.batchJob()));
        }
        return out;
    }

    // ------------------------------------------------------------------ worker events (event loop)

    private void onConnected(Slot slot, Worker w, FromWorker.Hello hello) {
        if (slot.worker != w) return;
        if (!slots.contains(slot)) {
            w.stop(); // released while it was starting
            return;
        }
        slot.failedStarts = 0;
        if (shuttingDown) {
            w.stop();
            return;
        }
        slot.state = SlotState.IDLE;
        slot.idleSince = clock.getAsLong();
        LOG.fine("worker " + w.id() + " ready: pid " + hello.pid() + ", Blender " + hello.blenderVersion()
                + ", runtime " + hello.runtimeVersion());
        events.workerAvailable();
    }

    private void onMessage(Slot slot, Worker w, FromWorker message) {
        if (slot.worker != w || slot.aborting) return;
        if (message instanceof FromWorker.Idle idle) {
            // A worker released after its outcome (lease ending, no longer needed) still says
            // idle on its way out; it is stopping, and gets no job either way.
            if (!slots.contains(slot)) return;
            onIdle(slot, w, idle);
            return;
        }
        ToWorker.Run running = slot.job;
        if (running == null || !running.jobId().equals(message.jobId())) {
            onViolation(slot, w, "a \"" + typeOf(message) + "\" message for job " + message.jobId() + " while "
                    + (running == null ? "it ran no job" : "it ran job " + running.jobId()));
            w.kill();
            return;
        }
        if (message instanceof FromWorker.Started) {
            Trace.mark(message.jobId(), "started");
            if (slot.taken) {
                onViolation(slot, w, "a second \"started\" message for job " + running.jobId());
                w.kill();
                return;
            }
            slot.taken = true;
            if (slot.takeCheck != null) slot.takeCheck.cancel(false);
            return;
        }
        if (!slot.taken) {
            onViolation(slot, w, "a \"" + typeOf(message) + "\" message for job " + running.jobId()
                    + " before \"started\"");
            w.kill();
            return;
        }
        if (message instanceof FromWorker.Progress p) {
            events.progress(running.jobId(), running.attempt(), p.progress(), p.message(), p.reportedAt());
            return;
        }
        AttemptOutcome outcome;
        if (message instanceof FromWorker.Completed c) {
            Trace.mark(c.jobId(), "checked");
            outcome = new AttemptOutcome.Succeeded(new JobResult(c.pythonDataBytes(), c.pythonDataSha256(),
                    c.dataBlocks() == null || c.dataBlocks().isEmpty() ? null : c.dataBlocks(), c.timing()), w.pid());
        } else if (message instanceof FromWorker.Failed f) {
            outcome = new AttemptOutcome.Failed(f.kind(), f.message(), f.traceback(), null);
        } else {
            onViolation(slot, w, "a \"" + typeOf(message) + "\" message after the handshake");
            w.kill();
            return;
        }
        slot.job = null;
        slot.jobsRun++;
        String recycleReason = recycleReason(slot, running, outcome);
        if (recycleReason == null && slot.jobsRun >= settings.maxJobsPerWorker()) {
            // Replacing a worker for its job count is hygiene, not urgency: a Blender start costs
            // over a second of CPU, which a queue of waiting jobs would pay in throughput. So it
            // waits for the first moment no job waits (onIdle, waiting(0)), up to twice the
            // count. One job per worker keeps its meaning: a fresh Blender for every job.
            if (settings.maxJobsPerWorker() > 1 && waiting > 0 && slot.jobsRun < 2L * settings.maxJobsPerWorker()) {
                slot.recycleDue = true;
            } else {
                recycleReason = ranItsJobs(slot);
            }
        }
        if (slot.draining) {
            retire(slot, "its lease ends");
        } else if (recycleReason != null) {
            recycle(slot, recycleReason);
        } else {
            // Not free yet: the runtime now checks what the job left and resets Blender, off the
            // path of this outcome, and says idle when it is done (or that it must be replaced).
            slot.cleaning = true;
            slot.idleCheck = loop.schedule(() -> checkIdle(slot, w), settings.idleTimeout().toMillis(),
                    TimeUnit.MILLISECONDS);
        }
        events.attemptFinished(running.jobId(), running.attempt(), outcome);
    }

    private void onIdle(Slot slot, Worker w, FromWorker.Idle idle) {
        if (!slot.cleaning) {
            onViolation(slot, w, "an \"idle\" message " + (slot.job == null ? "that answers no job's outcome"
                    : "while it ran job " + slot.job.jobId()));
            w.kill();
            return;
        }
        slot.cleaning = false;
        if (slot.idleCheck != null) slot.idleCheck.cancel(false);
        if (slot.draining) {
            // Its lease ended while it cleaned up (dynamic pools): released, not given a job.
            retire(slot, "its lease ends");
            return;
        }
        if (idle.recycle() != null) {
            LOG.info("worker " + w.id() + " is replaced: " + idle.recycle());
            recycle(slot, idle.recycle());
            return;
        }
        if (slot.recycleDue && waiting == 0 && !replacing()) {
            recycle(slot, ranItsJobs(slot));
            return;
        }
        slot.state = SlotState.IDLE;
        slot.idleSince = clock.getAsLong();
        if (slots.contains(slot)) events.workerAvailable();
    }

    /** The worker did not finish cleaning up after a job in time: it is killed and replaced. */
    private void checkIdle(Slot slot, Worker w) {
        if (slot.worker != w || !slot.cleaning || !slots.contains(slot)) return;
        LOG.warning("worker " + w.id() + " did not become idle within " + settings.idleTimeout().toSeconds()
                + " s of its job's end; killing it");
        slot.cleaning = false;
        w.kill();
    }

    /**
     * The worker broke the protocol: its job (if any) fails with PROTOCOL_VIOLATION now, and the
     * worker, which is being killed, is replaced when its exit arrives.
     */
    private void onViolation(Slot slot, Worker w, String problem) {
        if (slot.worker != w) return;
        LOG.warning("worker " + w.id() + " broke the channel protocol: " + problem);
        ToWorker.Run running = slot.job;
        if (running != null && !slot.aborting) {
            slot.aborting = true; // its exit is not a second outcome
            events.attemptFinished(running.jobId(), running.attempt(), new AttemptOutcome.Failed(
                    FailureKind.PROTOCOL_VIOLATION, "The worker broke the channel protocol: " + problem + ". The job's "
                    + "script runs in the worker's process and may have caused this (it must not use the worker's "
                    + "channel or change its result files after writing them); the worker was replaced.", null, null));
        }
        slot.state = SlotState.BUSY; // not free: it is being killed
    }

    private String recycleReason(Slot slot, ToWorker.Run finished, AttemptOutcome outcome) {
        if (finished.spec().freshProcess()) return "its job asked for a fresh process";
        if (outcome instanceof AttemptOutcome.Failed f && f.kind() == FailureKind.WORKER_ERROR) return "its runtime failed";
        if (settings.maxWorkerMemoryMb() > 0) {
            OptionalLong rss = slot.worker.residentBytes();
            if (rss.isPresent() && rss.getAsLong() > settings.maxWorkerMemoryMb() * 1024 * 1024) {
                return "its resident memory is " + rss.getAsLong() / (1024 * 1024) + " MB (limit "
                        + settings.maxWorkerMemoryMb() + " MB)";
            }
        }
        return null;
    }

    /**
     * Replaces the slot's worker: the old one is asked to exit (and killed if it does not), and
     * its successor starts at once rather than after the old one is gone, so a fresh Blender per
     * job costs one Blender start, not a stop plus a start.
     */
    private void recycle(Slot slot, String reason) {
        if (scaling.dynamic() && !stillNeeded(slot)) {
            retire(slot, reason + "; no replacement is needed");
            return;
        }
        Worker old = slot.worker;
        LOG.fine("recycling worker " + old.id() + ": " + reason);
        retiring.add(old);
        old.stop();
        launch(slot);
    }

    private void onExit(Slot slot, Worker w, WorkerExit exit) {
        if (slot.worker != w || !slots.contains(slot)) {
            retiring.remove(w);
            // A retired worker's job (a draining one cannot have one; an aborted one is the
            // owner's) is never lost silently.
            if (slot.worker == w && slot.job != null && !slot.aborting) {
                ToWorker.Run lost = slot.job;
                slot.job = null;
                events.attemptFinished(lost.jobId(), lost.attempt(), describeDeath(exit));
            }
            return;
        }
        ToWorker.Run lost = slot.job;
        boolean aborted = slot.aborting;
        slot.job = null;
        slot.aborting = false;
        slot.cleaning = false; // a worker that dies while cleaning up after a job loses no job
        if (slot.idleCheck != null) slot.idleCheck.cancel(false);
        if (lost != null && !aborted) {
            events.attemptFinished(lost.jobId(), lost.attempt(), describeDeath(exit));
        }
        if (shuttingDown) {
            slot.state = SlotState.SHUT_DOWN;
            return;
        }
        long delayMs = 0;
        if (!exit.connected()) {
            slot.failedStarts++;
            String why = startFailure(exit);
            LOG.warning("worker " + w.id() + " failed to start (" + slot.failedStarts + " in a row): " + why);
            if (slot.failedStarts >= FAILING_AFTER) events.workersFailing(why);
            delayMs = restartDelay(settings.restartBackoff(), slot.failedStarts).toMillis();
        } else if (lost == null && !aborted) {
            LOG.warning("worker " + w.id() + " " + (exit.lost() != null ? "was lost while idle: " + exit.lost()
                    : "exited unexpectedly while idle (exit code " + exit.exitCode() + ")"));
        }
        if (slot.draining || !stillNeeded(slot)) {
            slots.remove(slot);
            return;
        }
        slot.state = SlotState.WAITING_TO_RESTART;
        loop.schedule(() -> {
            if (slot.worker != w || !slots.contains(slot)) return;
            if (!shuttingDown && !stillNeeded(slot)) {
                slots.remove(slot); // nothing waits any more: a dynamic pool lets it go
                return;
            }
            launch(slot);
        }, delayMs, TimeUnit.MILLISECONDS);
    }

    /** Back-off after {@code failures} failed starts in a row: base, 2 × base, 4 × base ... up to 30 s. */
    static Duration restartDelay(Duration base, int failures) {
        long ms = base.toMillis() << Math.min(16, Math.max(0, failures - 1));
        return Duration.ofMillis(Math.min(MAX_RESTART_DELAY.toMillis(), ms));
    }

    static String startFailure(WorkerExit exit) {
        StringBuilder sb = new StringBuilder();
        sb.append(exit.problem() != null ? exit.problem() : "Blender exited before it was ready");
        sb.append(" (exit code ").append(exit.exitCode()).append(")");
        if (!exit.consoleTail().isEmpty()) {
            sb.append(". Its last output:\n").append(String.join("\n", lastLines(exit.consoleTail(), 15)));
        }
        return sb.toString();
    }

    static AttemptOutcome.Failed describeDeath(WorkerExit exit) {
        if (exit.lost() != null) {
            return new AttemptOutcome.Failed(FailureKind.WORKER_LOST, "The worker running the job was lost: "
                    + exit.lost() + ". The job's script did not cause this; it is retried on another worker when "
                    + "attempts remain (maxAttempts).", null, null);
        }
        int code = exit.exitCode();
        boolean signalled = code > 128 && code < 160;
        if (exit.crashReport() != null || signalled) {
            String what = signalled ? "Blender was killed by signal " + (code - 128)
                    : "Blender crashed (exit code " + code + ")";
            return new AttemptOutcome.Failed(FailureKind.BLENDER_CRASHED,
                    what + " while running the job" + (exit.crashReport() != null ? "; its crash report is attached" : ""),
                    null, exit.crashReport());
        }
        return new AttemptOutcome.Failed(FailureKind.BLENDER_EXITED,
                "Blender exited with code " + code + " while running the job, without reporting a result "
                        + "(did the script call os._exit() or quit Blender?)", null, null);
    }

    private static String typeOf(FromWorker m) {
        return m.getClass().getSimpleName().toLowerCase();
    }

    private static List<String> lastLines(List<String> lines, int n) {
        return lines.subList(Math.max(0, lines.size() - n), lines.size());
    }

    // ------------------------------------------------------------------ shutdown

    /**
     * Stops every worker: asks each runtime to exit, then kills what is left after the grace
     * period. Blocks the calling thread (never the event loop) until all are reaped.
     */
    public void shutdown(Duration grace) {
        List<Worker> workers;
        try {
            workers = loop.call(() -> {
                shuttingDown = true;
                List<Worker> all = new ArrayList<>(retiring);
                for (Slot s : slots) {
                    if (s.worker == null) continue;
                    // A worker still starting cannot hear "shutdown" yet: it is killed at once
                    // rather than waited for (a client that only lists jobs must not wait for Blender).
                    if (s.state == SlotState.STARTING) s.worker.kill();
                    all.add(s.worker);
                }
                return all;
            }).get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.log(Level.WARNING, "event loop did not answer during shutdown; killing workers directly", e);
            workers = List.of();
        }
        for (Worker w : workers) w.stop();
        long deadline = System.nanoTime() + grace.toNanos();
        for (Worker w : workers) {
            long left = deadline - System.nanoTime();
            w.awaitGone(Duration.ofNanos(Math.max(0, left)));
        }
    }
}
