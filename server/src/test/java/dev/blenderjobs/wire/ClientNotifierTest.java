package dev.blenderjobs.wire;

import dev.blenderjobs.jobs.FailureKind;
import dev.blenderjobs.jobs.JobFailure;
import dev.blenderjobs.jobs.JobState;
import dev.blenderjobs.jobs.JobView;
import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;
import dev.blenderjobs.wire.messages.Messages.ShowMessageParams;
import dev.blenderjobs.wire.messages.Messages.JobRemovedParams;
import dev.blenderjobs.jobs.RemovalReason;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.mockito.ArgumentCaptor;
import org.mockito.InOrder;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.argThat;
import static org.mockito.Mockito.after;
import static org.mockito.Mockito.atLeast;
import static org.mockito.Mockito.doThrow;
import static org.mockito.Mockito.inOrder;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.timeout;
import static org.mockito.Mockito.verify;

@Timeout(5)
class ClientNotifierTest {
    private static final Duration INTERVAL = Duration.ofMillis(50);
    /**
     * For tests that need a report to stay pending: long enough to tell "at once" from "after
     * the interval", short enough that close() (which waits for the pending timers) stays quick.
     */
    /** Long enough that a stalled test machine never sees a coalescing timer fire early. */
    private static final Duration SLOW = Duration.ofMillis(2000);

    @TempDir
    Path tmp;

    private JobClient client;
    private ClientNotifier notifier;

    @BeforeEach
    void setUp() {
        client = mock(JobClient.class);
        notifier = new ClientNotifier(INTERVAL);
        notifier.connect(client);
    }

    @AfterEach
    void tearDown() {
        notifier.close();
    }

    private JobView view(String id, JobState state, JobFailure failure) {
        return new JobView(id, "name-" + id, "<scriptText>", state, 0, null, 1, 1, 0, 1L, 0, 0, failure,
                List.of(), -1, null, 0, null, null, tmp.resolve(id), new JobLog(tmp.resolve(id).resolve("log.txt"), 10), null);
    }

    private static JobProgressParams progressOf(String jobId, double value) {
        return argThat(p -> p != null && p.jobId().equals(jobId) && p.progress() == value);
    }

    @Test
    void firstProgressOfAJobIsSentAtOnce() {
        ClientNotifier slow = new ClientNotifier(SLOW);
        JobClient other = mock(JobClient.class);
        slow.connect(other);
        try {
            slow.progress("job-a", 0.25, "a quarter", 1234L);
            // Less than the interval: it did not wait for a coalescing timer.
            verify(other, timeout(1500)).progress(new JobProgressParams("job-a", 0.25, "a quarter", 1234L));
        } finally {
            slow.close();
        }
    }

    @Test
    void burstIsCoalescedAndTheLastValueIsDelivered() throws InterruptedException {
        for (int i = 1; i <= 1000; i++) {
            notifier.progress("job-a", i / 1000.0, "step " + i, i);
        }
        verify(client, timeout(1000)).progress(new JobProgressParams("job-a", 1.0, "step 1000", 1000));
        Thread.sleep(150); // nothing more may arrive after the last value
        // (A captor is not combined with after()/timeout(): those re-run the capture on every poll.)
        ArgumentCaptor<JobProgressParams> sent = ArgumentCaptor.forClass(JobProgressParams.class);
        verify(client, atLeast(1)).progress(sent.capture());
        List<JobProgressParams> values = sent.getAllValues();
        assertTrue(values.size() <= 10, "1,000 reports in a burst gave " + values.size() + " notifications");
        assertEquals(0.001, values.get(0).progress(), "the first report goes out at once");
        assertEquals(1.0, values.get(values.size() - 1).progress(), "the last report is the last one sent");
        for (int i = 1; i < values.size(); i++) {
            assertTrue(values.get(i).progress() > values.get(i - 1).progress(), "sent in order: " + values);
        }
    }

    @Test
    void closeDeliversTheLastPendingValue() {
        ClientNotifier slow = new ClientNotifier(SLOW);
        JobClient other = mock(JobClient.class);
        slow.connect(other);
        slow.progress("job-a", 0.1, null, 1);
        slow.progress("job-a", 0.2, null, 2);
        slow.progress("job-a", 0.3, null, 3);
        slow.close();
        InOrder order = inOrder(other);
        order.verify(other).progress(progressOf("job-a", 0.1));
        order.verify(other).progress(progressOf("job-a", 0.3));
        verify(other, never()).progress(progressOf("job-a", 0.2));
    }

    @Test
    void stateChangeDeliversPendingProgressFirst() {
        ClientNotifier slow = new ClientNotifier(SLOW);
        JobClient other = mock(JobClient.class);
        slow.connect(other);
        try {
            slow.progress("job-a", 0.1, null, 1);
            slow.progress("job-a", 0.9, "almost", 2); // pending: the interval has not passed
            slow.stateChanged(view("job-a", JobState.COMPLETED, null), JobState.ACTIVE);

            // All three before the 2 s timer would have sent 0.9.
            InOrder order = inOrder(other);
            order.verify(other, timeout(1500)).progress(progressOf("job-a", 0.1));
            order.verify(other, timeout(1500)).progress(progressOf("job-a", 0.9));
            order.verify(other, timeout(1500)).stateChanged(argThat(p -> p.jobId().equals("job-a")
                    && p.state().equals("COMPLETED") && p.previousState().equals("ACTIVE")));
        } finally {
            slow.close();
        }
    }

    @Test
    void stateChangeCarriesViewFields() {
        JobFailure failure = new JobFailure(FailureKind.SCRIPT_ERROR, "boom", 1, "Traceback...", null, List.of("x"));
        notifier.stateChanged(view("job-f", JobState.FAILED, failure), JobState.ACTIVE);
        ArgumentCaptor<JobStateChangedParams> sent = ArgumentCaptor.forClass(JobStateChangedParams.class);
        verify(client, timeout(1000)).stateChanged(sent.capture());
        JobStateChangedParams p = sent.getValue();
        assertEquals("job-f", p.jobId());
        assertEquals("name-job-f", p.name());
        assertEquals("FAILED", p.state());
        assertEquals("ACTIVE", p.previousState());
        assertEquals(1, p.attempt());
        assertEquals("SCRIPT_ERROR", p.error().kind());
        assertEquals("boom", p.error().message());
    }

    @Test
    void firstStateChangeHasNoPreviousStateAndNoError() {
        notifier.stateChanged(view("job-q", JobState.QUEUED, null), null);
        ArgumentCaptor<JobStateChangedParams> sent = ArgumentCaptor.forClass(JobStateChangedParams.class);
        verify(client, timeout(1000)).stateChanged(sent.capture());
        assertNull(sent.getValue().previousState());
        assertNull(sent.getValue().error());
    }

    @Test
    void jobsAreCoalescedIndependently() {
        ClientNotifier slow = new ClientNotifier(SLOW);
        JobClient other = mock(JobClient.class);
        slow.connect(other);
        try {
            slow.progress("job-a", 0.1, null, 1);
            slow.progress("job-a", 0.2, null, 2); // pending for job-a
            slow.progress("job-b", 0.5, null, 3); // job-b's first report is not held back by job-a
            verify(other, timeout(1500)).progress(progressOf("job-a", 0.1));
            verify(other, timeout(1500)).progress(progressOf("job-b", 0.5));
            verify(other, after(500).never()).progress(progressOf("job-a", 0.2));
        } finally {
            slow.close();
        }
        verify(other).progress(progressOf("job-a", 0.2));
    }

    @Test
    void burstsOfTwoJobsBothDeliverTheirLastValues() {
        for (int i = 1; i <= 500; i++) {
            notifier.progress("job-a", i / 500.0, null, i);
            notifier.progress("job-b", i / 1000.0, null, i);
        }
        verify(client, timeout(1000)).progress(progressOf("job-a", 1.0));
        verify(client, timeout(1000)).progress(progressOf("job-b", 0.5));
        verify(client, atLeast(1)).progress(progressOf("job-a", 1 / 500.0));
        verify(client, atLeast(1)).progress(progressOf("job-b", 1 / 1000.0));
    }

    @Test
    void progressAfterAQuietIntervalIsSentAtOnce() throws InterruptedException {
        ClientNotifier n = new ClientNotifier(Duration.ofMillis(1000));
        JobClient other = mock(JobClient.class);
        n.connect(other);
        try {
            n.progress("job-a", 0.1, null, 1);
            verify(other, timeout(1000)).progress(progressOf("job-a", 0.1));
            Thread.sleep(1050);
            n.progress("job-a", 0.2, null, 2);
            // Sent without waiting another 1 s interval.
            verify(other, timeout(800)).progress(progressOf("job-a", 0.2));
        } finally {
            n.close();
        }
    }

    @Test
    void aRemovedJobIsAnnouncedWithItsReasonAfterItsLastState() {
        notifier.stateChanged(view("job-r", JobState.COMPLETED, null), JobState.ACTIVE);
        notifier.removed("job-r", RemovalReason.RETENTION);
        InOrder order = inOrder(client);
        order.verify(client, timeout(1000)).stateChanged(argThat(p -> p.jobId().equals("job-r")));
        order.verify(client, timeout(1000)).jobRemoved(new JobRemovedParams("job-r", "RETENTION"));
    }

    @Test
    void unsavedRecordsAndTheirRecoveryReachTheUserAsShowMessage() {
        notifier.recordsNotSaved("Could not save the state of job job-a");
        notifier.recordsSavedAgain("saved again");
        InOrder order = inOrder(client);
        order.verify(client, timeout(1000)).showMessage(new ShowMessageParams(ShowMessageParams.WARNING,
                "Could not save the state of job job-a", "RECORDS_NOT_SAVED"));
        order.verify(client, timeout(1000)).showMessage(new ShowMessageParams(ShowMessageParams.INFO,
                "saved again", "RECORDS_SAVED_AGAIN"));
    }

    @Test
    void aFailingClientDoesNotStopLaterNotifications() {
        doThrow(new RuntimeException("connection lost")).when(client).progress(progressOf("job-a", 0.1));
        notifier.progress("job-a", 0.1, null, 1);
        notifier.stateChanged(view("job-a", JobState.CANCELED, null), JobState.ACTIVE);
        verify(client, timeout(1000)).stateChanged(any());
    }

    @Test
    void nothingIsSentBeforeAClientConnects() {
        ClientNotifier unconnected = new ClientNotifier(INTERVAL);
        unconnected.progress("job-a", 0.5, null, 1);
        unconnected.stateChanged(view("job-a", JobState.QUEUED, null), null);
        unconnected.close(); // must not throw
        JobClient late = mock(JobClient.class);
        unconnected.connect(late);
        verify(late, never()).progress(any());
        verify(late, never()).stateChanged(any());
    }
}
