package dev.blenderjobs.workers.local;

import dev.blenderjobs.workers.JobLog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(10)
class OutputDrainerTest {
    private static final String MARKER = "n0nce42";
    /** JobLog.MAX_LINE_CHARS (package-private in workers): the longest line a log's tail keeps. */
    private static final int TAIL_LINE_CHARS = 2000;

    @TempDir
    Path tmp;

    private static String begin(String jobId) {
        return "\u001e" + MARKER + ":begin:" + jobId + "\u001e\n";
    }

    private static String end(String jobId) {
        return "\u001e" + MARKER + ":end:" + jobId + "\u001e\n";
    }

    private JobLog log(String name) {
        return new JobLog(tmp.resolve(name).resolve("log.txt"), 100);
    }

    private static OutputDrainer drain(byte[] output, JobLog tail, Object... expected) {
        OutputDrainer d = new OutputDrainer(new ByteArrayInputStream(output), "w1.1", MARKER, tail);
        for (int i = 0; i < expected.length; i += 2) d.expect((String) expected[i], (JobLog) expected[i + 1]);
        d.run();
        return d;
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void routesEachJobsLinesToItsLogAndTheRestToTheWorkerTail() throws InterruptedException {
        JobLog tail = log("worker");
        JobLog a = log("a");
        JobLog b = log("b");
        String out = "Blender 3.4.1 starting\n"
                + begin("job-a") + "a line 1\na line 2\n" + end("job-a")
                + "between jobs\n"
                + begin("job-b") + "b only\n" + end("job-b")
                + "after\n";
        OutputDrainer d = drain(utf8(out), tail, "job-a", a, "job-b", b);

        assertEquals(List.of("a line 1", "a line 2"), a.tail());
        assertEquals(List.of("b only"), b.tail());
        assertEquals(List.of("Blender 3.4.1 starting", "between jobs", "after"), tail.tail());
        assertTrue(d.awaitEnd("job-a", 0));
        assertTrue(d.awaitEnd("job-b", 0));
    }

    @Test
    void jobLogFileReceivesExactlyTheJobsBytes() throws IOException {
        JobLog tail = log("worker");
        JobLog a = log("a");
        String jobOutput = "first\r\nsecond \u00e9\u2713\nthird without newline";
        drain(utf8("noise\n" + begin("job-a") + jobOutput + "\n" + end("job-a") + "more noise\n"), tail, "job-a", a);
        a.close();
        assertEquals(jobOutput + "\n", Files.readString(a.file()));
        assertEquals(List.of("first", "second \u00e9\u2713", "third without newline"), a.tail());
    }

    @Test
    void partialLineBeforeABeginMarkerGoesToThePreviousOwner() {
        JobLog tail = log("worker");
        JobLog a = log("a");
        JobLog b = log("b"); // expected but never begun: gets nothing
        String out = "boot\nloading...." + begin("job-a") + "inside a\n" + end("job-a");
        drain(utf8(out), tail, "job-a", a, "job-b", b);

        assertEquals(List.of("boot", "loading...."), tail.tail(),
                "text before a begin marker on the same line belongs to whoever owned the output before");
        assertEquals(List.of("inside a"), a.tail());
        assertEquals(List.of(), b.tail());
    }

    @Test
    void partialJobOutputBeforeTheNextJobsBeginStaysWithTheEarlierJob() {
        // No end marker between: a partial line of job-a right before job-b's begin is job-a's.
        JobLog tail = log("worker");
        JobLog a = log("a");
        JobLog b = log("b");
        String out = begin("job-a") + "a full\n" + "a partial" + begin("job-b") + "b line\n" + end("job-b");
        drain(utf8(out), tail, "job-a", a, "job-b", b);
        assertEquals(List.of("a full", "a partial"), a.tail());
        assertEquals(List.of("b line"), b.tail());
        assertEquals(List.of(), tail.tail());
    }

    @Test
    void outputOfAnUnexpectedJobGoesToTheWorkerTail() {
        JobLog tail = log("worker");
        drain(utf8(begin("job-x") + "who am I\n" + end("job-x")), tail);
        assertEquals(List.of("who am I"), tail.tail());
    }

    @Test
    void invalidUtf8IsReplacedAndDoesNotBreakRouting() throws IOException {
        JobLog tail = log("worker");
        JobLog a = log("a");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(new byte[]{'b', 'a', 'd', ' ', (byte) 0xff, (byte) 0xfe, ' ', 'x', '\n'});
        out.write(utf8(begin("job-a")));
        out.write(new byte[]{'j', (byte) 0xc3, '\n'}); // truncated 2-byte sequence
        out.write(utf8("ok\n"));
        out.write(utf8(end("job-a")));
        out.write(new byte[]{(byte) 0x80, 'z', '\n'});
        drain(out.toByteArray(), tail, "job-a", a);

        List<String> t = tail.tail();
        assertEquals(2, t.size(), t.toString());
        assertTrue(t.get(0).startsWith("bad \uFFFD") && t.get(0).endsWith(" x"), t.get(0));
        assertEquals("\uFFFDz", t.get(1));
        assertEquals(List.of("j\uFFFD", "ok"), a.tail());
        a.close();
        // The file keeps the raw bytes.
        assertArrayEquals(new byte[]{'j', (byte) 0xc3, '\n', 'o', 'k', '\n'}, Files.readAllBytes(a.file()));
    }

    @Test
    void awaitEndIsTrueAfterTheEndMarkerAndFalseOnTimeout() throws Exception {
        // All writes come from this thread: a PipedInputStream reports "Write end dead" once
        // the last thread that wrote to it has ended.
        PipedOutputStream writer = new PipedOutputStream();
        PipedInputStream reader = new PipedInputStream(writer, 64 * 1024);
        JobLog tail = log("worker");
        JobLog a = log("a");
        // A permit each time a caller of awaitEnd starts to wait: the test knows when one is
        // waiting instead of sleeping and hoping it is.
        Semaphore waits = new Semaphore(0);
        OutputDrainer d = new OutputDrainer(reader, "w1.1", MARKER, tail, waits::release);
        d.expect("job-a", a);
        Thread t = new Thread(d, "drainer");
        t.setDaemon(true);
        t.start();

        writer.write(utf8(begin("job-a") + "working\n"));
        writer.flush();
        assertFalse(d.awaitEnd("job-a", 100), "no end marker yet");
        assertTrue(waits.drainPermits() >= 1, "it waited for the marker rather than answering at once");

        long start = System.nanoTime();
        CompletableFuture<Boolean> waiting = CompletableFuture.supplyAsync(() -> {
            try {
                return d.awaitEnd("job-a", 30_000);
            } catch (InterruptedException e) {
                throw new RuntimeException(e);
            }
        });
        // The hook runs with the drainer's lock held, just before wait(): the end marker
        // written next cannot be handled before the wait has begun.
        assertTrue(waits.tryAcquire(5, TimeUnit.SECONDS), "awaitEnd began to wait");
        assertFalse(waiting.isDone(), "still waiting for the marker");
        writer.write(utf8(end("job-a")));
        writer.flush();
        assertTrue(waiting.get(5, TimeUnit.SECONDS), "end marker seen while waiting");
        assertTrue((System.nanoTime() - start) / 1_000_000 < 4000, "woke up on the marker, not the timeout");
        assertEquals(List.of("working"), a.tail());
        assertTrue(d.awaitEnd("job-a", 0), "an ended job stays ended");

        // The stream is still open: an unknown job times out with false.
        start = System.nanoTime();
        assertFalse(d.awaitEnd("job-unknown", 150));
        assertTrue((System.nanoTime() - start) / 1_000_000 >= 140, "waited for the timeout");
        assertTrue(t.isAlive());

        writer.close();
        t.join(5000);
        assertFalse(t.isAlive(), "drainer ends at end of stream");
        waits.drainPermits();
        assertFalse(d.awaitEnd("job-unknown", 5000), "at end of stream an unknown job is not waited for");
        assertEquals(0, waits.availablePermits(), "not even briefly");
    }

    @Test
    void awaitEndReturnsFalseAtEndOfStreamWithoutTheMarker() throws InterruptedException {
        JobLog a = log("a");
        Semaphore waits = new Semaphore(0);
        OutputDrainer d = new OutputDrainer(new ByteArrayInputStream(utf8(begin("job-a") + "killed mid-job")), "w1.1",
                MARKER, log("worker"), waits::release);
        d.expect("job-a", a);
        d.run();
        long start = System.nanoTime();
        assertFalse(d.awaitEnd("job-a", 5000));
        assertEquals(0, waits.availablePermits(), "does not wait once the stream ended");
        assertTrue((System.nanoTime() - start) / 1_000_000 < 1000, "does not wait once the stream ended");
        assertEquals(List.of("killed mid-job"), a.tail());
    }

    @Test
    void aVeryLongLineWithoutNewlineIsPassedOnInPieces() throws IOException, InterruptedException {
        JobLog tail = log("worker");
        JobLog a = log("a");
        byte[] longLine = new byte[200 * 1024];
        Arrays.fill(longLine, (byte) 'x');
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(utf8(begin("job-a")));
        out.write(longLine);
        out.write(utf8("\n" + end("job-a") + "after\n"));
        OutputDrainer d = drain(out.toByteArray(), tail, "job-a", a);

        assertEquals(200 * 1024 + 1, a.bytes());
        List<String> t = a.tail();
        assertEquals(1, t.size());
        assertEquals(TAIL_LINE_CHARS, t.get(0).length());
        a.close();
        assertEquals(200 * 1024 + 1, Files.size(a.file()), "the file keeps the whole line");
        assertEquals(List.of("after"), tail.tail(), "markers after the long line are still recognised");
        assertTrue(d.awaitEnd("job-a", 0));
    }

    @Test
    void aVeryLongLineAtEndOfStreamIsKept() {
        JobLog tail = log("worker");
        byte[] longLine = new byte[200 * 1024];
        Arrays.fill(longLine, (byte) 'y');
        drain(longLine, tail);
        assertEquals(200 * 1024, tail.bytes());
        assertEquals(1, tail.tail().size());
    }

    @Test
    void indexOfFindsNeedle() {
        assertEquals(2, OutputDrainer.indexOf(utf8("abcdef"), utf8("cd")));
        assertEquals(-1, OutputDrainer.indexOf(utf8("abc"), utf8("abcd")));
        assertEquals(0, OutputDrainer.indexOf(utf8("abc"), utf8("a")));
        assertEquals(-1, OutputDrainer.indexOf(utf8("abc"), utf8("x")));
    }
}
