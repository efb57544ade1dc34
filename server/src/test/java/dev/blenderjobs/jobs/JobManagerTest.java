package dev.blenderjobs.jobs;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobFailure;
import dev.blenderjobs.model.JobRequest;
import dev.blenderjobs.model.JobResult;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.PassedData;
import dev.blenderjobs.model.RemovalReason;
import dev.blenderjobs.model.Timing;
import dev.blenderjobs.workers.AttemptOutcome;
import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.workers.WorkerPool;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.mockito.ArgumentCaptor;
import org.mockito.InOrder;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyDouble;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.ArgumentMatchers.argThat;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.ArgumentMatchers.isNull;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.inOrder;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.spy;
import static org.mockito.Mockito.timeout;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

@Timeout(20)
class JobManagerTest {

    @TempDir
    Path state;

    private EventLoop loop;
    private JobFiles files;
    private WorkerPool pool;
    private JobEvents events;
    private JobManager manager;

    @BeforeEach
    void setUp() throws Exception {
        loop = new EventLoop("test-loop");
        files = new JobFiles(state);
        pool = mock(WorkerPool.class);
        events = mock(JobEvents.class, org.mockito.Mockito.withSettings().defaultAnswer(org.mockito.Mockito.CALLS_REAL_METHODS));
        manager = new JobManager(loop, 20, null, JobManager.Retention.UNLIMITED);
        manager.attach(pool, events);
        openEmpty(manager);
    }

    private void openEmpty(JobManager m) throws Exception {
        await(m.open(files, List.of(), false));
    }

    @AfterEach
    void tearDown() {
        loop.close();
    }

    // ------------------------------------------------------------------ helpers

    private static JobSpec spec(String name, double timeout, int maxAttempts) {
        return spec(name, timeout, maxAttempts, 0);
    }

    private static JobSpec spec(String name, double timeout, int maxAttempts, int priority) {
        return new JobSpec(name, null, timeout, maxAttempts, JobSpec.Isolation.WORKER, priority, null, null);
    }

    private static JobSpec spec() {
        return spec(null, 0, 1);
    }

    /** An addJob of scriptText "print('hi')", as the intake hands it over. */
    private static JobRequest request(JobSpec spec) {
        return new JobRequest(spec, "print('hi')", PassedData.EMPTY, null, null, false, null, false);
    }

    private static <T> T await(CompletableFuture<T> f) throws Exception {
        return f.get(5, TimeUnit.SECONDS);
    }

    /** Runs on the loop, as the pool does in production, and waits. */
    private void onLoop(Runnable r) throws Exception {
        await(loop.call(() -> {
            r.run();
            return null;
        }));
    }

    private Job submit(JobSpec spec) throws Exception {
        return submit(manager, spec);
    }

    /**
     * Submits and waits until the loop has also run the dispatch that the submit queued
     * behind its answer, so a test sees the job as the pool left it (ACTIVE or still QUEUED).
     */
    private static Job submit(JobManager m, JobSpec spec) throws Exception {
        Job queued = await(m.submit(JobManager.newJobId(), request(spec)));
        return await(m.get(queued.jobId()));
    }

    private Job get(String id) throws Exception {
        return await(manager.get(id));
    }

    private JobLog logOf(String id) throws Exception {
        return await(manager.inspect(id)).log();
    }

    private List<String> idsIn(JobManager m, JobState... states) throws Exception {
        return await(m.list(Set.of(states))).stream().map(Job::jobId).toList();
    }

    private static JobException failure(CompletableFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
        return assertInstanceOf(JobException.class, e.getCause());
    }

    private static JobResult result() {
        JsonObject blocks = JsonParser.parseString("{\"objects\": [\"Cube\"]}").getAsJsonObject();
        return new JobResult(42, "ab".repeat(32), blocks, new Timing(null, 12.0, null, null));
    }

    private static AttemptOutcome.Succeeded succeeded() {
        return new AttemptOutcome.Succeeded(result(), 1234);
    }

    private static AttemptOutcome.Failed scriptError(String message) {
        return new AttemptOutcome.Failed(FailureKind.SCRIPT_ERROR, message, "Traceback (most recent call last): ...",
                null);
    }

    private static Job stateIs(JobState s) {
        return argThat(v -> v != null && v.state() == s);
    }

    private List<ToWorker.Run> runsOffered(int times) {
        ArgumentCaptor<ToWorker.Run> runs = ArgumentCaptor.forClass(ToWorker.Run.class);
        verify(pool, times(times)).tryRun(runs.capture(), any());
        return runs.getAllValues();
    }

    /**
     * Workers for the pool mock: it takes a run while one is free, and records which jobs it was
     * offered and which it started, in order. Touched on the loop only (tryRun is called there).
     */
    private static final class Slots {
        int free;
        final List<String> offered = Collections.synchronizedList(new ArrayList<>());
        final List<String> started = Collections.synchronizedList(new ArrayList<>());

        List<String> started() {
            return List.copyOf(started);
        }
    }

    private Slots slots(int free) {
        Slots s = new Slots();
        s.free = free;
        when(pool.tryRun(any(), any())).thenAnswer(inv -> {
            ToWorker.Run run = inv.getArgument(0);
            s.offered.add(run.jobId());
            if (s.free == 0) return false;
            s.free--;
            s.started.add(run.jobId());
            return true;
        });
        return s;
    }

    /** A worker became free (its job finished elsewhere): the pool says so, as in production. */
    private void freeWorker(JobManager m, Slots s) throws Exception {
        onLoop(() -> {
            s.free++;
            m.workerAvailable();
        });
    }

    // ------------------------------------------------------------------ submit and dispatch

    @Test
    void theAnswerIsCompletedByTheCallerBeforeTheLoopTakesTheJobAndALookupThenFindsIt() throws Exception {
        // The endpoint chains addJob's answer this way: the intake hands it to the client's
        // queue itself as soon as the record is on disk. A client quick to ask (getJob,
        // listJobs) may reach the loop before the task that takes the job: it must find it.
        when(pool.tryRun(any(), any())).thenReturn(true);
        java.util.concurrent.CountDownLatch busy = new java.util.concurrent.CountDownLatch(1);
        loop.execute(() -> {
            try {
                busy.await(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        String id = JobManager.newJobId();
        java.util.concurrent.atomic.AtomicReference<String> answeredOn = new java.util.concurrent.atomic.AtomicReference<>();
        java.util.List<java.util.concurrent.CompletableFuture<?>> asked = new java.util.ArrayList<>();
        manager.submit(id, request(spec()), added -> added.thenRun(() -> {
            answeredOn.set(loop.inLoop() ? "loop" : Thread.currentThread().getName());
            // What a client does with the answer, queued on the loop before the job's own task.
            asked.add(manager.get(id));
            asked.add(manager.list(Set.of()));
        }));
        assertEquals(Thread.currentThread().getName(), answeredOn.get(), "answered by the caller, the loop still busy");
        busy.countDown();
        Job seen = (Job) asked.get(0).get(5, TimeUnit.SECONDS);
        assertEquals(id, seen.jobId());
        assertEquals(JobState.QUEUED, seen.state(), "taken by the lookup, dispatched by the job's own task after it");
        @SuppressWarnings("unchecked")
        List<Job> listed = (List<Job>) asked.get(1).get(5, TimeUnit.SECONDS);
        assertEquals(List.of(id), listed.stream().map(Job::jobId).toList());
        assertEquals(JobState.ACTIVE, get(id).state());
        verify(events, times(1)).stateChanged(argThat(j -> j.jobId().equals(id) && j.state() == JobState.QUEUED), isNull());
    }

    @Test
    void aJobSubmittedAfterShutdownIsRefusedWithoutWritingAnything() throws Exception {
        await(manager.shutdown("the client sent shutdown"));
        String id = JobManager.newJobId();
        JobException e = failure(manager.submit(id, request(spec())));
        assertEquals(JobException.Reason.SHUTTING_DOWN, e.reason());
        assertFalse(Files.exists(files.dirOf(id)), "refused before its files were written");
    }

    @Test
    void aJobWhoseFolderNameIsTakenFailsWithoutDeletingWhatIsThere() throws Exception {
        String id = JobManager.newJobId();
        Path there = files.dirOf(id).resolve("job.json");
        Files.createDirectories(there.getParent());
        Files.writeString(there, "another job's record");
        JobException e = failure(manager.submit(id, request(spec())));
        assertEquals(JobException.Reason.JOB_FILES_UNAVAILABLE, e.reason());
        assertEquals("another job's record", Files.readString(there));
    }

    @Test
    void submitQueuesThenRunsOnAnIdleWorker() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        when(pool.pidOf(anyString())).thenReturn(4242L);
        String id = JobManager.newJobId();
        assertTrue(id.matches("job-[0-9a-f]{12}"), id);
        Job queued = await(manager.submit(id, request(spec("first", 0, 1))));
        // The answer is the job as queued; it starts in the loop's next task, right after.
        assertEquals(JobState.QUEUED, queued.state());
        assertEquals(0, queued.attempt());
        Job v = get(id);

        assertEquals(id, v.jobId());
        assertEquals(JobState.ACTIVE, v.state());
        assertEquals(1, v.attempt());
        assertEquals("first", v.name());
        assertNull(v.spec().script(), "a scriptText job has no script path");
        assertEquals("<scriptText>", v.spec().scriptLabel());
        assertEquals(4242L, v.workerPid());
        assertTrue(v.startedAt() > 0);
        assertTrue(Files.isDirectory(files.dirOf(id)));
        assertEquals("print('hi')", Files.readString(files.scriptOf(id)));
        assertEquals(new JsonObject(), JsonParser.parseString(Files.readString(files.passedDataOf(id))));

        ArgumentCaptor<ToWorker.Run> request = ArgumentCaptor.forClass(ToWorker.Run.class);
        ArgumentCaptor<JobLog> log = ArgumentCaptor.forClass(JobLog.class);
        verify(pool).tryRun(request.capture(), log.capture());
        ToWorker.Run r = request.getValue();
        assertEquals(id, r.jobId());
        assertEquals(1, r.attempt());
        assertEquals(v.spec(), r.spec(), "the worker is given the job's own spec");
        assertFalse(r.spec().freshProcess());
        assertEquals(files.scriptOf(id).toString(), r.files().script());
        assertEquals(files.passedDataOf(id).toString(), r.files().passedData());
        assertEquals(files.workDirOf(id).toString(), r.files().workDir());
        assertEquals(files.resultDirOf(id).toString(), r.files().resultDir());
        assertNull(r.files().library());
        assertNull(r.files().blendFile());
        assertSame(logOf(id), log.getValue(), "the worker's output goes to the job's log");

        InOrder order = inOrder(events);
        order.verify(events).stateChanged(stateIs(JobState.QUEUED), isNull());
        order.verify(events).stateChanged(stateIs(JobState.ACTIVE), eq(JobState.QUEUED));
        assertEquals(List.of(), idsIn(manager, JobState.QUEUED));
    }

    @Test
    void successCompletesTheJob() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec()).jobId();
        onLoop(() -> manager.progress(id, 1, 0.4, "almost half", 99L));
        verify(events).progress(id, 0.4, "almost half", 99L);
        assertEquals(0.4, get(id).progress());

        onLoop(() -> manager.attemptFinished(id, 1, succeeded()));

        Job v = get(id);
        assertEquals(JobState.COMPLETED, v.state());
        assertEquals(1.0, v.progress());
        assertEquals(result(), v.result(), "the job keeps what the attempt left");
        assertEquals(42, v.result().pythonDataBytes());
        assertEquals(12, v.result().timing().scriptMs().intValue());
        assertNull(v.error());
        assertTrue(v.finishedAt() >= v.startedAt());
        verify(events).stateChanged(argThat(j -> j.state() == JobState.COMPLETED && j.progress() == 1.0),
                eq(JobState.ACTIVE));
        assertEquals(v, await(manager.finished(id)), "finished() gives the completed job's snapshot");
    }

    @Test
    void eventsForStaleAttemptsOrUnknownJobsAreIgnored() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec()).jobId();
        onLoop(() -> {
            manager.progress(id, 2, 0.9, "wrong attempt", 1L);
            manager.progress("job-unknown", 1, 0.9, null, 1L);
            manager.attemptFinished(id, 2, succeeded());
            manager.attemptFinished("job-unknown", 1, succeeded());
        });
        Job v = get(id);
        assertEquals(JobState.ACTIVE, v.state());
        assertEquals(0.0, v.progress());
        verify(events, never()).progress(anyString(), anyDouble(), any(), anyLong());
    }

    @Test
    void failedAttemptIsRetriedUntilMaxAttempts() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec(null, 0, 2)).jobId();

        onLoop(() -> manager.attemptFinished(id, 1, scriptError("first boom")));
        // It went back to QUEUED with the failure, and was dispatched again at once.
        ArgumentCaptor<Job> retried = ArgumentCaptor.forClass(Job.class);
        verify(events).stateChanged(retried.capture(), eq(JobState.ACTIVE));
        assertEquals(JobState.QUEUED, retried.getValue().state());
        assertEquals(1, retried.getValue().earlierErrors().size());
        assertEquals("first boom", retried.getValue().earlierErrors().get(0).message());
        assertEquals(FailureKind.SCRIPT_ERROR, retried.getValue().error().kind());

        assertEquals(List.of(1, 2), runsOffered(2).stream().map(ToWorker.Run::attempt).toList());

        Job second = get(id);
        assertEquals(JobState.ACTIVE, second.state());
        assertEquals(2, second.attempt());
        assertEquals(1, second.earlierErrors().size());
        assertNull(second.error(), "a running job shows no error; the retried attempt's is in earlierErrors");

        // A late event of attempt 1 does not touch attempt 2.
        onLoop(() -> manager.attemptFinished(id, 1, succeeded()));
        assertEquals(JobState.ACTIVE, get(id).state());

        onLoop(() -> manager.attemptFinished(id, 2, scriptError("second boom")));
        Job failed = get(id);
        assertEquals(JobState.FAILED, failed.state());
        assertEquals(FailureKind.SCRIPT_ERROR, failed.error().kind());
        assertEquals("second boom", failed.error().message());
        assertEquals(2, failed.error().attempt());
        assertEquals("Traceback (most recent call last): ...", failed.error().traceback());
        assertEquals(1, failed.earlierErrors().size());
        List<String> tail = logOf(id).tail();
        assertTrue(tail.contains("=== blender-jobs: attempt 2 of 2 ==="), tail.toString());
        verify(events).stateChanged(stateIs(JobState.FAILED), eq(JobState.ACTIVE));
        verify(pool, times(2)).tryRun(any(), any());
    }

    @Test
    void failureCarriesItsKindAndTheLogTailAndAnUnknownKindCannotArise() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec()).jobId();
        logOf(id).note("printed by the script");
        onLoop(() -> manager.attemptFinished(id, 1,
                new AttemptOutcome.Failed(FailureKind.WORKER_ERROR, "odd", "Traceback (runtime)", null)));
        Job failed = get(id);
        assertEquals(FailureKind.WORKER_ERROR, failed.error().kind());
        assertEquals("Traceback (runtime)", failed.error().traceback());
        assertEquals(List.of("printed by the script"), failed.error().logTail());
        // Outcomes carry a FailureKind, not a string: a kind the server does not know cannot
        // reach a job (the channel codec refuses it as a protocol violation), and nothing maps
        // an unknown name to some other kind.
        assertTrue(FailureKind.named("SOMETHING_NEW").isEmpty());
        assertEquals(FailureKind.SCRIPT_ERROR, FailureKind.named("SCRIPT_ERROR").orElseThrow());
    }

    @Test
    void jobStaysQueuedWhenNoWorkerIsFreeAndFifoOrderIsKept() throws Exception {
        Slots slots = slots(0);
        String a = submit(spec("a", 0, 1)).jobId();
        String b = submit(spec("b", 0, 1)).jobId();
        String c = submit(spec("c", 0, 1)).jobId();
        assertEquals(JobState.QUEUED, get(a).state());
        assertEquals(0, get(a).attempt(), "a refused dispatch is not an attempt");
        assertEquals(List.of(a, b, c), idsIn(manager, JobState.QUEUED));
        // Only the head of the queue is offered to the pool.
        assertEquals(Set.of(a), Set.copyOf(slots.offered));

        freeWorker(manager, slots);
        assertEquals(JobState.ACTIVE, get(a).state());
        assertEquals(1, get(a).attempt());
        assertEquals(List.of(b, c), idsIn(manager, JobState.QUEUED));
        assertEquals(b, slots.offered.get(slots.offered.size() - 1), "b is the head now");

        onLoop(() -> {
            slots.free += 2;
            manager.workerAvailable();
        });
        assertEquals(List.of(), idsIn(manager, JobState.QUEUED));
        assertEquals(JobState.ACTIVE, get(b).state());
        assertEquals(JobState.ACTIVE, get(c).state());
        assertEquals(List.of(a, b, c), slots.started(), "started in FIFO order");
        assertEquals(List.of(a, b, c), slots.offered.stream().distinct().toList(), "offered in FIFO order");
    }

    @Test
    void aRetryKeepsItsPlaceAheadOfEveryJobAddedAfterIt() throws Exception {
        Slots slots = slots(1);
        String first = submit(spec("first", 0, 2)).jobId();
        String waiting = submit(spec("waiting", 0, 1)).jobId();
        assertEquals(List.of(first), slots.started());
        onLoop(() -> manager.attemptFinished(first, 1, scriptError("boom")));
        assertEquals(JobState.QUEUED, get(first).state());
        assertEquals(List.of(first, waiting), idsIn(manager, JobState.QUEUED));
        assertEquals(first, slots.offered.get(slots.offered.size() - 1), "the retry is the head, not the waiting job");

        freeWorker(manager, slots);
        assertEquals(List.of(first, first), slots.started());
        assertEquals(2, get(first).attempt());
        assertEquals(JobState.QUEUED, get(waiting).state());
        freeWorker(manager, slots);
        assertEquals(List.of(first, first, waiting), slots.started());
    }

    @Test
    void aRetryRejoinsAtItsOwnPlaceNotTheAbsoluteHead() throws Exception {
        Slots slots = slots(2);
        String x = submit(spec("x", 0, 2)).jobId();
        String y = submit(spec("y", 0, 2)).jobId();
        String z = submit(spec("z", 0, 1)).jobId();
        assertEquals(List.of(x, y), slots.started());
        // x fails first, then y: y, added after x, rejoins behind it (a retry placed at the
        // absolute head would run y first).
        onLoop(() -> manager.attemptFinished(x, 1, scriptError("x boom")));
        onLoop(() -> manager.attemptFinished(y, 1, scriptError("y boom")));
        assertEquals(List.of(x, y, z), idsIn(manager, JobState.QUEUED));
        for (int i = 0; i < 3; i++) freeWorker(manager, slots);
        assertEquals(List.of(x, y, x, y, z), slots.started());
    }

    // ------------------------------------------------------------------ priority

    @Test
    void aWaitingHigherPriorityJobStartsBeforeLowerOnes() throws Exception {
        Slots slots = slots(0);
        String low1 = submit(spec("low1", 0, 1, 0)).jobId();
        String low2 = submit(spec("low2", 0, 1, 0)).jobId();
        String high = submit(spec("high", 0, 1, 5)).jobId();
        String negative = submit(spec("negative", 0, 1, -3)).jobId();
        assertEquals(5, get(high).spec().priority(), "the snapshot shows the job's priority");
        assertEquals(high, slots.offered.get(slots.offered.size() - 1), "only the head is offered: the highest");
        assertFalse(slots.offered.contains(negative) || slots.offered.contains(low2));

        for (int i = 0; i < 4; i++) freeWorker(manager, slots);
        assertEquals(List.of(high, low1, low2, negative), slots.started());
    }

    @Test
    void jobsOfOnePriorityStartInTheOrderTheyWereAdded() throws Exception {
        Slots slots = slots(0);
        List<String> added = new ArrayList<>();
        for (int priority : new int[]{2, -1, 2, 7, -1, 2, 7}) {
            added.add(submit(spec("p" + priority, 0, 1, priority)).jobId());
        }
        for (int i = 0; i < added.size(); i++) freeWorker(manager, slots);
        assertEquals(List.of(added.get(3), added.get(6), added.get(0), added.get(2), added.get(5), added.get(1),
                added.get(4)), slots.started(), "highest priority first, FIFO within one priority");
    }

    @Test
    void aRetryOfALowPriorityJobDoesNotOvertakeAWaitingHigherPriorityOne() throws Exception {
        Slots slots = slots(1);
        String low = submit(spec("low", 0, 2, 0)).jobId();
        String high = submit(spec("high", 0, 1, 1)).jobId();
        assertEquals(JobState.QUEUED, get(high).state());
        // low's attempt fails and its worker is free again at once.
        onLoop(() -> {
            slots.free++;
            manager.attemptFinished(low, 1, scriptError("boom"));
        });
        assertEquals(List.of(low, high), slots.started());
        assertEquals(JobState.ACTIVE, get(high).state());
        assertEquals(JobState.QUEUED, get(low).state());
        freeWorker(manager, slots);
        assertEquals(List.of(low, high, low), slots.started());
        assertEquals(2, get(low).attempt());
    }

    @Test
    void resumedJobsJoinAtTheEndOfTheirPriority() throws Exception {
        long t = System.currentTimeMillis() - 10_000;
        // Left by an earlier server, so added long before the jobs below.
        String resumedLow = leftBehind("job-0000000000d1", JobState.ACTIVE, t, 0, 0);
        String resumedHigh = leftBehind("job-0000000000d2", JobState.QUEUED, t + 1, 0, 5);
        JobManager m = reopened(JobManager.Retention.UNLIMITED, false);
        Slots slots = slots(0);
        String newLow = submit(m, spec("new-low", 0, 1, 0)).jobId();
        String newHigh = submit(m, spec("new-high", 0, 1, 5)).jobId();
        assertEquals(List.of(resumedLow, resumedHigh), await(m.resumeAll()));

        for (int i = 0; i < 4; i++) freeWorker(m, slots);
        assertEquals(List.of(newHigh, resumedHigh, newLow, resumedLow), slots.started());
    }

    // ------------------------------------------------------------------ timeouts

    @Test
    void timeoutAbortsAndFailsWithTimedOut() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec(null, 0.2, 1)).jobId();
        verify(events, timeout(3000)).stateChanged(stateIs(JobState.FAILED), eq(JobState.ACTIVE));
        verify(pool).abort(id);
        Job v = get(id);
        assertEquals(JobState.FAILED, v.state());
        assertEquals(FailureKind.TIMED_OUT, v.error().kind());
        assertTrue(v.error().message().contains("0.2 s"), v.error().message());
        assertTrue(v.finishedAt() - v.startedAt() >= 150, "not before its timeout");
        // The pool then reports the killed attempt: it is ignored.
        onLoop(() -> manager.attemptFinished(id, 1,
                new AttemptOutcome.Failed(FailureKind.BLENDER_CRASHED, "killed", null, null)));
        assertEquals(FailureKind.TIMED_OUT, get(id).error().kind());
    }

    @Test
    void timeoutWithRetriesLeftRequeues() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec(null, 0.2, 2)).jobId();
        verify(events, timeout(3000)).stateChanged(stateIs(JobState.QUEUED), eq(JobState.ACTIVE));
        verify(pool).abort(id);
        verify(events, timeout(3000)).stateChanged(stateIs(JobState.FAILED), eq(JobState.ACTIVE));
        Job v = get(id);
        assertEquals(2, v.attempt());
        assertEquals(FailureKind.TIMED_OUT, v.earlierErrors().get(0).kind());
        assertEquals(FailureKind.TIMED_OUT, v.error().kind());
    }

    @Test
    void successCancelsTheTimeout() throws Exception {
        // The loop's timers are watched: the attempt's timeout task is seen to be cancelled,
        // without waiting for the time it would have fired.
        EventLoop watched = spy(new EventLoop("watched-loop"));
        List<ScheduledFuture<?>> timeouts = new CopyOnWriteArrayList<>();
        long timeoutMs = TimeUnit.HOURS.toMillis(1);
        doAnswer(inv -> {
            ScheduledFuture<?> f = (ScheduledFuture<?>) inv.callRealMethod();
            if (inv.<Long>getArgument(1) == timeoutMs && inv.getArgument(2) == TimeUnit.MILLISECONDS) timeouts.add(f);
            return f;
        }).when(watched).schedule(any(), anyLong(), any());
        try {
            JobManager m = new JobManager(watched, 20, null, JobManager.Retention.UNLIMITED);
            m.attach(pool, events);
            await(m.open(files, List.of(), false));
            when(pool.tryRun(any(), any())).thenReturn(true);
            String id = submit(m, spec(null, timeoutMs / 1000.0, 1)).jobId();
            assertEquals(1, timeouts.size(), "the attempt's timeout is set when it starts");
            assertFalse(timeouts.get(0).isCancelled());

            await(watched.call(() -> {
                m.attemptFinished(id, 1, succeeded());
                return null;
            }));
            assertTrue(timeouts.get(0).isCancelled(), "the timeout of the finished attempt is cancelled");
            assertEquals(JobState.COMPLETED, await(m.get(id)).state());
            verify(pool, never()).abort(anyString());
        } finally {
            watched.close();
        }
    }

    // ------------------------------------------------------------------ cancel

    @Test
    void cancelOfAQueuedJobDoesNotAbort() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(false);
        String id = submit(spec()).jobId();
        Map.Entry<Job, JobState> result = await(manager.cancel(id));
        assertEquals(JobState.CANCELED, result.getKey().state());
        assertEquals(JobState.QUEUED, result.getValue());
        assertTrue(result.getKey().finishedAt() > 0);
        verify(pool, never()).abort(anyString());
        assertEquals(List.of(), idsIn(manager, JobState.QUEUED));
        verify(events).stateChanged(stateIs(JobState.CANCELED), eq(JobState.QUEUED));
    }

    @Test
    void aCanceledQueuedJobLeavesTheQueue() throws Exception {
        // Equivalent of the removed queuedIds() check: the canceled head is never offered again.
        Slots slots = slots(0);
        String head = submit(spec()).jobId();
        String next = submit(spec()).jobId();
        await(manager.cancel(head));
        freeWorker(manager, slots);
        assertEquals(List.of(next), slots.started());
    }

    @Test
    void cancelOfAnActiveJobAbortsItsWorker() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec(null, 0, 3)).jobId();
        Map.Entry<Job, JobState> result = await(manager.cancel(id));
        assertEquals(JobState.CANCELED, result.getKey().state());
        assertEquals(JobState.ACTIVE, result.getValue());
        verify(pool).abort(id);
        // The killed attempt's report does not bring it back (retries left or not).
        onLoop(() -> manager.attemptFinished(id, 1,
                new AttemptOutcome.Failed(FailureKind.BLENDER_CRASHED, "killed", null, null)));
        assertEquals(JobState.CANCELED, get(id).state());
        verify(pool, times(1)).tryRun(any(), any());
    }

    @Test
    void cancelOfAFinishedJobChangesNothing() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec()).jobId();
        onLoop(() -> manager.attemptFinished(id, 1, succeeded()));
        Map.Entry<Job, JobState> result = await(manager.cancel(id));
        assertEquals(JobState.COMPLETED, result.getKey().state());
        assertEquals(JobState.COMPLETED, result.getValue());
        verify(pool, never()).abort(anyString());
    }

    @Test
    void cancelAllCancelsQueuedAndActive() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String active = submit(spec()).jobId();
        when(pool.tryRun(any(), any())).thenReturn(false);
        String queued = submit(spec()).jobId();
        assertEquals(2, await(manager.cancelAll()));
        assertEquals(JobState.CANCELED, get(active).state());
        assertEquals(JobState.CANCELED, get(queued).state());
        verify(pool).abort(active);
        verify(pool, never()).abort(queued);
        assertEquals(0, await(manager.cancelAll()));
    }

    @Test
    void cancelOfUnknownJobFails() {
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.cancel("job-000000000000")).reason());
    }

    // ------------------------------------------------------------------ finished

    @Test
    void finishedOfUnknownJobIsNotFound() {
        JobException e = failure(manager.finished("job-000000000000"));
        assertEquals(JobException.Reason.JOB_NOT_FOUND, e.reason());
        assertEquals("job-000000000000", ((JsonObject) e.data()).get("jobId").getAsString());
    }

    @Test
    void finishedOfQueuedOrActiveJobIsNotFinished() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(false);
        String queued = submit(spec()).jobId();
        JobException e = failure(manager.finished(queued));
        assertEquals(JobException.Reason.JOB_NOT_FINISHED, e.reason());
        assertEquals("QUEUED", ((JsonObject) e.data()).get("state").getAsString());

        when(pool.tryRun(any(), any())).thenReturn(true);
        onLoop(manager::workerAvailable);
        assertEquals(JobState.ACTIVE, get(queued).state());
        assertEquals(JobException.Reason.JOB_NOT_FINISHED, failure(manager.finished(queued)).reason());
    }

    @Test
    void finishedOfFailedJobIsJobFailed() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec()).jobId();
        onLoop(() -> manager.attemptFinished(id, 1, scriptError("boom")));
        JobException e = failure(manager.finished(id));
        assertEquals(JobException.Reason.JOB_FAILED, e.reason());
        assertTrue(e.getMessage().contains("boom"), e.getMessage());
        JsonObject data = (JsonObject) e.data();
        assertEquals("FAILED", data.get("state").getAsString());
        assertEquals("SCRIPT_ERROR", data.get("failureKind").getAsString());
    }

    @Test
    void finishedOfCanceledJobIsJobCanceled() throws Exception {
        String id = submit(spec()).jobId();
        await(manager.cancel(id));
        assertEquals(JobException.Reason.JOB_CANCELED, failure(manager.finished(id)).reason());
    }

    // ------------------------------------------------------------------ remove

    @Test
    void removeOfAnActiveJobIsRefused() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec()).jobId();
        JobException e = failure(manager.remove(id));
        assertEquals(JobException.Reason.JOB_NOT_REMOVABLE, e.reason());
        assertEquals(JobState.ACTIVE, get(id).state());
        assertTrue(Files.isDirectory(files.dirOf(id)));
    }

    @Test
    void removeOfAQueuedJobIsRefused() throws Exception {
        String id = submit(spec()).jobId();
        assertEquals(JobException.Reason.JOB_NOT_REMOVABLE, failure(manager.remove(id)).reason());
    }

    @Test
    void removeOfAFinishedJobForgetsItAndHasItsFilesDeleted() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String id = submit(spec()).jobId();
        logOf(id).note("some output");
        Path dir = files.dirOf(id);
        onLoop(() -> manager.attemptFinished(id, 1, succeeded()));
        assertTrue(Files.isDirectory(dir));
        assertTrue(Files.isRegularFile(files.logOf(id)));

        Job removed = await(manager.remove(id)).job();
        assertEquals(id, removed.jobId());
        assertEquals(JobState.COMPLETED, removed.state());
        verify(events).removed(id, RemovalReason.REMOVED); // the job store deletes the directory (JobStoreTest)
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.get(id)).reason());
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.remove(id)).reason());
    }

    @Test
    void removeOfUnknownJobIsNotFound() {
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.remove("job-000000000000")).reason());
    }

    // ------------------------------------------------------------------ replaceExisting, list, stats

    @Test
    void replaceExistingCancelsAndForgetsJobsWithTheSameName() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String old = submit(spec("render", 0, 1)).jobId();
        String other = submit(spec("other", 0, 1)).jobId();
        JobRequest replacing = new JobRequest(spec("render", 0, 1), "print(2)", PassedData.EMPTY, null, null, true,
                null, false);
        String fresh = await(manager.submit(JobManager.newJobId(), replacing)).jobId();
        // Asked once the answer is in (as a client would): the old job is gone by then.
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.get(old)).reason());
        verify(pool).abort(old);
        assertEquals(JobState.ACTIVE, get(other).state());
        assertEquals(JobState.ACTIVE, get(fresh).state());
        verify(events).removed(old, RemovalReason.REPLACED); // the job store deletes its directory
    }

    @Test
    void listFiltersByState() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String active = submit(spec()).jobId();
        when(pool.tryRun(any(), any())).thenReturn(false);
        String queued = submit(spec()).jobId();
        assertEquals(List.of(active, queued), idsIn(manager));
        assertEquals(List.of(queued), idsIn(manager, JobState.QUEUED));
    }

    @Test
    void statsCountJobsByState() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        when(pool.size()).thenReturn(2);
        when(pool.freeWorkers()).thenReturn(0);
        when(pool.busyWorkers()).thenReturn(2);
        when(pool.executor()).thenReturn("local");
        List<WorkerPool.SlotView> slotViews = List.of(
                new WorkerPool.SlotView("w1", WorkerPool.SlotState.BUSY, 11, 1, 1, "job-000000000001"),
                new WorkerPool.SlotView("w2", WorkerPool.SlotState.BUSY, 12, 1, 1, "job-000000000002"));
        when(pool.describe()).thenReturn(slotViews);
        String done = submit(spec()).jobId();
        submit(spec());
        when(pool.tryRun(any(), any())).thenReturn(false);
        submit(spec());
        onLoop(() -> manager.attemptFinished(done, 1, succeeded()));
        JobManager.Stats s = await(manager.stats());
        assertEquals(1, s.queued());
        assertEquals(1, s.active());
        assertEquals(1, s.completed());
        assertEquals(3, s.total());
        assertEquals(2, s.workers());
        assertEquals(0, s.freeWorkers());
        assertEquals(2, s.busyWorkers());
        assertEquals("local", s.executor());
        assertEquals(slotViews, s.workerDetails());
    }

    // ------------------------------------------------------------------ failures without workers

    @Test
    void submitWithoutBlenderIsBlenderUnavailable() throws Exception {
        JobManager noBlender = new JobManager(loop, 20, "No Blender executable found", JobManager.Retention.UNLIMITED);
        noBlender.attach(null, events);
        openEmpty(noBlender);
        JobException e = failure(noBlender.submit(JobManager.newJobId(), request(spec())));
        assertEquals(JobException.Reason.BLENDER_UNAVAILABLE, e.reason());
        assertTrue(e.getMessage().contains("No Blender executable found"), e.getMessage());
        assertFalse(Files.exists(state.resolve("jobs")), "no job directory was made");
        verify(events, never()).stateChanged(any(), any());
    }

    @Test
    void workersFailingFailsEveryQueuedJob() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(false);
        String a = submit(spec(null, 0, 3)).jobId();
        String b = submit(spec()).jobId();
        onLoop(() -> manager.workersFailing("blender: error while loading shared libraries"));
        for (String id : List.of(a, b)) {
            Job v = get(id);
            assertEquals(JobState.FAILED, v.state());
            assertEquals(FailureKind.WORKER_START_FAILED, v.error().kind());
            assertTrue(v.error().message().contains("error while loading shared libraries"), v.error().message());
            assertEquals(1, v.error().attempt());
        }
        assertEquals(List.of(), idsIn(manager, JobState.QUEUED));
        verify(events, times(2)).stateChanged(stateIs(JobState.FAILED), eq(JobState.QUEUED));
    }

    @Test
    void workersFailingLeavesActiveJobsAlone() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String active = submit(spec()).jobId();
        onLoop(() -> manager.workersFailing("no start"));
        assertEquals(JobState.ACTIVE, get(active).state());
    }

    // ------------------------------------------------------------------ shutdown

    @Test
    void shutdownInterruptsJobsAndRefusesNewOnes() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String active = submit(spec()).jobId();
        when(pool.tryRun(any(), any())).thenReturn(false);
        String queued = submit(spec()).jobId();
        assertEquals(2, await(manager.shutdown("the client sent shutdown")));
        verify(pool).abort(active);
        for (String id : List.of(active, queued)) {
            Job v = get(id);
            assertEquals(JobState.INTERRUPTED, v.state());
            assertEquals(FailureKind.INTERRUPTED, v.error().kind());
            assertTrue(v.error().message().contains("the client sent shutdown"), v.error().message());
        }
        assertTrue(get(active).error().message().contains("while attempt 1 was running"));
        assertTrue(get(queued).error().message().contains("waiting in the queue"));
        verify(events).stateChanged(stateIs(JobState.INTERRUPTED), eq(JobState.ACTIVE));
        verify(events).stateChanged(stateIs(JobState.INTERRUPTED), eq(JobState.QUEUED));
        assertEquals(JobException.Reason.JOB_INTERRUPTED, failure(manager.finished(active)).reason());

        String refused = JobManager.newJobId();
        JobException e = failure(manager.submit(refused, request(spec())));
        assertEquals(JobException.Reason.SHUTTING_DOWN, e.reason());
        // The refused job's directory is cleaned up: by the thread that completed the refusal
        // (the loop), so once a later loop task has run, it is gone.
        await(loop.call(() -> null));
        assertFalse(Files.exists(files.dirOf(refused)));
        try (var dirs = Files.list(state.resolve("jobs"))) {
            assertEquals(2, dirs.count());
        }
    }

    // ------------------------------------------------------------------ recovery, resume, retention

    private static final String LEFT_SCRIPT = "python_data = {'size': size}";

    /** Writes a job into the state directory as an earlier server would have left it. */
    private String leftBehind(String id, JobState state, long createdAt, long finishedAt) throws Exception {
        return leftBehind(id, state, createdAt, finishedAt, 0);
    }

    private String leftBehind(String id, JobState state, long createdAt, long finishedAt, int priority)
            throws Exception {
        JsonObject passed = new JsonObject();
        passed.addProperty("size", 3);
        JobSpec spec = spec("earlier-" + state, 0, 2, priority);
        Job queued = new Job(id, spec, JobState.QUEUED, 0, null, 0, createdAt, 0, 0, null, List.of(), -1, null);
        files.prepare(new JobRequest(spec, LEFT_SCRIPT, PassedData.of(passed, dev.blenderjobs.model.Fields.of("addJob", null)), null, null, false, null, false), queued);
        JobResult result = null;
        if (state == JobState.COMPLETED) {
            Files.createDirectories(files.resultDirOf(id)); // the runtime makes it when the job runs
            Files.writeString(files.pythonDataOf(id), "{\"size\":3}");
            result = new JobResult(10, null, null, Timing.NONE);
        }
        files.writeRecord(new Job(id, spec, state, 0.5, null, state == JobState.QUEUED ? 0 : 1, createdAt,
                createdAt + 1, finishedAt, null, List.of(), -1, result));
        return id;
    }

    private JobManager reopened(JobManager.Retention retention, boolean resume) throws Exception {
        JobManager m = new JobManager(loop, 20, null, retention);
        m.attach(pool, events);
        JobManager.Opened opened = await(m.open(files, new dev.blenderjobs.store.JobStore(JobEvents.NONE).load(files),
                resume));
        lastOpened = opened;
        return m;
    }

    private JobManager.Opened lastOpened;

    @Test
    void openReportsJobsLeftLiveAsInterruptedAndKeepsFinishedOnes() throws Exception {
        long t = System.currentTimeMillis() - 10_000;
        String done = leftBehind("job-00000000000a", JobState.COMPLETED, t, t + 5);
        String running = leftBehind("job-00000000000b", JobState.ACTIVE, t + 1, 0);
        String waiting = leftBehind("job-00000000000c", JobState.QUEUED, t + 2, 0);
        JobManager m = reopened(JobManager.Retention.UNLIMITED, false);

        assertEquals(new JobManager.Opened(3, 2, 0, 0), lastOpened);
        assertEquals(List.of(done, running, waiting), idsIn(m));
        Job completed = await(m.finished(done));
        assertEquals(new JobResult(10, null, null, Timing.NONE), completed.result(),
                "a completed job keeps its result across a restart");
        assertTrue(Files.isRegularFile(files.pythonDataOf(done)));
        Job interrupted = await(m.get(running));
        assertEquals(JobState.INTERRUPTED, interrupted.state());
        assertEquals(FailureKind.INTERRUPTED, interrupted.error().kind());
        assertTrue(interrupted.error().message().contains("stopped unexpectedly"), interrupted.error().message());
        assertTrue(interrupted.error().message().contains("while attempt 1 was running"));
        assertEquals(JobException.Reason.JOB_INTERRUPTED, failure(m.finished(running)).reason());
        verify(events).stateChanged(argThat(v -> v.jobId().equals(running) && v.state() == JobState.INTERRUPTED),
                eq(JobState.ACTIVE));
        verify(events).stateChanged(argThat(v -> v.jobId().equals(waiting) && v.state() == JobState.INTERRUPTED),
                eq(JobState.QUEUED));
        verify(pool, never()).tryRun(any(), any());
    }

    @Test
    void resumeQueuesAnInterruptedJobWithItsOwnInputsAndAFreshAttemptBudget() throws Exception {
        long t = System.currentTimeMillis();
        String done = leftBehind("job-00000000000a", JobState.COMPLETED, t, t + 5);
        String running = leftBehind("job-00000000000b", JobState.ACTIVE, t + 1, 0);
        JobManager m = reopened(JobManager.Retention.UNLIMITED, false);
        when(pool.tryRun(any(), any())).thenReturn(true);

        Job resumed = await(m.resume(running));
        assertEquals(JobState.ACTIVE, resumed.state());
        ArgumentCaptor<ToWorker.Run> run = ArgumentCaptor.forClass(ToWorker.Run.class);
        verify(pool).tryRun(run.capture(), any());
        assertEquals(running, run.getValue().jobId());
        assertEquals(1, run.getValue().attempt());
        assertEquals(LEFT_SCRIPT, Files.readString(Path.of(run.getValue().files().script())));
        assertEquals(3, JsonParser.parseString(Files.readString(Path.of(run.getValue().files().passedData())))
                .getAsJsonObject().get("size").getAsInt());
        assertEquals(2, run.getValue().spec().maxAttempts());
        assertEquals(FailureKind.INTERRUPTED, resumed.earlierErrors().get(0).kind());
        assertNull(resumed.error());
        verify(events).stateChanged(argThat(v -> v.jobId().equals(running) && v.state() == JobState.QUEUED),
                eq(JobState.INTERRUPTED));

        JobException notResumable = failure(m.resume(done));
        assertEquals(JobException.Reason.JOB_NOT_RESUMABLE, notResumable.reason());
        assertTrue(notResumable.getMessage().contains("is COMPLETED"), notResumable.getMessage());
    }

    @Test
    void resumeOnOpenQueuesInterruptedJobsOldestFirst() throws Exception {
        long t = System.currentTimeMillis();
        String second = leftBehind("job-0000000000b2", JobState.QUEUED, t + 2, 0);
        String first = leftBehind("job-0000000000b1", JobState.ACTIVE, t + 1, 0);
        Slots slots = slots(0);
        JobManager m = reopened(JobManager.Retention.UNLIMITED, true);
        assertEquals(new JobManager.Opened(2, 2, 2, 0), lastOpened);
        assertEquals(Set.of(first, second), Set.copyOf(idsIn(m, JobState.QUEUED)));
        assertEquals(Set.of(first), Set.copyOf(slots.offered), "the oldest is the head");
        freeWorker(m, slots);
        freeWorker(m, slots);
        assertEquals(List.of(first, second), slots.started());
    }

    @Test
    void anInterruptedJobWhoseInputsAreGoneFailsInsteadOfWaitingForever() throws Exception {
        String lost = leftBehind("job-00000000000d", JobState.ACTIVE, System.currentTimeMillis(), 0);
        Files.delete(files.scriptOf(lost));
        JobManager m = reopened(JobManager.Retention.UNLIMITED, true);
        Job v = await(m.get(lost));
        assertEquals(JobState.FAILED, v.state());
        assertTrue(v.error().message().contains("cannot be resumed"), v.error().message());
        verify(events).stateChanged(argThat(x -> x.jobId().equals(lost) && x.state() == JobState.FAILED),
                eq(JobState.ACTIVE));
    }

    @Test
    void retentionKeepsTheNewestFinishedJobsAndNeverALiveOne() throws Exception {
        JobManager m = new JobManager(loop, 20, null, new JobManager.Retention(2, java.time.Duration.ZERO));
        m.attach(pool, events);
        openEmpty(m);
        when(pool.tryRun(any(), any())).thenReturn(true);
        String running = submit(m, spec()).jobId();
        List<String> finished = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            String id = submit(m, spec()).jobId();
            onLoop(() -> m.attemptFinished(id, 1, succeeded()));
            finished.add(id);
        }
        assertEquals(List.of(running, finished.get(2), finished.get(3)), idsIn(m));
        verify(events).removed(finished.get(0), RemovalReason.RETENTION);
        verify(events).removed(finished.get(1), RemovalReason.RETENTION);
        verify(events, never()).removed(eq(running), any());
    }

    @Test
    void retentionDropsTheJobThatFinishedFirstNotTheOneAddedFirst() throws Exception {
        JobManager m = new JobManager(loop, 20, null, new JobManager.Retention(2, java.time.Duration.ZERO));
        m.attach(pool, events);
        openEmpty(m);
        when(pool.tryRun(any(), any())).thenReturn(true);
        String longRunning = submit(m, spec()).jobId();
        String quickA = submit(m, spec()).jobId();
        String quickB = submit(m, spec()).jobId();
        onLoop(() -> m.attemptFinished(quickA, 1, succeeded()));
        onLoop(() -> m.attemptFinished(quickB, 1, succeeded()));
        onLoop(() -> m.attemptFinished(longRunning, 1, succeeded()));
        assertEquals(List.of(longRunning, quickB), idsIn(m),
                "the job that just finished is kept; the one that finished first goes");
        verify(events).removed(quickA, RemovalReason.RETENTION);
    }

    @Test
    void retentionByAgePrunesOldJobsWhenTheStateDirectoryIsOpened() throws Exception {
        long now = System.currentTimeMillis();
        long fortyDaysAgo = now - java.time.Duration.ofDays(40).toMillis();
        String old = leftBehind("job-0000000000e1", JobState.COMPLETED, fortyDaysAgo, fortyDaysAgo + 5);
        String recent = leftBehind("job-0000000000e2", JobState.COMPLETED, now - 1000, now - 500);
        JobManager m = reopened(new JobManager.Retention(0, java.time.Duration.ofDays(30)), false);
        assertEquals(1, lastOpened.pruned());
        assertEquals(List.of(recent), idsIn(m));
        verify(events).removed(old, RemovalReason.RETENTION);
    }

    @Test
    void removeAcceptsAnInterruptedJob() throws Exception {
        String running = leftBehind("job-00000000000f", JobState.ACTIVE, System.currentTimeMillis(), 0);
        JobManager m = reopened(JobManager.Retention.UNLIMITED, false);
        assertEquals(running, await(m.remove(running)).job().jobId());
        verify(events).removed(running, RemovalReason.REMOVED);
    }

    @Test
    void formatSeconds() {
        assertEquals("5 s", JobManager.formatSeconds(5));
        assertEquals("0.2 s", JobManager.formatSeconds(0.2));
    }

    @Test
    void onlyTheLatestFinishedJobsKeepTheirWholeFailuresInTheTableTheRecordKeepsThemAll() throws Exception {
        when(pool.tryRun(any(), any())).thenReturn(true);
        String big = "x".repeat(50_000);
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < JobManager.DETAILED_FINAL_JOBS + 1; i++) {
            String id = submit(spec()).jobId();
            onLoop(() -> manager.attemptFinished(id, 1,
                    new AttemptOutcome.Failed(FailureKind.SCRIPT_ERROR, "ValueError: " + big, "Traceback: " + big, null)));
            ids.add(id);
        }
        JobManager.Inspection oldest = await(manager.inspect(ids.get(0)));
        assertTrue(oldest.detailsOnDisk());
        assertNull(oldest.job().error().traceback(), "the table keeps a summary of an old failure");
        assertTrue(oldest.job().error().message().length() <= JobFailure.SUMMARY_MESSAGE_CHARS + 4);
        JobManager.Inspection newest = await(manager.inspect(ids.get(ids.size() - 1)));
        assertFalse(newest.detailsOnDisk());
        assertEquals("Traceback: " + big, newest.job().error().traceback());
        // The record the store would have written (the state change carried the whole failure).
        ArgumentCaptor<Job> told = ArgumentCaptor.forClass(Job.class);
        verify(events, timeout(5000).atLeastOnce()).stateChanged(told.capture(), eq(JobState.ACTIVE));
        Job failed = told.getAllValues().stream().filter(j -> j.jobId().equals(ids.get(0))
                && j.state() == JobState.FAILED).findFirst().orElseThrow();
        assertEquals("Traceback: " + big, failed.error().traceback());
        files.writeRecord(failed);
        assertEquals("Traceback: " + big, files.withRecordedDetails(oldest.job()).error().traceback());
    }
}
