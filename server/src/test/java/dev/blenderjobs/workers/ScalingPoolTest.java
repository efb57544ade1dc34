package dev.blenderjobs.workers;

import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.JobSpec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The pool's scaling policies against fake launchers and a clock moved by hand: a fixed pool
 * (the local executor) never grows; a dynamic one (Slurm pilots) grows while jobs wait, releases
 * idle workers down to its minimum, never gives a job to a worker with less time left than the
 * job's timeout, drains and replaces workers whose lease is ending, and refuses jobs that no
 * lease can hold. The fakes speak protocol 4 as the runtime does (started on a run, idle after
 * each outcome): the policy counts a worker as idle only once it said so.
 */
@Timeout(20)
class ScalingPoolTest {
    private static final long T0 = 1_000_000_000L;

    final class Launcher implements WorkerLauncher {
        final List<FakeWorker> all = new CopyOnWriteArrayList<>();
        /** The lease each new worker gets from "now", in ms; 0 = none. */
        volatile long lease;

        @Override
        public Worker launch(String id, WorkerListener listener) {
            FakeWorker w = new FakeWorker(id, listener);
            if (lease > 0) w.endsAt = clock.get() + lease;
            w.batch = new BatchJob("test", "b-" + id, "RUNNING", null, "node-" + id);
            all.add(w);
            return w;
        }

        @Override
        public String name() {
            return "leased";
        }
    }

    private final AtomicLong clock = new AtomicLong(T0);
    private EventLoop loop;
    private Launcher launcher;
    private WorkerPoolTest.Recorder events;
    private WorkerPool pool;

    @BeforeEach
    void setUp() {
        loop = new EventLoop("scaling-test");
        launcher = new Launcher();
        events = new WorkerPoolTest.Recorder();
    }

    @AfterEach
    void tearDown() {
        loop.close();
    }

    private void startPool(Scaling scaling) throws Exception {
        startPool(scaling, WorkerPool.TAKE_TIMEOUT);
    }

    private void startPool(Scaling scaling, Duration takeTimeout) throws Exception {
        pool = new WorkerPool(new WorkerPool.Settings(scaling.max(), 200, 0, Duration.ofMillis(1), takeTimeout,
                WorkerPool.IDLE_TIMEOUT, scaling), launcher, loop, events, clock::get);
        pool.start();
        settle();
    }

    private static Scaling dynamic(int min, int max, Duration idle, Duration lifetime, Duration drain) {
        return new Scaling(min, max, idle, lifetime, drain);
    }

    private <T> T onLoop(Supplier<T> task) throws Exception {
        return loop.call(task).get(5, TimeUnit.SECONDS);
    }

    private void settle() throws Exception {
        onLoop(() -> null);
    }

    private void waiting(int n) throws Exception {
        onLoop(() -> {
            pool.waiting(n);
            return null;
        });
    }

    private void tick() throws Exception {
        onLoop(() -> {
            pool.tick();
            return null;
        });
    }

    private static ToWorker.Run run(String jobId, double timeout) {
        JobSpec spec = new JobSpec(null, null, timeout, 1, JobSpec.Isolation.WORKER, 0, null, null);
        return new ToWorker.Run(jobId, 1, spec, new ToWorker.RunFiles("s.py", "p.json", null, null, "work", "result"));
    }

    private boolean tryRun(ToWorker.Run r) throws Exception {
        return onLoop(() -> pool.tryRun(r, new JobLog(Path.of("unused.log"), 5)));
    }

    private FakeWorker connect(int index) throws Exception {
        FakeWorker w = launcher.all.get(index);
        w.connect();
        events.next(WorkerPoolTest.Recorder.Available.class);
        return w;
    }

    private List<WorkerPool.SlotView> slots() throws Exception {
        return onLoop(pool::describe);
    }

    // ------------------------------------------------------------------ growing and shrinking

    @Test
    void aFixedPoolStartsAllAtOnceAndNeverGrows() throws Exception {
        startPool(Scaling.fixed(2));
        assertEquals(2, launcher.all.size());
        waiting(10);
        tick();
        assertEquals(2, launcher.all.size(), "the local executor's pool is always N workers");
    }

    @Test
    void aDynamicPoolStartsWorkersForWaitingJobsUpToItsMaximum() throws Exception {
        startPool(dynamic(0, 3, Duration.ofMinutes(5), null, Duration.ZERO));
        assertEquals(0, launcher.all.size(), "nothing waits, minimum 0: no worker");
        waiting(1);
        assertEquals(1, launcher.all.size());
        waiting(1);
        assertEquals(1, launcher.all.size(), "the one on its way counts");
        waiting(2);
        assertEquals(2, launcher.all.size());
        waiting(10);
        assertEquals(3, launcher.all.size(), "never more than the maximum");
        assertEquals(List.of("w1.1", "w2.1", "w3.1"), launcher.all.stream().map(w -> w.id).toList());
        connect(0);
        assertTrue(tryRun(run("job-000000000001", 0)));
        assertEquals(3, slots().size());
    }

    @Test
    void idleWorkersAreReleasedDownToTheMinimumButNotWhileJobsWait() throws Exception {
        startPool(dynamic(1, 3, Duration.ofSeconds(10), null, Duration.ZERO));
        waiting(3);
        for (int i = 0; i < 3; i++) connect(i);
        waiting(0);
        clock.addAndGet(5_000);
        tick();
        assertTrue(launcher.all.stream().noneMatch(w -> w.stopped), "idle for 5 s, not yet");
        clock.addAndGet(6_000);
        tick();
        assertEquals(2, launcher.all.stream().filter(w -> w.stopped).count(), "two released, one kept (minimum 1)");
        assertEquals(1, slots().size());
        assertEquals(1, (int) onLoop(pool::freeWorkers));
        // An idle worker is kept while jobs wait (they wait for something it cannot give, e.g. time).
        startPoolAgainWithWaitingJobs();
    }

    private void startPoolAgainWithWaitingJobs() throws Exception {
        loop.close();
        loop = new EventLoop("scaling-test-2");
        launcher = new Launcher();
        startPool(dynamic(0, 2, Duration.ofSeconds(10), null, Duration.ZERO));
        waiting(1);
        connect(0);
        clock.addAndGet(60_000);
        tick();
        assertFalse(launcher.all.get(0).stopped, "jobs wait: no release");
    }

    @Test
    void aWorkerThatExitsIsReplacedOnlyWhileNeeded() throws Exception {
        startPool(dynamic(0, 2, Duration.ofMinutes(5), null, Duration.ZERO));
        waiting(1);
        FakeWorker w = connect(0);
        waiting(0);
        w.listener.exited(w, new WorkerExit(true, 0, null, List.of(), null));
        settle();
        assertEquals(1, launcher.all.size(), "nothing waits: not replaced");
        assertTrue(slots().isEmpty());
        waiting(1);
        FakeWorker second = launcher.all.get(1);
        assertEquals("w2.1", second.id);
        second.listener.exited(second, new WorkerExit(false, 1, "sbatch failed", List.of(), null));
        Thread.sleep(50); // the 1 ms back-off
        settle();
        assertEquals("w2.2", launcher.all.get(2).id, "a job waits: the slot starts again");
    }

    @Test
    void startsThatKeepFailingFailTheWaitingJobsAndThenStop() throws Exception {
        startPool(dynamic(0, 1, Duration.ofMinutes(5), null, Duration.ZERO));
        // As JobManager does, in the same loop task: it fails the waiting jobs and dispatches,
        // which tells the pool that nothing waits. (Told later from the test thread, the pool's
        // next restart, a few ms of back-off away, could come first on a loaded machine.)
        events.onWorkersFailing = () -> pool.waiting(0);
        waiting(1);
        for (int i = 0; i < WorkerPool.FAILING_AFTER; i++) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (launcher.all.size() <= i) {
                assertTrue(System.nanoTime() < deadline, "attempt " + (i + 1) + " was not started");
                Thread.sleep(5);
                settle();
            }
            FakeWorker w = launcher.all.get(i);
            w.listener.exited(w, new WorkerExit(false, 1, "sbatch: error: invalid partition specified: nope",
                    List.of(), null));
        }
        WorkerPoolTest.Recorder.Failing failing = events.next(WorkerPoolTest.Recorder.Failing.class);
        assertTrue(failing.message().contains("invalid partition"), failing.message());
        Thread.sleep(100);
        settle();
        assertTrue(slots().isEmpty(), "no more submissions once nothing waits: " + slots());
        assertEquals(WorkerPool.FAILING_AFTER, launcher.all.size());
    }

    // ------------------------------------------------------------------ time left

    @Test
    void aJobGoesOnlyToAWorkerWithMoreTimeLeftThanItsTimeout() throws Exception {
        launcher.lease = 3_600_000;
        startPool(dynamic(1, 2, Duration.ofMinutes(5), Duration.ofHours(1), Duration.ofSeconds(60)));
        FakeWorker shortLived = connect(0);
        shortLived.endsAt = T0 + 120_000; // two minutes left
        assertFalse(tryRun(run("job-000000000001", 300)), "a 300 s job does not fit in 120 s");
        assertTrue(shortLived.runs.isEmpty());
        assertEquals(2, launcher.all.size(), "a worker with a whole lease is started for it");
        FakeWorker fresh = connect(1);
        assertTrue(tryRun(run("job-000000000001", 300)));
        assertEquals(1, fresh.runs.size(), "it went to the new worker");
        assertTrue(tryRun(run("job-000000000002", 30)), "a 30 s job fits in 120 s");
        assertEquals(1, shortLived.runs.size());
        WorkerPool.SlotView first = slots().get(0);
        assertEquals(120, first.timeLeftSeconds());
        assertEquals("b-w1.1", first.batchJob().id());
    }

    @Test
    void atTheMaximumAnIdleWorkerWithTooLittleTimeIsReplaced() throws Exception {
        launcher.lease = 3_600_000;
        startPool(dynamic(1, 1, Duration.ofMinutes(5), Duration.ofHours(1), Duration.ofSeconds(60)));
        FakeWorker old = connect(0);
        old.endsAt = T0 + 200_000;
        assertFalse(tryRun(run("job-000000000001", 600)));
        assertTrue(old.stopped, "the short-lived idle worker goes");
        assertEquals(2, launcher.all.size(), "and one with a whole lease comes");
        connect(1);
        assertTrue(tryRun(run("job-000000000001", 600)));
        assertFalse(tryRun(run("job-000000000002", 0)), "one worker, busy");
    }

    @Test
    void aJobWithoutTimeoutNeedsMoreThanTheDrainMargin() throws Exception {
        launcher.lease = 3_600_000;
        startPool(dynamic(1, 1, Duration.ofMinutes(5), Duration.ofHours(1), Duration.ofSeconds(60)));
        FakeWorker w = connect(0);
        w.endsAt = T0 + 61_000;
        assertTrue(tryRun(run("job-000000000001", 0)), "61 s left, 60 s margin");
    }

    @Test
    void aWorkerNearingTheEndOfItsLeaseFinishesItsJobTakesNoMoreAndIsReplacedFirst() throws Exception {
        launcher.lease = 600_000;
        startPool(dynamic(1, 1, Duration.ofMinutes(5), Duration.ofMinutes(10), Duration.ofSeconds(60)));
        FakeWorker w = connect(0);
        assertTrue(tryRun(run("job-000000000001", 0)));
        clock.addAndGet(545_000); // 55 s left
        tick();
        WorkerPool.SlotView draining = slots().get(0);
        assertEquals(Boolean.TRUE, draining.draining());
        assertEquals(55, draining.timeLeftSeconds());
        assertEquals(2, launcher.all.size(), "its replacement was started before it ends");
        assertFalse(w.stopped, "it finishes its job");
        FakeWorker replacement = connect(1);
        assertEquals("w2.1", replacement.id);
        w.complete("job-000000000001");
        assertInstanceOf(AttemptOutcome.Succeeded.class, events.next(WorkerPoolTest.Recorder.Finished.class).outcome());
        settle();
        assertTrue(w.stopped, "then it goes");
        assertEquals(1, slots().size());
        assertTrue(tryRun(run("job-000000000002", 0)));
        assertEquals(1, replacement.runs.size(), "new jobs go to the replacement");
        assertEquals(1, w.runs.size());
    }

    @Test
    void anIdleWorkerNearingItsEndGoesAtOnceAndIsReplacedOnlyToKeepTheMinimum() throws Exception {
        launcher.lease = 600_000;
        startPool(dynamic(0, 2, Duration.ofMinutes(5), Duration.ofMinutes(10), Duration.ofSeconds(60)));
        waiting(1);
        FakeWorker w = connect(0);
        waiting(0);
        clock.addAndGet(550_000);
        tick();
        assertTrue(w.stopped);
        assertEquals(1, launcher.all.size(), "minimum 0 and nothing waits: no replacement");
        assertNull(slots().stream().findFirst().orElse(null));
    }

    @Test
    void aJobWhoseTimeoutNoLeaseCanHoldIsRefusedWithTheReason() throws Exception {
        startPool(dynamic(0, 1, Duration.ofMinutes(5), Duration.ofMinutes(2), Duration.ofSeconds(20)));
        assertNull(onLoop(() -> pool.refusal(run("job-000000000001", 100))), "100 + 5 s result <= 120 - 15 s start");
        String why = onLoop(() -> pool.refusal(run("job-000000000001", 101)));
        assertNotNull(why);
        assertTrue(why.contains("101 s") && why.contains("--slurm-time"), why);
        assertNull(onLoop(() -> pool.refusal(run("job-000000000001", 0))), "no timeout: any worker will do");
        // A fixed pool (local workers) has no leases.
        WorkerPool fixed = new WorkerPool(new WorkerPool.Settings(1, 200, 0, Duration.ofMillis(1)), launcher, loop, events);
        assertNull(onLoop(() -> fixed.refusal(run("job-000000000001", 1e6))));
    }

    // ------------------------------------------------------------------ the idle gate and the policy

    @Test
    void aWorkerIsFreeAndReleasableOnlyOnceItSaidIdle() throws Exception {
        startPool(dynamic(0, 1, Duration.ofSeconds(10), null, Duration.ZERO));
        waiting(1);
        FakeWorker w = connect(0);
        w.becomesIdle = false;
        waiting(0);
        assertTrue(tryRun(run("job-000000000001", 0)));
        w.complete("job-000000000001");
        events.next(WorkerPoolTest.Recorder.Finished.class);
        settle();
        assertEquals(0, (int) onLoop(pool::freeWorkers), "cleaning up after its job: not free");
        assertFalse(tryRun(run("job-000000000002", 0)), "no job before idle");
        clock.addAndGet(60_000);
        tick();
        assertFalse(w.stopped, "not released as idle while it cleans up, however long");
        w.idle();
        events.next(WorkerPoolTest.Recorder.Available.class);
        assertEquals(1, (int) onLoop(pool::freeWorkers));
        clock.addAndGet(9_000);
        tick();
        assertFalse(w.stopped, "its idle time starts when it says idle");
        clock.addAndGet(2_000);
        tick();
        assertTrue(w.stopped, "idle for 11 s: released");
        assertFalse(w.killed);
    }

    @Test
    void aWorkerWhoseLeaseEndsWhileItCleansUpIsReleasedWhenItSaysIdle() throws Exception {
        launcher.lease = 600_000;
        startPool(dynamic(1, 1, Duration.ofMinutes(5), Duration.ofMinutes(10), Duration.ofSeconds(60)));
        FakeWorker w = connect(0);
        w.becomesIdle = false;
        assertTrue(tryRun(run("job-000000000001", 0)));
        w.complete("job-000000000001");
        events.next(WorkerPoolTest.Recorder.Finished.class);
        clock.addAndGet(545_000); // 55 s left, within the 60 s margin
        tick();
        assertFalse(w.stopped, "it is still cleaning up");
        assertEquals(Boolean.TRUE, slots().get(0).draining());
        assertEquals(2, launcher.all.size(), "its replacement is on its way");
        w.idle();
        settle();
        assertTrue(w.stopped, "released once idle");
        assertFalse(w.killed, "its idle is no violation");
        assertTrue(w.runs.size() == 1 && onLoop(pool::freeWorkers) == 0, "and given no job");
    }

    @Test
    void theIdleOfAWorkerReleasedAtItsOutcomeIsNoViolation() throws Exception {
        launcher.lease = 600_000;
        startPool(dynamic(1, 1, Duration.ofMinutes(5), Duration.ofMinutes(10), Duration.ofSeconds(60)));
        FakeWorker w = connect(0);
        assertTrue(tryRun(run("job-000000000001", 0)));
        clock.addAndGet(545_000);
        tick(); // draining while busy: released at its outcome
        w.complete("job-000000000001"); // ... followed by its idle, as a runtime does
        assertInstanceOf(AttemptOutcome.Succeeded.class, events.next(WorkerPoolTest.Recorder.Finished.class).outcome());
        settle();
        assertTrue(w.stopped);
        assertFalse(w.killed, "a released worker's idle is expected, not a violation");
    }

    @Test
    void theTakeTimeoutCountsFromWhenTheRunReachedTheWorker() throws Exception {
        startPool(dynamic(1, 1, Duration.ofMinutes(5), null, Duration.ZERO), Duration.ofMillis(300));
        FakeWorker w = connect(0);
        w.takesRuns = false;
        w.delivered = false; // its input files are still streaming to it
        assertTrue(tryRun(run("job-000000000001", 0)));
        Thread.sleep(900);
        settle();
        assertFalse(w.killed, "three take timeouts passed while the run was on its way");
        w.delivered = true;
        long delivered = System.nanoTime();
        WorkerPoolTest.Recorder.Finished f = events.next(WorkerPoolTest.Recorder.Finished.class);
        long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - delivered);
        assertTrue(waited >= 250, "the worker had its whole take timeout after delivery: " + waited + " ms");
        AttemptOutcome.Failed failed = assertInstanceOf(AttemptOutcome.Failed.class, f.outcome());
        assertEquals(FailureKind.PROTOCOL_VIOLATION, failed.kind());
        assertTrue(failed.message().contains("did not take the job"), failed.message());
        settle();
        assertTrue(w.killed);
    }

    @Test
    void aRunDeliveredInTimeAndTakenIsNeverTimedOut() throws Exception {
        startPool(dynamic(1, 1, Duration.ofMinutes(5), null, Duration.ZERO), Duration.ofMillis(200));
        FakeWorker w = connect(0);
        w.takesRuns = false;
        w.delivered = false;
        assertTrue(tryRun(run("job-000000000001", 0)));
        Thread.sleep(300);
        w.delivered = true;
        w.listener.message(w, new FromWorker.Started("job-000000000001"));
        Thread.sleep(600);
        settle();
        assertFalse(w.killed);
        w.complete("job-000000000001");
        assertInstanceOf(AttemptOutcome.Succeeded.class, events.next(WorkerPoolTest.Recorder.Finished.class).outcome());
        events.next(WorkerPoolTest.Recorder.Available.class);
    }

    // ------------------------------------------------------------------ a lost worker

    @Test
    void aWorkerLostMidJobFailsItWithWorkerLostAndTheSlotGoesOn() throws Exception {
        startPool(dynamic(1, 1, Duration.ofMinutes(5), null, Duration.ZERO));
        FakeWorker w = connect(0);
        assertTrue(tryRun(run("job-000000000001", 0)));
        w.listener.exited(w, new WorkerExit(true, -1, null, List.of(), null, "Slurm job 12 on node2 ended NODE_FAIL"));
        AttemptOutcome.Failed f = assertInstanceOf(AttemptOutcome.Failed.class,
                events.next(WorkerPoolTest.Recorder.Finished.class).outcome());
        assertEquals(FailureKind.WORKER_LOST, f.kind());
        assertTrue(f.message().contains("NODE_FAIL") && f.message().contains("retried"), f.message());
        Thread.sleep(20);
        settle();
        assertEquals("w1.2", launcher.all.get(1).id, "the minimum is kept: a new worker starts");
    }
}
