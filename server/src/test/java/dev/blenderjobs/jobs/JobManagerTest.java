package dev.blenderjobs.jobs;

import com.google.gson.JsonObject;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.workers.AttemptOutcome;
import dev.blenderjobs.workers.RunRequest;
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
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyDouble;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.ArgumentMatchers.argThat;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.ArgumentMatchers.isNull;
import static org.mockito.Mockito.after;
import static org.mockito.Mockito.atLeastOnce;
import static org.mockito.Mockito.inOrder;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
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
        events = mock(JobEvents.class);
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
        return new JobSpec(name, null, "print('hi')", timeout, new JsonObject(), null, null, null, maxAttempts,
                false, false, null);
    }

    private static JobSpec spec() {
        return spec(null, 0, 1);
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

    private JobView submit(JobSpec spec) throws Exception {
        return await(manager.submit(spec));
    }

    private JobView get(String id) throws Exception {
        return await(manager.get(id));
    }

    private static JobException failure(CompletableFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
        return assertInstanceOf(JobException.class, e.getCause());
    }

    private static AttemptOutcome.Succeeded succeeded(Path dataFile) {
        JsonObject timing = new JsonObject();
        timing.addProperty("scriptMs", 12);
        return new AttemptOutcome.Succeeded(dataFile, 42, null, timing, 1234);
    }

    private static AttemptOutcome.Failed scriptError(String message) {
        return new AttemptOutcome.Failed("SCRIPT_ERROR", message, "Traceback (most recent call last): ...", null);
    }

    private static void waitUntil(BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("condition not met within 5 s");
            Thread.sleep(10);
        }
    }

    private static JobView stateIs(JobState s) {
        return argThat(v -> v != null && v.state() == s);
    }

    // ------------------------------------------------------------------ submit and dispatch

    @Test
    void submitQueuesThenRunsOnAnIdleWorker() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        when(pool.pidOf(anyString())).thenReturn(4242L);
        JobView v = submit(spec("first", 0, 1));

        assertEquals(JobState.ACTIVE, v.state());
        assertEquals(1, v.attempt());
        assertEquals("first", v.name());
        assertEquals("<scriptText>", v.script());
        assertEquals(4242L, v.workerPid());
        assertTrue(v.startedAt() > 0);
        assertTrue(v.id().matches("job-[0-9a-f]{12}"), v.id());
        assertEquals(files.dirOf(v.id()), v.directory());
        assertEquals("print('hi')", Files.readString(files.dirOf(v.id()).resolve("script.py")));

        ArgumentCaptor<RunRequest> request = ArgumentCaptor.forClass(RunRequest.class);
        verify(pool).tryRun(request.capture());
        RunRequest r = request.getValue();
        assertEquals(v.id(), r.jobId());
        assertEquals(1, r.attempt());
        assertNull(r.scriptPath());
        assertEquals("print('hi')", r.scriptSource());
        assertEquals(files.workDirOf(v.id()), r.workDir());
        assertEquals(files.resultDirOf(v.id()), r.resultDir());
        assertFalse(r.freshProcess());

        InOrder order = inOrder(events);
        order.verify(events).stateChanged(stateIs(JobState.QUEUED), isNull());
        order.verify(events).stateChanged(stateIs(JobState.ACTIVE), eq(JobState.QUEUED));
        assertEquals(List.of(), await(manager.queuedIds()));
    }

    @Test
    void successCompletesTheJob() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec()).id();
        onLoop(() -> manager.progress(id, 1, 0.4, "almost half", 99L));
        verify(events).progress(id, 0.4, "almost half", 99L);
        assertEquals(0.4, get(id).progress());

        Path data = files.resultDirOf(id).resolve("python_data.json");
        onLoop(() -> manager.attemptFinished(id, 1, succeeded(data)));

        JobView v = get(id);
        assertEquals(JobState.COMPLETED, v.state());
        assertEquals(1.0, v.progress());
        assertEquals(data, v.pythonDataFile());
        assertEquals(42, v.pythonDataBytes());
        assertEquals(12, v.timing().get("scriptMs").getAsInt());
        assertNull(v.failure());
        assertTrue(v.finishedAt() >= v.startedAt());
        verify(events).stateChanged(argThat(j -> j.state() == JobState.COMPLETED && j.progress() == 1.0),
                eq(JobState.ACTIVE));
        assertEquals(v, await(manager.finished(id)), "finished() gives the completed job's view");
    }

    @Test
    void eventsForStaleAttemptsOrUnknownJobsAreIgnored() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec()).id();
        onLoop(() -> {
            manager.progress(id, 2, 0.9, "wrong attempt", 1L);
            manager.progress("job-unknown", 1, 0.9, null, 1L);
            manager.attemptFinished(id, 2, succeeded(Path.of("x")));
            manager.attemptFinished("job-unknown", 1, succeeded(Path.of("x")));
        });
        JobView v = get(id);
        assertEquals(JobState.ACTIVE, v.state());
        assertEquals(0.0, v.progress());
        verify(events, never()).progress(anyString(), anyDouble(), any(), anyLong());
    }

    @Test
    void failedAttemptIsRetriedUntilMaxAttempts() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec(null, 0, 2)).id();

        onLoop(() -> manager.attemptFinished(id, 1, scriptError("first boom")));
        // It went back to QUEUED with the failure, and was dispatched again at once.
        ArgumentCaptor<JobView> retried = ArgumentCaptor.forClass(JobView.class);
        verify(events).stateChanged(retried.capture(), eq(JobState.ACTIVE));
        assertEquals(JobState.QUEUED, retried.getValue().state());
        assertEquals(1, retried.getValue().earlierFailures().size());
        assertEquals("first boom", retried.getValue().earlierFailures().get(0).message());
        assertEquals(FailureKind.SCRIPT_ERROR, retried.getValue().failure().kind());

        ArgumentCaptor<RunRequest> requests = ArgumentCaptor.forClass(RunRequest.class);
        verify(pool, times(2)).tryRun(requests.capture());
        assertEquals(List.of(1, 2), requests.getAllValues().stream().map(RunRequest::attempt).toList());

        JobView second = get(id);
        assertEquals(JobState.ACTIVE, second.state());
        assertEquals(2, second.attempt());
        assertEquals(1, second.earlierFailures().size());

        // A late event of attempt 1 does not touch attempt 2.
        onLoop(() -> manager.attemptFinished(id, 1, succeeded(Path.of("stale"))));
        assertEquals(JobState.ACTIVE, get(id).state());

        onLoop(() -> manager.attemptFinished(id, 2, scriptError("second boom")));
        JobView failed = get(id);
        assertEquals(JobState.FAILED, failed.state());
        assertEquals(FailureKind.SCRIPT_ERROR, failed.failure().kind());
        assertEquals("second boom", failed.failure().message());
        assertEquals(2, failed.failure().attempt());
        assertEquals("Traceback (most recent call last): ...", failed.failure().traceback());
        assertEquals(1, failed.earlierFailures().size());
        assertTrue(failed.log().tail().contains("=== blender-jobs: attempt 2 of 2 ==="), failed.log().tail().toString());
        verify(events).stateChanged(stateIs(JobState.FAILED), eq(JobState.ACTIVE));
        verify(pool, times(2)).tryRun(any());
    }

    @Test
    void failureTailAndUnknownKind() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        JobView v = submit(spec());
        v.log().note("printed by the script");
        onLoop(() -> manager.attemptFinished(v.id(), 1,
                new AttemptOutcome.Failed("SOMETHING_NEW", "odd", null, null)));
        JobView failed = get(v.id());
        assertEquals(FailureKind.WORKER_ERROR, failed.failure().kind());
        assertEquals(List.of("printed by the script"), failed.failure().logTail());
    }

    @Test
    void jobStaysQueuedWhenNoWorkerIsFreeAndFifoOrderIsKept() throws Exception {
        when(pool.tryRun(any())).thenReturn(false);
        String a = submit(spec("a", 0, 1)).id();
        String b = submit(spec("b", 0, 1)).id();
        String c = submit(spec("c", 0, 1)).id();
        assertEquals(JobState.QUEUED, get(a).state());
        assertEquals(0, get(a).attempt(), "a refused dispatch is not an attempt");
        assertEquals(List.of(a, b, c), await(manager.queuedIds()));
        // Only the head of the queue is offered to the pool.
        verify(pool, never()).tryRun(argThat(r -> !r.jobId().equals(a)));

        when(pool.tryRun(any())).thenReturn(true, false);
        onLoop(manager::workerAvailable);
        assertEquals(JobState.ACTIVE, get(a).state());
        assertEquals(1, get(a).attempt());
        assertEquals(List.of(b, c), await(manager.queuedIds()));

        when(pool.tryRun(any())).thenReturn(true);
        onLoop(manager::workerAvailable);
        assertEquals(List.of(), await(manager.queuedIds()));
        assertEquals(JobState.ACTIVE, get(b).state());
        assertEquals(JobState.ACTIVE, get(c).state());

        ArgumentCaptor<RunRequest> requests = ArgumentCaptor.forClass(RunRequest.class);
        verify(pool, atLeastOnce()).tryRun(requests.capture());
        List<String> accepted = requests.getAllValues().stream().map(RunRequest::jobId).distinct().toList();
        assertEquals(List.of(a, b, c), accepted, "offered in FIFO order");
    }

    @Test
    void retryGoesToTheHeadOfTheQueue() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String first = submit(spec("first", 0, 2)).id();
        when(pool.tryRun(any())).thenReturn(false);
        String waiting = submit(spec("waiting", 0, 1)).id();
        onLoop(() -> manager.attemptFinished(first, 1, scriptError("boom")));
        assertEquals(List.of(first, waiting), await(manager.queuedIds()));
        assertEquals(JobState.QUEUED, get(first).state());
    }

    @Test
    void timeoutAbortsAndFailsWithTimedOut() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec(null, 0.2, 1)).id();
        verify(events, timeout(3000)).stateChanged(stateIs(JobState.FAILED), eq(JobState.ACTIVE));
        verify(pool).abort(id);
        JobView v = get(id);
        assertEquals(JobState.FAILED, v.state());
        assertEquals(FailureKind.TIMED_OUT, v.failure().kind());
        assertTrue(v.failure().message().contains("0.2 s"), v.failure().message());
        assertTrue(v.finishedAt() - v.startedAt() >= 150, "not before its timeout");
        // The pool then reports the killed attempt: it is ignored.
        onLoop(() -> manager.attemptFinished(id, 1, new AttemptOutcome.Failed("BLENDER_CRASHED", "killed", null, null)));
        assertEquals(FailureKind.TIMED_OUT, get(id).failure().kind());
    }

    @Test
    void timeoutWithRetriesLeftRequeues() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec(null, 0.2, 2)).id();
        verify(events, timeout(3000)).stateChanged(stateIs(JobState.QUEUED), eq(JobState.ACTIVE));
        verify(pool).abort(id);
        verify(events, timeout(3000)).stateChanged(stateIs(JobState.FAILED), eq(JobState.ACTIVE));
        JobView v = get(id);
        assertEquals(2, v.attempt());
        assertEquals(FailureKind.TIMED_OUT, v.earlierFailures().get(0).kind());
        assertEquals(FailureKind.TIMED_OUT, v.failure().kind());
    }

    @Test
    void successCancelsTheTimeout() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        // 1 s: room for the finish to reach the loop first even on a stalled machine.
        String id = submit(spec(null, 1.0, 1)).id();
        onLoop(() -> manager.attemptFinished(id, 1, succeeded(Path.of("d.json"))));
        verify(pool, after(1500).never()).abort(anyString());
        assertEquals(JobState.COMPLETED, get(id).state());
    }

    // ------------------------------------------------------------------ cancel

    @Test
    void cancelOfAQueuedJobDoesNotAbort() throws Exception {
        when(pool.tryRun(any())).thenReturn(false);
        String id = submit(spec()).id();
        Map.Entry<JobView, JobState> result = await(manager.cancel(id));
        assertEquals(JobState.CANCELED, result.getKey().state());
        assertEquals(JobState.QUEUED, result.getValue());
        assertTrue(result.getKey().finishedAt() > 0);
        verify(pool, never()).abort(anyString());
        assertEquals(List.of(), await(manager.queuedIds()));
        verify(events).stateChanged(stateIs(JobState.CANCELED), eq(JobState.QUEUED));
    }

    @Test
    void cancelOfAnActiveJobAbortsItsWorker() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec(null, 0, 3)).id();
        Map.Entry<JobView, JobState> result = await(manager.cancel(id));
        assertEquals(JobState.CANCELED, result.getKey().state());
        assertEquals(JobState.ACTIVE, result.getValue());
        verify(pool).abort(id);
        // The killed attempt's report does not bring it back (retries left or not).
        onLoop(() -> manager.attemptFinished(id, 1, new AttemptOutcome.Failed("BLENDER_CRASHED", "killed", null, null)));
        assertEquals(JobState.CANCELED, get(id).state());
        verify(pool, times(1)).tryRun(any());
    }

    @Test
    void cancelOfAFinishedJobChangesNothing() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec()).id();
        onLoop(() -> manager.attemptFinished(id, 1, succeeded(Path.of("d.json"))));
        Map.Entry<JobView, JobState> result = await(manager.cancel(id));
        assertEquals(JobState.COMPLETED, result.getKey().state());
        assertEquals(JobState.COMPLETED, result.getValue());
        verify(pool, never()).abort(anyString());
    }

    @Test
    void cancelAllCancelsQueuedAndActive() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String active = submit(spec()).id();
        when(pool.tryRun(any())).thenReturn(false);
        String queued = submit(spec()).id();
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
        when(pool.tryRun(any())).thenReturn(false);
        String queued = submit(spec()).id();
        JobException e = failure(manager.finished(queued));
        assertEquals(JobException.Reason.JOB_NOT_FINISHED, e.reason());
        assertEquals("QUEUED", ((JsonObject) e.data()).get("state").getAsString());

        when(pool.tryRun(any())).thenReturn(true);
        onLoop(manager::workerAvailable);
        assertEquals(JobException.Reason.JOB_NOT_FINISHED, failure(manager.finished(queued)).reason());
    }

    @Test
    void finishedOfFailedJobIsJobFailed() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec()).id();
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
        String id = submit(spec()).id();
        await(manager.cancel(id));
        assertEquals(JobException.Reason.JOB_CANCELED, failure(manager.finished(id)).reason());
    }

    // ------------------------------------------------------------------ remove

    @Test
    void removeOfAnActiveJobIsRefused() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String id = submit(spec()).id();
        JobException e = failure(manager.remove(id));
        assertEquals(JobException.Reason.JOB_NOT_REMOVABLE, e.reason());
        assertEquals(JobState.ACTIVE, get(id).state());
        assertTrue(Files.isDirectory(files.dirOf(id)));
    }

    @Test
    void removeOfAQueuedJobIsRefused() throws Exception {
        String id = submit(spec()).id();
        assertEquals(JobException.Reason.JOB_NOT_REMOVABLE, failure(manager.remove(id)).reason());
    }

    @Test
    void removeOfAFinishedJobForgetsItAndHasItsFilesDeleted() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        JobView v = submit(spec());
        v.log().note("some output");
        Path dir = files.dirOf(v.id());
        onLoop(() -> manager.attemptFinished(v.id(), 1, succeeded(files.resultDirOf(v.id()).resolve("p.json"))));
        assertTrue(Files.isDirectory(dir));
        assertTrue(Files.isRegularFile(files.logOf(v.id())));

        JobView removed = await(manager.remove(v.id()));
        assertEquals(v.id(), removed.id());
        assertEquals(JobState.COMPLETED, removed.state());
        verify(events).removed(v.id(), RemovalReason.REMOVED); // the job store deletes the directory (JobStoreTest)
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.get(v.id())).reason());
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.remove(v.id())).reason());
    }

    @Test
    void removeOfUnknownJobIsNotFound() {
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.remove("job-000000000000")).reason());
    }

    // ------------------------------------------------------------------ replaceExisting, list, stats

    @Test
    void replaceExistingCancelsAndForgetsJobsWithTheSameName() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String old = submit(spec("render", 0, 1)).id();
        String other = submit(spec("other", 0, 1)).id();
        JobSpec replacing = new JobSpec("render", null, "print(2)", 0, new JsonObject(), null, null, null, 1,
                false, true, null);
        String fresh = submit(replacing).id();
        verify(pool).abort(old);
        assertEquals(JobException.Reason.JOB_NOT_FOUND, failure(manager.get(old)).reason());
        assertEquals(JobState.ACTIVE, get(other).state());
        assertEquals(JobState.ACTIVE, get(fresh).state());
        verify(events).removed(old, RemovalReason.REPLACED); // the job store deletes its directory
    }

    @Test
    void listFiltersByState() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String active = submit(spec()).id();
        when(pool.tryRun(any())).thenReturn(false);
        String queued = submit(spec()).id();
        assertEquals(List.of(active, queued), await(manager.list(Set.of())).stream().map(JobView::id).toList());
        assertEquals(List.of(queued),
                await(manager.list(Set.of(JobState.QUEUED))).stream().map(JobView::id).toList());
    }

    @Test
    void statsCountJobsByState() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        when(pool.size()).thenReturn(2);
        when(pool.idleWorkers()).thenReturn(0);
        when(pool.busyWorkers()).thenReturn(2);
        String done = submit(spec()).id();
        submit(spec());
        when(pool.tryRun(any())).thenReturn(false);
        submit(spec());
        onLoop(() -> manager.attemptFinished(done, 1, succeeded(Path.of("x"))));
        JobManager.Stats s = await(manager.stats());
        assertEquals(1, s.queued());
        assertEquals(1, s.active());
        assertEquals(1, s.completed());
        assertEquals(3, s.total());
        assertEquals(2, s.workers());
        assertEquals(2, s.busyWorkers());
    }

    // ------------------------------------------------------------------ failures without workers

    @Test
    void submitWithoutBlenderIsBlenderUnavailable() throws Exception {
        JobManager noBlender = new JobManager(loop, 20, "No Blender executable found", JobManager.Retention.UNLIMITED);
        noBlender.attach(null, events);
        openEmpty(noBlender);
        JobException e = failure(noBlender.submit(spec()));
        assertEquals(JobException.Reason.BLENDER_UNAVAILABLE, e.reason());
        assertTrue(e.getMessage().contains("No Blender executable found"), e.getMessage());
        assertFalse(Files.exists(state.resolve("jobs")), "no job directory was made");
        verify(events, never()).stateChanged(any(), any());
    }

    @Test
    void workersFailingFailsEveryQueuedJob() throws Exception {
        when(pool.tryRun(any())).thenReturn(false);
        String a = submit(spec(null, 0, 3)).id();
        String b = submit(spec()).id();
        onLoop(() -> manager.workersFailing("blender: error while loading shared libraries"));
        for (String id : List.of(a, b)) {
            JobView v = get(id);
            assertEquals(JobState.FAILED, v.state());
            assertEquals(FailureKind.WORKER_START_FAILED, v.failure().kind());
            assertTrue(v.failure().message().contains("error while loading shared libraries"), v.failure().message());
            assertEquals(1, v.failure().attempt());
        }
        assertEquals(List.of(), await(manager.queuedIds()));
        verify(events, times(2)).stateChanged(stateIs(JobState.FAILED), eq(JobState.QUEUED));
    }

    @Test
    void workersFailingLeavesActiveJobsAlone() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String active = submit(spec()).id();
        onLoop(() -> manager.workersFailing("no start"));
        assertEquals(JobState.ACTIVE, get(active).state());
    }

    // ------------------------------------------------------------------ shutdown

    @Test
    void shutdownInterruptsJobsAndRefusesNewOnes() throws Exception {
        when(pool.tryRun(any())).thenReturn(true);
        String active = submit(spec()).id();
        when(pool.tryRun(any())).thenReturn(false);
        String queued = submit(spec()).id();
        assertEquals(2, await(manager.shutdown("the client sent shutdown")));
        verify(pool).abort(active);
        for (String id : List.of(active, queued)) {
            JobView v = get(id);
            assertEquals(JobState.INTERRUPTED, v.state());
            assertEquals(FailureKind.INTERRUPTED, v.failure().kind());
            assertTrue(v.failure().message().contains("the client sent shutdown"), v.failure().message());
        }
        assertTrue(get(active).failure().message().contains("while attempt 1 was running"));
        assertTrue(get(queued).failure().message().contains("waiting in the queue"));
        verify(events).stateChanged(stateIs(JobState.INTERRUPTED), eq(JobState.ACTIVE));
        verify(events).stateChanged(stateIs(JobState.INTERRUPTED), eq(JobState.QUEUED));
        assertEquals(JobException.Reason.JOB_INTERRUPTED, failure(manager.finished(active)).reason());

        JobException e = failure(manager.submit(spec()));
        assertEquals(JobException.Reason.SHUTTING_DOWN, e.reason());
        // The refused job's directory is cleaned up.
        waitUntil(() -> {
            try (var dirs = Files.list(state.resolve("jobs"))) {
                return dirs.count() == 2;
            } catch (java.io.IOException ex) {
                return false;
            }
        });
    }

    // ------------------------------------------------------------------ recovery, resume, retention

    /** Writes a job into the state directory as an earlier server would have left it. */
    private String leftBehind(String id, JobState state, long createdAt, long finishedAt) throws Exception {
        JsonObject passed = new JsonObject();
        passed.addProperty("size", 3);
        JobSpec spec = new JobSpec("earlier-" + state, null, "python_data = {'size': size}", 0, passed, null, null,
                null, 2, false, false, null);
        files.prepare(id, spec, createdAt);
        JobRecord queued = JobRecord.queued(id, spec, createdAt);
        Long bytes = null;
        if (state == JobState.COMPLETED) {
            Files.writeString(files.pythonDataOf(id), "{\"size\":3}");
            bytes = 10L;
        }
        files.writeRecord(new JobRecord(JobRecord.FORMAT, id, queued.name(), queued.script(), state, 0.5, null,
                state == JobState.QUEUED ? 0 : 1, 2, 0, createdAt, createdAt + 1, finishedAt, null, List.of(), bytes,
                null, null));
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
        assertEquals(List.of(done, running, waiting), await(m.list(Set.of())).stream().map(JobView::id).toList());
        JobView completed = await(m.finished(done));
        assertEquals(files.pythonDataOf(done), completed.pythonDataFile());
        JobView interrupted = await(m.get(running));
        assertEquals(JobState.INTERRUPTED, interrupted.state());
        assertEquals(FailureKind.INTERRUPTED, interrupted.failure().kind());
        assertTrue(interrupted.failure().message().contains("stopped unexpectedly"), interrupted.failure().message());
        assertTrue(interrupted.failure().message().contains("while attempt 1 was running"));
        assertEquals(JobException.Reason.JOB_INTERRUPTED, failure(m.finished(running)).reason());
        verify(events).stateChanged(argThat(v -> v.id().equals(running) && v.state() == JobState.INTERRUPTED),
                eq(JobState.ACTIVE));
        verify(events).stateChanged(argThat(v -> v.id().equals(waiting) && v.state() == JobState.INTERRUPTED),
                eq(JobState.QUEUED));
        verify(pool, never()).tryRun(any());
    }

    @Test
    void resumeQueuesAnInterruptedJobWithItsOwnInputsAndAFreshAttemptBudget() throws Exception {
        long t = System.currentTimeMillis();
        String done = leftBehind("job-00000000000a", JobState.COMPLETED, t, t + 5);
        String running = leftBehind("job-00000000000b", JobState.ACTIVE, t + 1, 0);
        JobManager m = reopened(JobManager.Retention.UNLIMITED, false);
        when(pool.tryRun(any())).thenReturn(true);

        JobView resumed = await(m.resume(running));
        assertEquals(JobState.ACTIVE, resumed.state());
        ArgumentCaptor<RunRequest> run = ArgumentCaptor.forClass(RunRequest.class);
        verify(pool).tryRun(run.capture());
        assertEquals(running, run.getValue().jobId());
        assertEquals(1, run.getValue().attempt());
        assertEquals("python_data = {'size': size}", run.getValue().scriptSource());
        assertEquals(3, run.getValue().passedData().get("size").getAsInt());
        assertEquals(FailureKind.INTERRUPTED, resumed.earlierFailures().get(0).kind());
        assertNull(resumed.failure());
        verify(events).stateChanged(argThat(v -> v.id().equals(running) && v.state() == JobState.QUEUED),
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
        when(pool.tryRun(any())).thenReturn(false);
        JobManager m = reopened(JobManager.Retention.UNLIMITED, true);
        assertEquals(new JobManager.Opened(2, 2, 2, 0), lastOpened);
        assertEquals(List.of(first, second), await(m.queuedIds()));
    }

    @Test
    void anInterruptedJobWhoseInputsAreGoneFailsInsteadOfWaitingForever() throws Exception {
        String lost = leftBehind("job-00000000000d", JobState.ACTIVE, System.currentTimeMillis(), 0);
        Files.delete(files.dirOf(lost).resolve("script.py"));
        JobManager m = reopened(JobManager.Retention.UNLIMITED, true);
        JobView v = await(m.get(lost));
        assertEquals(JobState.FAILED, v.state());
        assertTrue(v.failure().message().contains("cannot be resumed"), v.failure().message());
        verify(events).stateChanged(argThat(x -> x.id().equals(lost) && x.state() == JobState.FAILED), eq(JobState.ACTIVE));
    }

    @Test
    void retentionKeepsTheNewestFinishedJobsAndNeverALiveOne() throws Exception {
        JobManager m = new JobManager(loop, 20, null, new JobManager.Retention(2, java.time.Duration.ZERO));
        m.attach(pool, events);
        openEmpty(m);
        when(pool.tryRun(any())).thenReturn(true);
        String running = await(m.submit(spec())).id();
        List<String> finished = new java.util.ArrayList<>();
        for (int i = 0; i < 4; i++) {
            String id = await(m.submit(spec())).id();
            onLoop(() -> m.attemptFinished(id, 1, succeeded(Path.of("x"))));
            finished.add(id);
        }
        assertEquals(List.of(running, finished.get(2), finished.get(3)),
                await(m.list(Set.of())).stream().map(JobView::id).toList());
        verify(events).removed(finished.get(0), RemovalReason.RETENTION);
        verify(events).removed(finished.get(1), RemovalReason.RETENTION);
        verify(events, never()).removed(eq(running), any());
    }

    @Test
    void retentionDropsTheJobThatFinishedFirstNotTheOneAddedFirst() throws Exception {
        JobManager m = new JobManager(loop, 20, null, new JobManager.Retention(2, java.time.Duration.ZERO));
        m.attach(pool, events);
        openEmpty(m);
        when(pool.tryRun(any())).thenReturn(true);
        String longRunning = await(m.submit(spec())).id();
        String quickA = await(m.submit(spec())).id();
        String quickB = await(m.submit(spec())).id();
        onLoop(() -> m.attemptFinished(quickA, 1, succeeded(Path.of("x"))));
        onLoop(() -> m.attemptFinished(quickB, 1, succeeded(Path.of("x"))));
        onLoop(() -> m.attemptFinished(longRunning, 1, succeeded(Path.of("x"))));
        assertEquals(List.of(longRunning, quickB), await(m.list(Set.of())).stream().map(JobView::id).toList(),
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
        assertEquals(List.of(recent), await(m.list(Set.of())).stream().map(JobView::id).toList());
        verify(events).removed(old, RemovalReason.RETENTION);
    }

    @Test
    void removeAcceptsAnInterruptedJob() throws Exception {
        String running = leftBehind("job-00000000000f", JobState.ACTIVE, System.currentTimeMillis(), 0);
        JobManager m = reopened(JobManager.Retention.UNLIMITED, false);
        assertEquals(running, await(m.remove(running)).id());
        verify(events).removed(running, RemovalReason.REMOVED);
    }

    @Test
    void formatSeconds() {
        assertEquals("5 s", JobManager.formatSeconds(5));
        assertEquals("0.2 s", JobManager.formatSeconds(0.2));
    }
}
