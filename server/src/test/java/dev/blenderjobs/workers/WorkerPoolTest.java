package dev.blenderjobs.workers;

import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.Timing;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The pool's slot logic against fake workers that speak the typed channel messages: fast, no
 * Blender, no sockets. The real-Blender integration tests cover the local launcher itself.
 */
@Timeout(20)
class WorkerPoolTest {

    // ------------------------------------------------------------------ fakes

    final class FakeLauncher implements WorkerLauncher {
        final BlockingQueue<FakeWorker> launched = new LinkedBlockingQueue<>();
        final List<FakeWorker> all = new CopyOnWriteArrayList<>();

        @Override
        public Worker launch(String id, WorkerListener listener) {
            FakeWorker w = new FakeWorker(id, listener);
            all.add(w);
            launched.add(w);
            return w;
        }

        @Override
        public String name() {
            return "fake";
        }

        FakeWorker next() throws InterruptedException {
            FakeWorker w = launched.poll(5, TimeUnit.SECONDS);
            assertNotNull(w, "the pool launched no worker");
            return w;
        }
    }

    /** Records what the pool tells its owner, in order. */
    static final class Recorder implements WorkerEvents {
        final BlockingQueue<Object> events = new LinkedBlockingQueue<>();

        record Available() {
        }

        record Progress(String jobId, int attempt, double progress) {
        }

        record Finished(String jobId, int attempt, AttemptOutcome outcome) {
        }

        record Failing(String message) {
        }

        @Override
        public void workerAvailable() {
            events.add(new Available());
        }

        @Override
        public void progress(String jobId, int attempt, double progress, String message, long reportedAtMillis) {
            events.add(new Progress(jobId, attempt, progress));
        }

        @Override
        public void attemptFinished(String jobId, int attempt, AttemptOutcome outcome) {
            events.add(new Finished(jobId, attempt, outcome));
        }

        /** Run on the loop when the pool says starts keep failing, as the owner reacts there. */
        volatile Runnable onWorkersFailing;

        @Override
        public void workersFailing(String message) {
            events.add(new Failing(message));
            Runnable reaction = onWorkersFailing;
            if (reaction != null) reaction.run();
        }

        <T> T next(Class<T> type) throws InterruptedException {
            while (true) {
                Object e = events.poll(5, TimeUnit.SECONDS);
                assertNotNull(e, "no " + type.getSimpleName() + " event");
                if (type.isInstance(e)) return type.cast(e);
            }
        }
    }

    private EventLoop loop;
    private FakeLauncher launcher;
    private Recorder events;
    private WorkerPool pool;

    @BeforeEach
    void setUp() {
        loop = new EventLoop("pool-test");
        launcher = new FakeLauncher();
        events = new Recorder();
    }

    @AfterEach
    void tearDown() {
        loop.close();
    }

    private void startPool(int workers, int maxJobs, long maxMemoryMb) {
        startPool(workers, maxJobs, maxMemoryMb, WorkerPool.TAKE_TIMEOUT, WorkerPool.IDLE_TIMEOUT);
    }

    private void startPool(int workers, int maxJobs, long maxMemoryMb, Duration takeTimeout, Duration idleTimeout) {
        pool = new WorkerPool(new WorkerPool.Settings(workers, maxJobs, maxMemoryMb, Duration.ofMillis(1), takeTimeout,
                idleTimeout), launcher, loop, events);
        pool.start();
    }

    private <T> T onLoop(Supplier<T> task) throws Exception {
        return loop.call(task).get(5, TimeUnit.SECONDS);
    }

    /** Waits until everything posted to the loop so far has run. */
    private void settle() throws Exception {
        onLoop(() -> null);
    }

    private static ToWorker.Run run(String jobId, int attempt, boolean fresh) {
        JobSpec spec = new JobSpec(null, null, 0, 1, fresh ? JobSpec.Isolation.PROCESS : JobSpec.Isolation.WORKER, 0,
                null, null);
        return new ToWorker.Run(jobId, attempt, spec, new ToWorker.RunFiles("s.py", "p.json", null, null, "work",
                "result"));
    }

    private static FromWorker.Completed completed(String jobId) {
        return new FromWorker.Completed(jobId, 2, "a".repeat(64), null, Timing.NONE);
    }

    private boolean tryRun(ToWorker.Run r) throws Exception {
        return onLoop(() -> pool.tryRun(r, new JobLog(Path.of("unused.log"), 5)));
    }

    /** The owner's word after a dispatch: how many jobs wait for a worker. */
    private void tellWaiting(int jobs) throws Exception {
        onLoop(() -> {
            pool.waiting(jobs);
            return null;
        });
    }

    private FakeWorker connectedWorker() throws Exception {
        FakeWorker w = launcher.next();
        w.connect();
        events.next(Recorder.Available.class);
        return w;
    }

    // ------------------------------------------------------------------ tests

    @Test
    void aJobGoesToAFreeWorkerAndItsOutcomeFreesTheSlot() throws Exception {
        startPool(1, 200, 0);
        assertFalse(tryRun(run("job-000000000001", 1, false)), "no worker is ready yet");
        FakeWorker w = connectedWorker();
        assertTrue(tryRun(run("job-000000000001", 1, false)));
        assertEquals(1, w.runs.size());
        assertEquals(0, (int) onLoop(pool::freeWorkers));
        assertEquals(1, (int) onLoop(pool::busyWorkers));
        assertEquals(w.pid(), (long) onLoop(() -> pool.pidOf("job-000000000001")));
        assertFalse(tryRun(run("job-000000000002", 1, false)), "the only worker is busy");

        w.send(new FromWorker.Progress("job-000000000001", 0.5, "half", 1L));
        assertEquals(0.5, events.next(Recorder.Progress.class).progress());
        w.send(completed("job-000000000001"));
        Recorder.Finished f = events.next(Recorder.Finished.class);
        assertEquals("job-000000000001", f.jobId());
        AttemptOutcome.Succeeded ok = assertInstanceOf(AttemptOutcome.Succeeded.class, f.outcome());
        assertEquals(2, ok.result().pythonDataBytes());
        events.next(Recorder.Available.class);
        assertEquals(1, (int) onLoop(pool::freeWorkers));
        assertFalse(w.stopped, "a warm worker is kept");
        WorkerPool.SlotView slot = onLoop(pool::describe).get(0);
        assertEquals(WorkerPool.SlotState.IDLE, slot.state());
        assertEquals(1, slot.jobsRun());
        assertNull(slot.jobId());
    }

    @Test
    void aFailureReportedByTheRuntimeIsPassedOnWithItsKind() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        tryRun(run("job-000000000001", 1, false));
        w.send(new FromWorker.Failed("job-000000000001", FailureKind.SCRIPT_ERROR, "boom", "Traceback"));
        AttemptOutcome.Failed f = assertInstanceOf(AttemptOutcome.Failed.class,
                events.next(Recorder.Finished.class).outcome());
        assertEquals(FailureKind.SCRIPT_ERROR, f.kind());
        assertEquals("Traceback", f.traceback());
        assertFalse(w.stopped, "a script error does not cost the worker");
    }

    @Test
    void aRuntimeFailureRecyclesTheWorker() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        tryRun(run("job-000000000001", 1, false));
        w.send(new FromWorker.Failed("job-000000000001", FailureKind.WORKER_ERROR, "runtime bug", null));
        events.next(Recorder.Finished.class);
        settle();
        assertTrue(w.stopped);
        assertEquals("w1.2", launcher.next().id(), "a successor is started at once");
    }

    @Test
    void theWorkerIsRecycledAfterMaxJobs() throws Exception {
        startPool(1, 2, 0);
        FakeWorker w = connectedWorker();
        for (int i = 1; i <= 2; i++) {
            String id = "job-00000000000" + i;
            assertTrue(tryRun(run(id, 1, false)));
            w.send(completed(id));
            events.next(Recorder.Finished.class);
        }
        settle();
        assertTrue(w.stopped, "stopped after its second job");
        FakeWorker next = launcher.next();
        assertEquals("w1.2", next.id());
        assertEquals(WorkerPool.SlotState.STARTING, onLoop(pool::describe).get(0).state());
        assertEquals(2, onLoop(pool::describe).get(0).processesStarted());
    }

    private void runToCompletion(FakeWorker w, String id) throws Exception {
        assertTrue(tryRun(run(id, 1, false)), "a free worker takes " + id);
        w.send(completed(id));
        events.next(Recorder.Finished.class);
    }

    @Test
    void aWorkerDueForItsJobCountKeepsWorkingWhileJobsWaitUpToTwiceTheCount() throws Exception {
        startPool(1, 2, 0);
        FakeWorker w = connectedWorker();
        tellWaiting(5);
        runToCompletion(w, "job-000000000001");
        runToCompletion(w, "job-000000000002");
        events.next(Recorder.Available.class);
        assertFalse(w.stopped, "jobs wait: its replacement waits for them");
        runToCompletion(w, "job-000000000003");
        events.next(Recorder.Available.class);
        assertFalse(w.stopped);
        runToCompletion(w, "job-000000000004");
        settle();
        assertTrue(w.stopped, "twice its count: replaced although jobs wait");
        assertEquals("w1.2", launcher.next().id());
    }

    @Test
    void aWorkerDueForItsJobCountIsReplacedOnceNoJobWaits() throws Exception {
        startPool(1, 2, 0);
        FakeWorker w = connectedWorker();
        tellWaiting(1);
        runToCompletion(w, "job-000000000001");
        runToCompletion(w, "job-000000000002");
        events.next(Recorder.Available.class);
        assertFalse(w.stopped);
        assertEquals(WorkerPool.SlotState.IDLE, onLoop(pool::describe).get(0).state());
        tellWaiting(0);
        assertTrue(w.stopped, "the queue is empty: replaced now");
        FakeWorker next = launcher.next();
        assertEquals("w1.2", next.id());
        assertEquals(WorkerPool.SlotState.STARTING, onLoop(pool::describe).get(0).state());

        // Due with nothing waiting: replaced when it says idle, without taking another job.
        next.connect();
        events.next(Recorder.Available.class);
        runToCompletion(next, "job-000000000003");
        runToCompletion(next, "job-000000000004");
        settle();
        assertTrue(next.stopped);
    }

    @Test
    void workersDueForTheirJobCountAreReplacedOneAtATime() throws Exception {
        startPool(2, 2, 0);
        FakeWorker a = connectedWorker();
        FakeWorker b = connectedWorker();
        tellWaiting(4);
        // Two jobs each, while others wait: both are due, and both go on.
        for (int round = 0; round < 2; round++) {
            String first = "job-00000000000" + (2 * round + 1);
            String second = "job-00000000000" + (2 * round + 2);
            assertTrue(tryRun(run(first, 1, false)));
            assertTrue(tryRun(run(second, 1, false)));
            FakeWorker firstWorker = a.runs.stream().anyMatch(r -> r.jobId().equals(first)) ? a : b;
            FakeWorker secondWorker = firstWorker == a ? b : a;
            firstWorker.send(completed(first));
            events.next(Recorder.Finished.class);
            secondWorker.send(completed(second));
            events.next(Recorder.Finished.class);
        }
        settle();
        assertFalse(a.stopped || b.stopped);
        tellWaiting(0);
        assertTrue(a.stopped ^ b.stopped, "one is replaced, the other stays warm for the next job");
        FakeWorker successor = launcher.next();
        tellWaiting(0); // while the successor starts: the other still waits
        assertFalse(a.stopped && b.stopped);
        successor.connect();
        events.next(Recorder.Available.class);
        tellWaiting(0); // the dispatch after the successor became free
        assertTrue(a.stopped && b.stopped, "then the other is replaced");
        assertNotNull(launcher.next());
    }

    @Test
    void oneJobPerWorkerIsAFreshBlenderPerJobEvenWhileJobsWait() throws Exception {
        startPool(1, 1, 0);
        FakeWorker w = connectedWorker();
        tellWaiting(5);
        runToCompletion(w, "job-000000000001");
        settle();
        assertTrue(w.stopped);
        assertEquals("w1.2", launcher.next().id());
    }

    @Test
    void theWorkerIsRecycledAboveTheMemoryLimit() throws Exception {
        startPool(1, 200, 100);
        FakeWorker w = connectedWorker();
        tryRun(run("job-000000000001", 1, false));
        w.rss = 50L * 1024 * 1024;
        w.send(completed("job-000000000001"));
        events.next(Recorder.Finished.class);
        settle();
        assertFalse(w.stopped, "50 MB is under the 100 MB limit");
        tryRun(run("job-000000000002", 1, false));
        w.rss = 150L * 1024 * 1024;
        w.send(completed("job-000000000002"));
        events.next(Recorder.Finished.class);
        settle();
        assertTrue(w.stopped, "150 MB is over the limit");
        launcher.next();
    }

    @Test
    void aFreshProcessJobTakesOnlyAnUnusedWorkerAndRecyclesAUsedOne() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        tryRun(run("job-000000000001", 1, false));
        w.send(completed("job-000000000001"));
        events.next(Recorder.Finished.class);
        assertFalse(tryRun(run("job-000000000002", 1, true)), "the free worker has run a job");
        assertTrue(w.stopped, "so it is recycled for the fresh job");
        FakeWorker fresh = connectedWorker();
        assertTrue(tryRun(run("job-000000000002", 1, true)));
        fresh.send(completed("job-000000000002"));
        events.next(Recorder.Finished.class);
        settle();
        assertTrue(fresh.stopped, "a fresh-process job's worker is replaced after it");
    }

    @Test
    void aCrashMidJobIsReportedWithItsSignalAndTheSlotRestarts() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        tryRun(run("job-000000000001", 1, false));
        w.exit(true, 139);
        AttemptOutcome.Failed f = assertInstanceOf(AttemptOutcome.Failed.class,
                events.next(Recorder.Finished.class).outcome());
        assertEquals(FailureKind.BLENDER_CRASHED, f.kind());
        assertTrue(f.message().contains("signal 11"), f.message());
        assertEquals("w1.2", launcher.next().id());
    }

    @Test
    void anAbortedJobIsNotReportedTwice() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        tryRun(run("job-000000000001", 1, false));
        onLoop(() -> {
            pool.abort("job-000000000001");
            return null;
        });
        assertTrue(w.killed);
        w.exit(true, 143);
        assertEquals("w1.2", launcher.next().id());
        settle();
        assertTrue(events.events.stream().noneMatch(e -> e instanceof Recorder.Finished),
                "the owner decides the aborted attempt's fate; the pool reports nothing: " + events.events);
    }

    @Test
    void aMessageForAnotherJobIsAViolationThatFailsTheJobAndKillsTheWorker() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        tryRun(run("job-000000000001", 1, false));
        w.send(completed("job-0000000000ff"));
        AttemptOutcome.Failed f = assertInstanceOf(AttemptOutcome.Failed.class,
                events.next(Recorder.Finished.class).outcome());
        assertEquals(FailureKind.PROTOCOL_VIOLATION, f.kind());
        assertTrue(f.message().contains("job-0000000000ff"), f.message());
        settle(); // the outcome is told before the worker is killed, in the same loop task
        assertTrue(w.killed);
        assertEquals(WorkerPool.SlotState.BUSY, onLoop(pool::describe).get(0).state(), "not free while it dies");
        w.exit(true, 137);
        FakeWorker next = connectedWorker();
        assertEquals("w1.2", next.id());
        assertTrue(tryRun(run("job-000000000002", 1, false)), "the slot serves again: nothing leaked");
        assertTrue(events.events.stream().noneMatch(e -> e instanceof Recorder.Finished),
                "the killed worker's exit is not a second outcome: " + events.events);
    }

    @Test
    void aResultWhileIdleIsAViolationThatKillsTheWorker() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        w.send(completed("job-000000000001"));
        settle();
        assertTrue(w.killed);
        assertEquals(0, (int) onLoop(pool::freeWorkers), "a worker that lies is never given a job");
        assertFalse(tryRun(run("job-000000000002", 1, false)));
        w.exit(true, 137);
        connectedWorker();
        assertTrue(tryRun(run("job-000000000002", 1, false)));
    }

    @Test
    void aViolationReportedByTheChannelFailsTheRunningJob() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        tryRun(run("job-000000000001", 1, false));
        w.listener.violation(w, "a frame that is not JSON");
        AttemptOutcome.Failed f = assertInstanceOf(AttemptOutcome.Failed.class,
                events.next(Recorder.Finished.class).outcome());
        assertEquals(FailureKind.PROTOCOL_VIOLATION, f.kind());
        w.exit(true, 137);
        launcher.next();
        settle();
        assertTrue(events.events.stream().noneMatch(e -> e instanceof Recorder.Finished),
                "the killed worker's exit is not a second outcome: " + events.events);
    }

    @Test
    void aWorkerThatDoesNotTakeItsRunIsKilledAndTheAttemptFailsAsAViolation() throws Exception {
        startPool(1, 200, 0, Duration.ofMillis(100), WorkerPool.IDLE_TIMEOUT);
        FakeWorker w = connectedWorker();
        w.takesRuns = false; // its inbox no longer reads the channel
        assertTrue(tryRun(run("job-000000000001", 1, false)));
        AttemptOutcome.Failed f = assertInstanceOf(AttemptOutcome.Failed.class,
                events.next(Recorder.Finished.class).outcome());
        assertEquals(FailureKind.PROTOCOL_VIOLATION, f.kind());
        assertTrue(f.message().contains("did not take the job within 100 ms"), f.message());
        assertTrue(f.message().contains("script did not start"), f.message());
        settle();
        assertTrue(w.killed);
        assertEquals(WorkerPool.SlotState.BUSY, onLoop(pool::describe).get(0).state(), "not free while it dies");
        w.exit(true, 137);
        FakeWorker next = connectedWorker();
        assertEquals("w1.2", next.id());
        assertTrue(tryRun(run("job-000000000001", 2, false)), "the retry runs on the successor");
        next.send(completed("job-000000000001"));
        assertInstanceOf(AttemptOutcome.Succeeded.class, events.next(Recorder.Finished.class).outcome());
    }

    @Test
    void aWorkerThatTookItsRunIsNotKilledHoweverLongTheJobRuns() throws Exception {
        startPool(1, 200, 0, Duration.ofMillis(50), WorkerPool.IDLE_TIMEOUT);
        FakeWorker w = connectedWorker();
        assertTrue(tryRun(run("job-000000000001", 1, false)));
        Thread.sleep(300);
        settle();
        assertFalse(w.killed, "the take timeout is about taking the run, not about the job's length");
        w.send(completed("job-000000000001"));
        assertInstanceOf(AttemptOutcome.Succeeded.class, events.next(Recorder.Finished.class).outcome());
        assertTrue(tryRun(run("job-000000000002", 1, false)));
        Thread.sleep(300);
        settle();
        assertFalse(w.killed, "the check of an earlier run does not fire on a later one");
    }

    @Test
    void messagesAboutAJobBeforeStartedOrASecondStartedAreViolations() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        w.takesRuns = false;
        tryRun(run("job-000000000001", 1, false));
        w.send(completed("job-000000000001"));
        AttemptOutcome.Failed f = assertInstanceOf(AttemptOutcome.Failed.class,
                events.next(Recorder.Finished.class).outcome());
        assertEquals(FailureKind.PROTOCOL_VIOLATION, f.kind());
        assertTrue(f.message().contains("before \"started\""), f.message());
        settle();
        assertTrue(w.killed);
        w.exit(true, 137);

        FakeWorker next = connectedWorker();
        tryRun(run("job-000000000002", 1, false));
        next.send(new FromWorker.Started("job-000000000002"));
        f = assertInstanceOf(AttemptOutcome.Failed.class, events.next(Recorder.Finished.class).outcome());
        assertTrue(f.message().contains("a second \"started\""), f.message());
    }

    @Test
    void aWorkerIsFreeOnlyOnceItSaysIdleAfterTheOutcome() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        w.becomesIdle = false;
        tryRun(run("job-000000000001", 1, false));
        w.send(completed("job-000000000001"));
        assertInstanceOf(AttemptOutcome.Succeeded.class, events.next(Recorder.Finished.class).outcome());
        settle();
        assertEquals(0, (int) onLoop(pool::freeWorkers), "still cleaning up after its job");
        assertFalse(tryRun(run("job-000000000002", 1, false)));
        w.listener.message(w, new FromWorker.Idle(null));
        events.next(Recorder.Available.class);
        assertTrue(tryRun(run("job-000000000002", 1, false)));
        assertFalse(w.stopped);
    }

    @Test
    void aWorkerWhoseJobLeftStateBehindIsReplacedWhenItSaysSo() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        w.becomesIdle = false;
        tryRun(run("job-000000000001", 1, false));
        w.send(completed("job-000000000001"));
        assertInstanceOf(AttemptOutcome.Succeeded.class, events.next(Recorder.Finished.class).outcome());
        w.listener.message(w, new FromWorker.Idle("the job left 1 thread running (Thread-1)"));
        settle();
        assertTrue(w.stopped, "a worker whose state cannot be reset runs no other job");
        assertFalse(w.killed, "it is asked to exit, like any recycled worker");
        assertEquals("w1.2", launcher.next().id());
        assertTrue(events.events.stream().noneMatch(e -> e instanceof Recorder.Available), events.events.toString());
    }

    @Test
    void aWorkerThatNeverSaysIdleIsKilledAndReplaced() throws Exception {
        startPool(1, 200, 0, WorkerPool.TAKE_TIMEOUT, Duration.ofMillis(100));
        FakeWorker w = connectedWorker();
        w.becomesIdle = false;
        tryRun(run("job-000000000001", 1, false));
        w.send(completed("job-000000000001"));
        assertInstanceOf(AttemptOutcome.Succeeded.class, events.next(Recorder.Finished.class).outcome());
        Thread.sleep(300);
        settle();
        assertTrue(w.killed);
        w.exit(true, 137);
        assertEquals("w1.2", connectedWorker().id());
        assertTrue(events.events.stream().noneMatch(e -> e instanceof Recorder.Finished),
                "the job's outcome was already told; the worker's death is not a second one: " + events.events);
    }

    @Test
    void anIdleMessageThatAnswersNoOutcomeIsAViolation() throws Exception {
        startPool(1, 200, 0);
        FakeWorker w = connectedWorker();
        w.listener.message(w, new FromWorker.Idle(null));
        settle();
        assertTrue(w.killed);
        assertEquals(0, (int) onLoop(pool::freeWorkers));
    }

    @Test
    void failedStartsBackOffAndThenFailWaitingJobs() throws Exception {
        startPool(1, 200, 0);
        for (int i = 1; i <= WorkerPool.FAILING_AFTER; i++) {
            FakeWorker w = launcher.next();
            assertEquals("w1." + i, w.id());
            w.exit(false, 1);
        }
        Recorder.Failing failing = events.next(Recorder.Failing.class);
        assertTrue(failing.message().contains("it failed") && failing.message().contains("last line"),
                failing.message());
        FakeWorker fourth = launcher.next();
        fourth.connect();
        events.next(Recorder.Available.class);
        assertTrue(tryRun(run("job-000000000001", 1, false)), "a slot that starts again serves again");
    }

    @Test
    void restartDelayDoublesUpToThirtySeconds() {
        Duration base = Duration.ofMillis(500);
        assertEquals(500, WorkerPool.restartDelay(base, 1).toMillis());
        assertEquals(1000, WorkerPool.restartDelay(base, 2).toMillis());
        assertEquals(2000, WorkerPool.restartDelay(base, 3).toMillis());
        assertEquals(30_000, WorkerPool.restartDelay(base, 7).toMillis());
        assertEquals(30_000, WorkerPool.restartDelay(base, 1000).toMillis());
    }

    @Test
    void theFirstFreeSlotIsChosenAndTwoJobsRunAtOnce() throws Exception {
        startPool(2, 200, 0);
        FakeWorker a = connectedWorker();
        FakeWorker b = connectedWorker();
        assertTrue(tryRun(run("job-000000000001", 1, false)));
        assertTrue(tryRun(run("job-000000000002", 1, false)));
        assertEquals(1, a.runs.size(), "the first free slot takes the first job");
        assertEquals(1, b.runs.size());
        assertEquals(2, (int) onLoop(pool::busyWorkers));
        assertEquals("fake", pool.executor());
    }

    @Test
    void shutdownStopsEveryWorkerAndNoneRestarts() throws Exception {
        startPool(2, 200, 0);
        FakeWorker a = connectedWorker();
        FakeWorker b = connectedWorker();
        CompletableFuture<Void> down = CompletableFuture.runAsync(() -> pool.shutdown(Duration.ofMillis(10)));
        down.get(5, TimeUnit.SECONDS);
        assertTrue(a.stopped && b.stopped);
        a.exit(true, 0);
        b.exit(true, 0);
        settle();
        assertTrue(launcher.launched.isEmpty(), "no worker started after shutdown");
        assertTrue(onLoop(pool::describe).stream().allMatch(s -> s.state() == WorkerPool.SlotState.SHUT_DOWN));
    }

    @Test
    void shutdownKillsAWorkerThatIsStillStarting() throws Exception {
        startPool(2, 200, 0);
        FakeWorker ready = connectedWorker();
        FakeWorker starting = launcher.next();
        CompletableFuture.runAsync(() -> pool.shutdown(Duration.ofMillis(10))).get(5, TimeUnit.SECONDS);
        assertTrue(starting.killed, "a worker that cannot hear shutdown yet is killed at once");
        assertFalse(ready.killed, "a connected one is asked to stop");
        assertTrue(ready.stopped);
    }

    // ------------------------------------------------------------------ how deaths and start failures read

    private static WorkerExit exit(int code, String crashReport) {
        return new WorkerExit(true, code, null, List.of(), crashReport);
    }

    @Test
    void segfaultIsACrashNamingTheSignal() {
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(139, null));
        assertEquals(FailureKind.BLENDER_CRASHED, f.kind());
        assertTrue(f.message().contains("signal 11"), f.message());
        assertFalse(f.message().contains("crash report"), f.message());
        assertNull(f.crashReport());
        assertNull(f.traceback());
    }

    @Test
    void crashReportMakesItACrashAndIsAttached() {
        String report = "# Blender 3.4.1, Commit date: ...\n# backtrace\n./blender(BLI_system_backtrace+0x1d)";
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(1, report));
        assertEquals(FailureKind.BLENDER_CRASHED, f.kind());
        assertEquals(report, f.crashReport());
        assertTrue(f.message().contains("exit code 1"), f.message());
        assertTrue(f.message().contains("crash report is attached"), f.message());
    }

    @Test
    void signalAndCrashReportTogether() {
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(134, "report"));
        assertEquals(FailureKind.BLENDER_CRASHED, f.kind());
        assertTrue(f.message().contains("signal 6"), f.message());
        assertEquals("report", f.crashReport());
    }

    @Test
    void exitWithoutReportIsAnExit() {
        for (int code : new int[]{0, 1, 128, 160, 255}) {
            AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(code, null));
            assertEquals(FailureKind.BLENDER_EXITED, f.kind(), "exit code " + code);
            assertTrue(f.message().contains("code " + code), f.message());
        }
        assertTrue(WorkerPool.describeDeath(exit(0, null)).message().contains("os._exit()"));
    }

    @Test
    void startFailureIncludesProblemExitCodeAndLastLines() {
        List<String> console = new ArrayList<>();
        for (int i = 1; i <= 20; i++) console.add("console line " + i);
        String s = WorkerPool.startFailure(new WorkerExit(false, 1, "the runtime did not connect within 60 s", console,
                null));
        assertTrue(s.startsWith("the runtime did not connect within 60 s"), s);
        assertTrue(s.contains("(exit code 1)"), s);
        assertTrue(s.contains("Its last output:"), s);
        assertTrue(s.contains("console line 20"), s);
        assertTrue(s.contains("console line 6\n"), "the last 15 lines: " + s);
        assertFalse(s.contains("console line 5\n"), "only the last 15 lines: " + s);
    }

    @Test
    void startFailureWithoutProblemOrOutput() {
        String s = WorkerPool.startFailure(new WorkerExit(false, 127, null, List.of(), null));
        assertEquals("Blender exited before it was ready (exit code 127)", s);
    }
}
