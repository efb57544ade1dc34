package dev.blenderjobs.wire;

import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.wire.messages.Messages.FollowLogResult;
import dev.blenderjobs.wire.messages.Messages.JobLogParams;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.mockito.ArgumentCaptor;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.Mockito.atLeastOnce;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.timeout;
import static org.mockito.Mockito.verify;

/**
 * Live logs over a real {@link JobLog} and a notifier on the hand-driven scheduler: when text
 * goes out, how it is coalesced, decoded and bounded, and when following ends.
 */
@Timeout(10)
class LogFollowersTest {
    @TempDir
    Path tmp;

    private ClientNotifierTest.ManualScheduler scheduler;
    private JobClient client;
    private ClientNotifier notifier;
    private JobLog log;

    @BeforeEach
    void setUp() {
        scheduler = new ClientNotifierTest.ManualScheduler();
        client = mock(JobClient.class);
        notifier = new ClientNotifier(Duration.ofMillis(20), new WorkDoneTokens(), scheduler, scheduler::nanoTime);
        notifier.connect(client);
        log = JobLog.committedOnRelease(tmp.resolve("job/log.txt"), 100);
    }

    @AfterEach
    void tearDown() {
        notifier.close();
    }

    private void print(String text) {
        print(text.getBytes(StandardCharsets.UTF_8));
    }

    private void print(byte[] bytes) {
        log.append(bytes, 0, bytes.length);
    }

    /** follow, then the answer written (as WireLauncher reports it). */
    private FollowLogResult followAndAnswer() {
        FollowLogResult result = notifier.logs().follow("job-1", log);
        notifier.answered(result);
        return result;
    }

    private List<String> sent() {
        ArgumentCaptor<JobLogParams> captor = ArgumentCaptor.forClass(JobLogParams.class);
        verify(client, atLeastOnce()).log(captor.capture());
        assertTrue(captor.getAllValues().stream().allMatch(p -> p.jobId().equals("job-1")));
        return captor.getAllValues().stream().map(JobLogParams::text).toList();
    }

    @Test
    void theAnswerHasTheConsoleSoFarThenPrintsAreCoalescedIntoOneNotification() {
        print("before\n");
        FollowLogResult result = followAndAnswer();
        assertEquals(new FollowLogResult("job-1", "before\n", true), result);
        print("one\n");
        print("two\n");
        print("three");
        verify(client, never()).log(any()); // coalesced: nothing before the delay
        scheduler.advance(LogFollowers.FLUSH_DELAY);
        assertEquals(List.of("one\ntwo\nthree"), sent());
        assertTrue(notifier.logs().isFollowing("job-1"));
    }

    @Test
    void nothingIsSentBeforeTheFollowLogAnswerIsWritten() {
        FollowLogResult result = notifier.logs().follow("job-1", log);
        print("early\n");
        scheduler.advance(Duration.ofSeconds(1));
        verify(client, never()).log(any());
        notifier.answered(result);
        assertEquals(List.of("early\n"), sent(), "held text goes right after the answer");
    }

    @Test
    void aCharacterCutBetweenTwoChunksArrivesWholeAndInvalidBytesAreReplaced() {
        followAndAnswer();
        byte[] euro = "€".getBytes(StandardCharsets.UTF_8);
        print(new byte[]{'a', euro[0]});
        scheduler.advance(LogFollowers.FLUSH_DELAY);
        print(new byte[]{euro[1], euro[2], 'b', (byte) 0xff, '\n'});
        scheduler.advance(LogFollowers.FLUSH_DELAY);
        assertEquals(List.of("a", "€b\uFFFD\n"), sent());
    }

    @Test
    void theReleaseSendsTheRestAtOnceAndEndsFollowing() {
        followAndAnswer();
        print("last words\n");
        log.release(); // the job rests: no waiting for the delay
        assertEquals(List.of("last words\n"), sent());
        assertFalse(notifier.logs().isFollowing("job-1"));
        print("ignored\n");
        scheduler.advance(Duration.ofSeconds(1));
        assertEquals(List.of("last words\n"), sent());
    }

    @Test
    void aJobThatAlreadyRestsAnswersItsWholeLogAndIsNotFollowed() {
        print("done\n");
        log.release();
        FollowLogResult result = followAndAnswer();
        assertEquals(new FollowLogResult("job-1", "done\n", false), result);
        assertFalse(notifier.logs().isFollowing("job-1"));
        verify(client, never()).log(any());
    }

    @Test
    void aFloodIsCutToTheBudgetPerSecondWithAMarkerSayingHowMuchWasSkipped() {
        followAndAnswer();
        byte[] line = ("x".repeat(1023) + "\n").getBytes(StandardCharsets.US_ASCII);
        int lines = 1000; // 1000 KiB in one second: far over the budget
        for (int i = 0; i < lines; i++) print(line);
        scheduler.advance(LogFollowers.FLUSH_DELAY);
        List<String> first = sent();
        assertEquals(LogFollowers.BYTES_PER_SECOND, first.get(0).length(), "the budget of the second, no more");
        long skipped = (long) lines * 1024 - LogFollowers.BYTES_PER_SECOND;
        // A second later the output flows again, after the marker.
        scheduler.advance(Duration.ofSeconds(1));
        print("calm again\n");
        scheduler.advance(LogFollowers.FLUSH_DELAY);
        List<String> all = sent();
        assertEquals(LogFollowers.skippedMarker(skipped) + "calm again\n", all.get(all.size() - 1));
        String joined = String.join("", all);
        assertTrue(joined.length() < 2 * LogFollowers.BYTES_PER_SECOND, "bounded: " + joined.length());
    }

    @Test
    void bytesSkippedAtTheEndAreReportedByTheLastNotification() {
        followAndAnswer();
        byte[] chunk = new byte[64 * 1024];
        java.util.Arrays.fill(chunk, (byte) 'y');
        for (int i = 0; i < 5; i++) print(chunk); // two fit in the second's budget, three are skipped
        log.release();
        List<String> all = sent();
        String last = all.get(all.size() - 1);
        assertTrue(last.endsWith("\n" + LogFollowers.skippedMarker(3L * 64 * 1024)), last.substring(Math.max(0, last.length() - 300)));
    }

    @Test
    void aLongLogAnswersABoundedTailStartingAtALine() {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 10_000; i++) text.append("line ").append(i).append('\n');
        print(text.toString());
        FollowLogResult result = followAndAnswer();
        assertTrue(result.text().startsWith("[blender-jobs: the first "), result.text().substring(0, 100));
        assertTrue(result.text().endsWith("line 9999\n"));
        String shown = result.text().substring(result.text().indexOf('\n') + 1);
        assertTrue(shown.startsWith("line "), "starts at a whole line: " + shown.substring(0, 20));
        assertTrue(shown.length() <= LogFollowers.TAIL_BYTES);
        long notShown = Long.parseLong(result.text().replaceAll("(?s)^\\[blender-jobs: the first (\\d+) bytes.*", "$1"));
        assertEquals(text.length(), notShown + shown.length(), "the count is exact");
    }

    @Test
    void unfollowDropsPendingTextAndStopsTheNotifications() {
        followAndAnswer();
        print("pending\n");
        assertTrue(notifier.logs().unfollow("job-1").join());
        scheduler.advance(Duration.ofSeconds(1));
        print("more\n");
        scheduler.advance(Duration.ofSeconds(1));
        verify(client, never()).log(any());
        assertFalse(notifier.logs().unfollow("job-1").join(), "not followed any more");
    }

    @Test
    void followingAgainReplacesTheEarlierFollow() {
        followAndAnswer();
        print("a\n");
        FollowLogResult again = followAndAnswer();
        assertEquals("a\n", again.text());
        print("b\n");
        scheduler.advance(LogFollowers.FLUSH_DELAY);
        assertEquals(List.of("b\n"), sent(), "once, not twice");
    }

    @Test
    void thePrintingThreadNeverWaitsForTheClient() throws Exception {
        // A real sender thread whose client is stuck writing: the drainer must go on regardless.
        ClientNotifier threaded = new ClientNotifier(Duration.ofMillis(20));
        JobClient stuck = mock(JobClient.class);
        CountDownLatch unblock = new CountDownLatch(1);
        CountDownLatch writing = new CountDownLatch(1);
        doAnswer(inv -> {
            writing.countDown();
            unblock.await(20, TimeUnit.SECONDS);
            return null;
        }).when(stuck).log(any());
        threaded.connect(stuck);
        JobLog flooded = JobLog.committedOnRelease(tmp.resolve("flood/log.txt"), 100);
        try {
            threaded.answered(threaded.logs().follow("job-f", flooded));
            byte[] line = ("z".repeat(99) + "\n").getBytes(StandardCharsets.US_ASCII);
            flooded.append(line, 0, line.length);
            assertTrue(writing.await(5, TimeUnit.SECONDS), "the first text is being written (and stays stuck)");
            long start = System.nanoTime();
            for (int i = 0; i < 100_000; i++) flooded.append(line, 0, line.length); // 10 MB
            long ms = (System.nanoTime() - start) / 1_000_000;
            assertTrue(ms < 8000, "appending 10 MB took " + ms + " ms with the client stuck");
        } finally {
            unblock.countDown();
            flooded.release();
            threaded.close();
        }
        verify(stuck, timeout(5000).atLeastOnce()).log(any());
    }
}
