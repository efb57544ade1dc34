package dev.blenderjobs.wire;

import com.google.gson.JsonPrimitive;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobFailure;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.RemovalReason;
import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.JobRemovedParams;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;
import dev.blenderjobs.wire.messages.Messages.ShowMessageParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressValue;
import dev.blenderjobs.wire.messages.Messages.AddJobResult;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressCreateParams;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.mockito.ArgumentCaptor;
import org.mockito.InOrder;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.PriorityQueue;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Delayed;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.argThat;
import static org.mockito.Mockito.atLeast;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.doThrow;
import static org.mockito.Mockito.inOrder;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.timeout;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

/**
 * The notifier runs on a {@link ManualScheduler}: its tasks run on the test's thread as they are
 * submitted, and time moves only when the test says so, so "at once", "after the interval" and
 * "never" are exact rather than guessed with sleeps.
 */
@Timeout(5)
class ClientNotifierTest {
    private static final Duration INTERVAL = Duration.ofMillis(50);

    private ManualScheduler scheduler;
    private JobClient client;
    private ClientNotifier notifier;

    @BeforeEach
    void setUp() {
        scheduler = new ManualScheduler();
        client = mock(JobClient.class);
        notifier = notifier(INTERVAL, new WorkDoneTokens());
        notifier.connect(client);
    }

    @AfterEach
    void tearDown() {
        notifier.close();
    }

    private ClientNotifier notifier(Duration interval, WorkDoneTokens tokens) {
        return new ClientNotifier(interval, tokens, scheduler, scheduler::nanoTime);
    }

    private static Job job(String id, JobState state, JobFailure error) {
        JobSpec spec = new JobSpec("name-" + id, null, 0, 1, JobSpec.Isolation.WORKER, 0, null, null);
        return new Job(id, spec, state, 0, null, 1, 1L, 0, 0, error, List.of(), -1, null);
    }

    private static JobProgressParams progressOf(String jobId, double value) {
        return argThat(p -> p != null && p.jobId().equals(jobId) && p.progress() == value);
    }

    @Test
    void aJobsNotificationsWaitForItsAddJobAnswerAndKeepTheirOrder() {
        // The intake completes addJob's answer while the loop queues the job: the job's
        // notifications may come first, and wait here until the answer is written.
        notifier.holdUntilAnswered("job-h");
        notifier.stateChanged(job("job-h", JobState.QUEUED, null), null);
        notifier.progress("job-h", 0.5, "half", 1);
        notifier.stateChanged(job("job-h", JobState.COMPLETED, null), JobState.ACTIVE);
        notifier.stateChanged(job("job-o", JobState.QUEUED, null), null); // another job: not held
        ArgumentCaptor<JobStateChangedParams> before = ArgumentCaptor.forClass(JobStateChangedParams.class);
        verify(client, times(1)).stateChanged(before.capture());
        assertEquals("job-o", before.getValue().jobId());
        verify(client, never()).progress(any());

        notifier.answered(new AddJobResult("job-h", null, "QUEUED", 0));

        InOrder order = inOrder(client);
        order.verify(client).stateChanged(argThat(p -> p.jobId().equals("job-h") && p.state().equals("QUEUED")));
        order.verify(client).progress(argThat(p -> p.jobId().equals("job-h")));
        order.verify(client).stateChanged(argThat(p -> p.jobId().equals("job-h") && p.state().equals("COMPLETED")));
        notifier.removed("job-h", RemovalReason.REMOVED); // after the answer: at once
        verify(client).jobRemoved(argThat(p -> p.jobId().equals("job-h")));
    }

    @Test
    void progressOfAHeldJobIsKeptAsItsLatestReportNotOneEntryEach() {
        // Held for as long as the client does not read its answer: what waits must stay small.
        notifier.holdUntilAnswered("job-p");
        notifier.stateChanged(job("job-p", JobState.QUEUED, null), null);
        notifier.stateChanged(job("job-p", JobState.ACTIVE, null), JobState.QUEUED);
        for (int i = 1; i <= 1000; i++) notifier.progress("job-p", i / 1000.0, "step " + i, i);
        notifier.answered(new AddJobResult("job-p", null, "QUEUED", 0));
        ArgumentCaptor<JobProgressParams> sent = ArgumentCaptor.forClass(JobProgressParams.class);
        verify(client, times(1)).progress(sent.capture());
        assertEquals("step 1000", sent.getValue().message(), "the latest report, once");
        verify(client, times(2)).stateChanged(any());
    }

    @Test
    void anAnswerThatIsNeverWrittenReleasesTheJobsNotifications() {
        notifier.holdUntilAnswered("job-x");
        notifier.stateChanged(job("job-x", JobState.QUEUED, null), null);
        verify(client, never()).stateChanged(any());
        notifier.answerWritten("job-x"); // what the endpoint does when the answer failed or was cancelled
        verify(client).stateChanged(argThat(p -> p.jobId().equals("job-x")));
        // Released once: later notifications go at once, and an answer after that changes nothing.
        notifier.answered(new AddJobResult("job-x", null, "QUEUED", 0));
        notifier.stateChanged(job("job-x", JobState.ACTIVE, null), JobState.QUEUED);
        verify(client, times(2)).stateChanged(any());
    }

    @Test
    void firstProgressOfAJobIsSentAtOnce() {
        notifier.progress("job-a", 0.25, "a quarter", 1234L);
        // No time has passed: it did not wait for a coalescing timer.
        verify(client).progress(new JobProgressParams("job-a", 0.25, "a quarter", 1234L));
        assertEquals(0, scheduler.timers(), "nothing was left for a timer");
    }

    @Test
    void burstIsCoalescedAndTheLastValueIsDelivered() {
        List<Long> sentAt = new ArrayList<>();
        doAnswer(inv -> sentAt.add(scheduler.nanoTime())).when(client).progress(any());
        // 1,000 reports over 200 ms (one every 0.2 ms): 4 intervals.
        for (int i = 1; i <= 1000; i++) {
            notifier.progress("job-a", i / 1000.0, "step " + i, i);
            scheduler.advance(Duration.ofNanos(200_000));
        }
        scheduler.advance(INTERVAL);
        verify(client).progress(new JobProgressParams("job-a", 1.0, "step 1000", 1000));
        scheduler.advance(Duration.ofSeconds(10));
        ArgumentCaptor<JobProgressParams> sent = ArgumentCaptor.forClass(JobProgressParams.class);
        verify(client, atLeast(1)).progress(sent.capture());
        List<JobProgressParams> values = sent.getAllValues();
        assertTrue(values.size() <= 10, "1,000 reports in a burst gave " + values.size() + " notifications");
        assertTrue(values.size() >= 2, values.toString());
        assertEquals(0.001, values.get(0).progress(), "the first report goes out at once");
        assertEquals(1.0, values.get(values.size() - 1).progress(), "the last report is the last one sent");
        for (int i = 1; i < values.size(); i++) {
            assertTrue(values.get(i).progress() > values.get(i - 1).progress(), "sent in order: " + values);
            assertTrue(sentAt.get(i) - sentAt.get(i - 1) >= INTERVAL.toNanos(),
                    "at most one notification per interval: " + sentAt);
        }
    }

    @Test
    void closeDeliversTheLastPendingValue() {
        notifier.progress("job-a", 0.1, null, 1);
        notifier.progress("job-a", 0.2, null, 2);
        notifier.progress("job-a", 0.3, null, 3);
        notifier.close(); // before the interval has passed
        InOrder order = inOrder(client);
        order.verify(client).progress(progressOf("job-a", 0.1));
        order.verify(client).progress(progressOf("job-a", 0.3));
        verify(client, never()).progress(progressOf("job-a", 0.2));
        assertTrue(scheduler.isShutdown());
    }

    @Test
    void stateChangeDeliversPendingProgressFirst() {
        notifier.progress("job-a", 0.1, null, 1);
        notifier.progress("job-a", 0.9, "almost", 2); // pending: the interval has not passed
        verify(client, never()).progress(progressOf("job-a", 0.9));
        notifier.stateChanged(job("job-a", JobState.COMPLETED, null), JobState.ACTIVE);

        // All three, with no time passed: the state change did not wait for the timer.
        InOrder order = inOrder(client);
        order.verify(client).progress(progressOf("job-a", 0.1));
        order.verify(client).progress(progressOf("job-a", 0.9));
        order.verify(client).stateChanged(argThat(p -> p.jobId().equals("job-a")
                && p.state().equals("COMPLETED") && p.previousState().equals("ACTIVE")));
        // The timer that would have sent 0.9 finds nothing left to send.
        scheduler.advance(INTERVAL);
        verify(client, times(1)).progress(progressOf("job-a", 0.9));
    }

    @Test
    void stateChangeCarriesTheJobsFields() {
        JobFailure failure = new JobFailure(FailureKind.SCRIPT_ERROR, "boom", 1, "Traceback...", null, List.of("x"));
        notifier.stateChanged(job("job-f", JobState.FAILED, failure), JobState.ACTIVE);
        ArgumentCaptor<JobStateChangedParams> sent = ArgumentCaptor.forClass(JobStateChangedParams.class);
        verify(client).stateChanged(sent.capture());
        JobStateChangedParams p = sent.getValue();
        assertEquals("job-f", p.jobId());
        assertEquals("name-job-f", p.name());
        assertEquals("FAILED", p.state());
        assertEquals("ACTIVE", p.previousState());
        assertEquals(1, p.attempt());
        assertEquals(FailureKind.SCRIPT_ERROR, p.error().kind());
        assertEquals("boom", p.error().message());
    }

    @Test
    void firstStateChangeHasNoPreviousStateAndNoError() {
        notifier.stateChanged(job("job-q", JobState.QUEUED, null), null);
        ArgumentCaptor<JobStateChangedParams> sent = ArgumentCaptor.forClass(JobStateChangedParams.class);
        verify(client).stateChanged(sent.capture());
        assertNull(sent.getValue().previousState());
        assertNull(sent.getValue().error());
    }

    @Test
    void jobsAreCoalescedIndependently() {
        notifier.progress("job-a", 0.1, null, 1);
        notifier.progress("job-a", 0.2, null, 2); // pending for job-a
        notifier.progress("job-b", 0.5, null, 3); // job-b's first report is not held back by job-a
        verify(client).progress(progressOf("job-a", 0.1));
        verify(client).progress(progressOf("job-b", 0.5));
        verify(client, never()).progress(progressOf("job-a", 0.2));
        scheduler.advance(INTERVAL.minusNanos(1));
        verify(client, never()).progress(progressOf("job-a", 0.2));
        scheduler.advance(Duration.ofNanos(1));
        verify(client).progress(progressOf("job-a", 0.2));
    }

    @Test
    void burstsOfTwoJobsBothDeliverTheirLastValues() {
        for (int i = 1; i <= 500; i++) {
            notifier.progress("job-a", i / 500.0, null, i);
            notifier.progress("job-b", i / 1000.0, null, i);
        }
        scheduler.advance(INTERVAL);
        verify(client).progress(progressOf("job-a", 1.0));
        verify(client).progress(progressOf("job-b", 0.5));
        verify(client).progress(progressOf("job-a", 1 / 500.0));
        verify(client).progress(progressOf("job-b", 1 / 1000.0));
        verify(client, times(4)).progress(any());
    }

    @Test
    void progressAfterAQuietIntervalIsSentAtOnce() {
        ClientNotifier n = notifier(Duration.ofMillis(1000), new WorkDoneTokens());
        JobClient other = mock(JobClient.class);
        n.connect(other);
        try {
            n.progress("job-a", 0.1, null, 1);
            verify(other).progress(progressOf("job-a", 0.1));
            scheduler.advance(Duration.ofMillis(1000));
            n.progress("job-a", 0.2, null, 2);
            // Sent without waiting another 1 s interval.
            verify(other).progress(progressOf("job-a", 0.2));
        } finally {
            n.close();
        }
    }

    @Test
    void aRemovedJobIsAnnouncedWithItsReasonAfterItsLastState() {
        notifier.stateChanged(job("job-r", JobState.COMPLETED, null), JobState.ACTIVE);
        notifier.removed("job-r", RemovalReason.RETENTION);
        InOrder order = inOrder(client);
        order.verify(client).stateChanged(argThat(p -> p.jobId().equals("job-r")));
        order.verify(client).jobRemoved(new JobRemovedParams("job-r", "RETENTION"));
    }

    @Test
    void unsavedRecordsAndTheirRecoveryReachTheUserAsShowMessage() {
        notifier.recordsNotSaved("Could not save the state of job job-a");
        notifier.recordsSavedAgain("saved again");
        InOrder order = inOrder(client);
        order.verify(client).showMessage(new ShowMessageParams(ShowMessageParams.WARNING,
                "Could not save the state of job job-a", "RECORDS_NOT_SAVED"));
        order.verify(client).showMessage(new ShowMessageParams(ShowMessageParams.INFO,
                "saved again", "RECORDS_SAVED_AGAIN"));
    }

    @Test
    void aFailingClientDoesNotStopLaterNotifications() {
        doThrow(new RuntimeException("connection lost")).when(client).progress(progressOf("job-a", 0.1));
        notifier.progress("job-a", 0.1, null, 1);
        notifier.stateChanged(job("job-a", JobState.CANCELED, null), JobState.ACTIVE);
        verify(client).stateChanged(any());
    }

    @Test
    void nothingIsSentBeforeAClientConnects() {
        ClientNotifier unconnected = notifier(INTERVAL, new WorkDoneTokens());
        unconnected.progress("job-a", 0.5, null, 1);
        unconnected.stateChanged(job("job-a", JobState.QUEUED, null), null);
        unconnected.close(); // must not throw
        JobClient late = mock(JobClient.class);
        unconnected.connect(late);
        verify(late, never()).progress(any());
        verify(late, never()).stateChanged(any());
    }

    @Test
    void heldNotificationsWaitForOpenAndKeepTheirOrder() {
        ClientNotifier n = notifier(INTERVAL, new WorkDoneTokens());
        JobClient other = mock(JobClient.class);
        n.connect(other);
        n.hold();
        n.stateChanged(job("job-h", JobState.QUEUED, null), null);
        n.progress("job-h", 0.5, null, 1);
        verify(other, never()).stateChanged(any());
        verify(other, never()).progress(any());
        n.open();
        InOrder order = inOrder(other);
        order.verify(other).stateChanged(argThat(p -> p.jobId().equals("job-h")));
        order.verify(other).progress(progressOf("job-h", 0.5));
        n.close();
    }

    // ------------------------------------------------------------------ LSP work-done progress

    /** A client whose answers to window/workDoneProgress/create the test gives by hand. */
    private JobClient clientWithCreateAnswer(CompletableFuture<Void> answer) {
        JobClient c = mock(JobClient.class);
        when(c.createWorkDoneProgress(any())).thenReturn(answer);
        return c;
    }

    private static List<WorkDoneProgressValue> progressValues(JobClient c, int times, JsonPrimitive token) {
        ArgumentCaptor<WorkDoneProgressParams> sent = ArgumentCaptor.forClass(WorkDoneProgressParams.class);
        verify(c, times(times)).workDoneProgress(sent.capture());
        assertTrue(sent.getAllValues().stream().allMatch(p -> p.token().equals(token)), sent.getAllValues().toString());
        return sent.getAllValues().stream().map(WorkDoneProgressParams::value).toList();
    }

    @Test
    void aServerTokenIsCreatedAfterTheAddJobAnswerAndReportsBeginReportEndOnceTheClientAnswered() {
        WorkDoneTokens tokens = new WorkDoneTokens();
        ClientNotifier n = notifier(INTERVAL, tokens);
        CompletableFuture<Void> answer = new CompletableFuture<>();
        JobClient other = clientWithCreateAnswer(answer);
        n.connect(other);
        tokens.open("job-w");
        JsonPrimitive token = new JsonPrimitive("blender-jobs/job-w");

        n.stateChanged(job("job-w", JobState.QUEUED, null), null);
        n.stateChanged(job("job-w", JobState.ACTIVE, null), JobState.QUEUED);
        verify(other, never()).createWorkDoneProgress(any()); // not before the addJob answer
        n.answered(new AddJobResult("job-w", "name-job-w", "ACTIVE", 1));
        verify(other).createWorkDoneProgress(new WorkDoneProgressCreateParams(token));
        n.progress("job-w", 0.2, "early", 1);
        verify(other, never()).workDoneProgress(any()); // not before the client answered

        answer.complete(null);
        n.progress("job-w", 0.42, "rendering", 2);
        JobFailure failure = new JobFailure(FailureKind.SCRIPT_ERROR, "boom", 1, null, null, List.of());
        n.stateChanged(job("job-w", JobState.FAILED, failure), JobState.ACTIVE);

        List<WorkDoneProgressValue> values = progressValues(other, 4, token);
        assertEquals(new WorkDoneProgressValue("begin", "Blender job name-job-w", true, null, 0), values.get(0));
        assertEquals(new WorkDoneProgressValue("report", null, null, "early", 20), values.get(1),
                "the latest report before the answer follows the begin");
        assertEquals(new WorkDoneProgressValue("report", null, null, "rendering", 42), values.get(2));
        assertEquals(new WorkDoneProgressValue("end", null, null, "failed: boom", null), values.get(3));
        assertFalse(tokens.isOpen("job-w"), "the token is done once its progress ended");
        assertNull(tokens.jobOf(token), "a cancel on an ended token cancels nothing");
        n.close();
    }

    @Test
    void aJobThatRestedBeforeTheClientAnsweredGetsBeginAndEndAtOnce() {
        WorkDoneTokens tokens = new WorkDoneTokens();
        ClientNotifier n = notifier(INTERVAL, tokens);
        CompletableFuture<Void> answer = new CompletableFuture<>();
        JobClient other = clientWithCreateAnswer(answer);
        n.connect(other);
        tokens.open("job-q");
        // A fast job: all its states before the addJob answer was even written.
        n.stateChanged(job("job-q", JobState.QUEUED, null), null);
        n.stateChanged(job("job-q", JobState.ACTIVE, null), JobState.QUEUED);
        n.stateChanged(job("job-q", JobState.COMPLETED, null), JobState.ACTIVE);
        assertTrue(tokens.isOpen("job-q"), "still waiting for the addJob answer");
        n.answered(new AddJobResult("job-q", null, "QUEUED", 0));
        verify(other, never()).workDoneProgress(any());
        answer.complete(null);
        List<WorkDoneProgressValue> values = progressValues(other, 2, new JsonPrimitive("blender-jobs/job-q"));
        assertEquals(new WorkDoneProgressValue("begin", "Blender job name-job-q", true, null, 0), values.get(0));
        assertEquals(new WorkDoneProgressValue("end", null, null, "completed", null), values.get(1));
        assertFalse(tokens.isOpen("job-q"));
        n.close();
    }

    @Test
    void aClientThatRefusesTheTokenGetsNoProgressOnIt() {
        WorkDoneTokens tokens = new WorkDoneTokens();
        ClientNotifier n = notifier(INTERVAL, tokens);
        CompletableFuture<Void> answer = new CompletableFuture<>();
        JobClient other = clientWithCreateAnswer(answer);
        n.connect(other);
        tokens.open("job-r");
        n.stateChanged(job("job-r", JobState.QUEUED, null), null);
        n.answered(new AddJobResult("job-r", null, "QUEUED", 0));
        answer.completeExceptionally(new RuntimeException("no thanks"));
        n.stateChanged(job("job-r", JobState.ACTIVE, null), JobState.QUEUED);
        n.progress("job-r", 0.5, null, 1);
        n.stateChanged(job("job-r", JobState.COMPLETED, null), JobState.ACTIVE);
        verify(other, never()).workDoneProgress(any());
        verify(other, times(3)).stateChanged(any()); // the job's own notifications go on
        assertFalse(tokens.isOpen("job-r"));
        n.close();
    }

    @Test
    void jobsAddedWithoutWorkDoneProgressGetNoCreateRequest() {
        notifier.answered(new AddJobResult("job-plain", null, "QUEUED", 0));
        notifier.stateChanged(job("job-plain", JobState.COMPLETED, null), JobState.ACTIVE);
        verify(client, never()).createWorkDoneProgress(any());
        verify(client, never()).workDoneProgress(any());
    }

    @Test
    void theTitleNamesTheJobOrItsId() {
        assertEquals("Blender job render", WorkDoneReporter.title("job-1", "render"));
        assertEquals("Blender job job-1", WorkDoneReporter.title("job-1", null));
    }

    @Test
    void progressOnAClientTokenIsSentInOrderAndItsFutureCompletesOnceWritten() throws Exception {
        JsonPrimitive token = new JsonPrimitive("tok-1");
        CompletableFuture<Void> begun = notifier.clientProgress(token, new WorkDoneProgressValue("begin", "Adding", false, null, null));
        CompletableFuture<Void> ended = notifier.clientProgress(token, new WorkDoneProgressValue("end", null, null, "queued as job-x", null));
        assertTrue(begun.isDone() && ended.isDone());
        InOrder order = inOrder(client);
        order.verify(client).workDoneProgress(new WorkDoneProgressParams(token, new WorkDoneProgressValue("begin", "Adding", false, null, null)));
        order.verify(client).workDoneProgress(new WorkDoneProgressParams(token, new WorkDoneProgressValue("end", null, null, "queued as job-x", null)));
    }

    @Test
    void aClientTokensFutureCompletesWhenTheNotifierIsClosed() {
        notifier.close();
        assertTrue(notifier.clientProgress(new JsonPrimitive(1), new WorkDoneProgressValue("end", null, null, "x", null)).isDone(),
                "an addJob waiting for its end is never left hanging by a stopping server");
    }

    @Test
    void theProductionSenderIsAThreadOfItsOwn() throws Exception {
        // The public constructor's own thread: notifications leave the caller's thread, in order.
        ClientNotifier threaded = new ClientNotifier(INTERVAL);
        JobClient other = mock(JobClient.class);
        CompletableFuture<Thread> sentOn = new CompletableFuture<>();
        doAnswer(inv -> sentOn.complete(Thread.currentThread())).when(other).stateChanged(any());
        threaded.connect(other);
        try {
            threaded.progress("job-t", 0.1, null, 1);
            threaded.stateChanged(job("job-t", JobState.COMPLETED, null), JobState.ACTIVE);
            Thread sender = sentOn.get(4, TimeUnit.SECONDS);
            assertNotEquals(Thread.currentThread(), sender);
            assertEquals("client-notifier", sender.getName());
            InOrder order = inOrder(other);
            order.verify(other, timeout(1000)).progress(progressOf("job-t", 0.1));
            order.verify(other, timeout(1000)).stateChanged(any());
        } finally {
            threaded.close();
        }
    }

    /**
     * A {@link ScheduledExecutorService} for tests, driven by hand: submitted tasks run on the
     * caller's thread, one at a time and in order (as on a single sender thread); timers run
     * when {@link #advance} moves the clock past them. Not thread-safe: one test thread only.
     */
    static final class ManualScheduler extends AbstractExecutorService implements ScheduledExecutorService {
        private long now = 1_000_000_000L; // not 0: a clock value of 0 means nothing special
        private long sequence;
        private final java.util.ArrayDeque<Runnable> ready = new java.util.ArrayDeque<>();
        private final PriorityQueue<Timer> timers = new PriorityQueue<>(
                Comparator.comparingLong((Timer t) -> t.due).thenComparingLong(t -> t.sequence));
        private boolean running;
        private boolean shutdown;

        long nanoTime() {
            return now;
        }

        /** Timers still waiting (cancelled ones excluded). */
        int timers() {
            return (int) timers.stream().filter(t -> !t.isCancelled()).count();
        }

        /** Moves the clock forward, running every timer that falls due, in order. */
        void advance(Duration d) {
            long until = now + d.toNanos();
            while (!timers.isEmpty() && timers.peek().due <= until) {
                Timer t = timers.poll();
                now = Math.max(now, t.due);
                if (!t.isCancelled()) {
                    ready.add(t::fire);
                    runReady();
                }
            }
            now = until;
        }

        @Override
        public void execute(Runnable command) {
            if (shutdown) throw new RejectedExecutionException("shut down");
            ready.add(command);
            runReady();
        }

        private void runReady() {
            if (running) return; // a task that submits another: it runs after this one, as on one thread
            running = true;
            try {
                Runnable next;
                while ((next = ready.poll()) != null) next.run();
            } finally {
                running = false;
            }
        }

        @Override
        public ScheduledFuture<?> schedule(Runnable command, long delay, TimeUnit unit) {
            return schedule(() -> {
                command.run();
                return null;
            }, delay, unit);
        }

        @Override
        public <V> ScheduledFuture<V> schedule(Callable<V> callable, long delay, TimeUnit unit) {
            if (shutdown) throw new RejectedExecutionException("shut down");
            Timer t = new Timer(now + Math.max(0, unit.toNanos(delay)), sequence++, callable);
            timers.add(t);
            @SuppressWarnings("unchecked")
            ScheduledFuture<V> f = (ScheduledFuture<V>) t;
            return f;
        }

        @Override
        public ScheduledFuture<?> scheduleAtFixedRate(Runnable command, long initialDelay, long period, TimeUnit unit) {
            throw new UnsupportedOperationException("not used by the notifier");
        }

        @Override
        public ScheduledFuture<?> scheduleWithFixedDelay(Runnable command, long initialDelay, long delay,
                                                         TimeUnit unit) {
            throw new UnsupportedOperationException("not used by the notifier");
        }

        @Override
        public void shutdown() {
            // As a ScheduledThreadPoolExecutor: no new tasks; the timers already set are kept.
            shutdown = true;
        }

        @Override
        public List<Runnable> shutdownNow() {
            shutdown = true;
            timers.clear();
            return List.of();
        }

        @Override
        public boolean isShutdown() {
            return shutdown;
        }

        @Override
        public boolean isTerminated() {
            return shutdown && timers() == 0;
        }

        @Override
        public boolean awaitTermination(long timeout, TimeUnit unit) {
            return isTerminated(); // nothing runs by itself: waiting would change nothing
        }

        private final class Timer implements ScheduledFuture<Object> {
            final long due;
            final long sequence;
            final CompletableFuture<Object> result = new CompletableFuture<>();
            final Callable<?> task;

            Timer(long due, long sequence, Callable<?> task) {
                this.due = due;
                this.sequence = sequence;
                this.task = task;
            }

            void fire() {
                try {
                    result.complete(task.call());
                } catch (Exception e) {
                    result.completeExceptionally(e);
                }
            }

            @Override
            public long getDelay(TimeUnit unit) {
                return unit.convert(due - now, TimeUnit.NANOSECONDS);
            }

            @Override
            public int compareTo(Delayed o) {
                return Long.compare(getDelay(TimeUnit.NANOSECONDS), o.getDelay(TimeUnit.NANOSECONDS));
            }

            @Override
            public boolean cancel(boolean mayInterruptIfRunning) {
                return result.cancel(mayInterruptIfRunning);
            }

            @Override
            public boolean isCancelled() {
                return result.isCancelled();
            }

            @Override
            public boolean isDone() {
                return result.isDone();
            }

            @Override
            public Object get() throws InterruptedException, ExecutionException {
                return result.get();
            }

            @Override
            public Object get(long timeout, TimeUnit unit) throws InterruptedException, ExecutionException,
                    java.util.concurrent.TimeoutException {
                return result.get(timeout, unit);
            }
        }
    }
}
