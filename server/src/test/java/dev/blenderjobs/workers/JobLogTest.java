package dev.blenderjobs.workers;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JobLogTest {

    @TempDir
    Path tmp;

    private static void append(JobLog log, String text) {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        log.append(b, 0, b.length);
    }

    @Test
    void tailKeepsTheLastNLines() {
        JobLog log = new JobLog(tmp.resolve("job/log.txt"), 3);
        for (int i = 1; i <= 10; i++) append(log, "line " + i + "\n");
        assertEquals(List.of("line 8", "line 9", "line 10"), log.tail());
    }

    @Test
    void tailIncludesATrailingPartialLineAndJoinsPieces() {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 5);
        append(log, "hel");
        append(log, "lo\nwor");
        append(log, "ld");
        assertEquals(List.of("hello", "world"), log.tail());
    }

    @Test
    void carriageReturnsAreDroppedFromTheTail() {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 5);
        append(log, "a\r\nb\r\n");
        assertEquals(List.of("a", "b"), log.tail());
    }

    @Test
    void appendHonoursOffsetAndLength() throws IOException {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 5);
        byte[] b = "xxhello\nyy".getBytes(StandardCharsets.US_ASCII);
        log.append(b, 2, 6);
        assertEquals(List.of("hello"), log.tail());
        assertEquals(6, log.bytes());
        log.close();
        assertEquals("hello\n", Files.readString(log.file()));
    }

    @Test
    void longLinesAreCutInTheTailButKeptWholeInTheFile() throws IOException {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 5);
        String longLine = "z".repeat(JobLog.MAX_LINE_CHARS * 3 + 17);
        append(log, "short\n" + longLine + "\nafter\n");
        List<String> tail = log.tail();
        assertEquals(3, tail.size());
        assertEquals("short", tail.get(0));
        assertEquals("z".repeat(JobLog.MAX_LINE_CHARS), tail.get(1));
        assertEquals("after", tail.get(2));
        log.flush();
        List<String> fileLines = Files.readAllLines(log.file());
        assertEquals(List.of("short", longLine, "after"), fileLines);
    }

    @Test
    void fileIsCreatedWithItsParentDirectoriesAndBytesAreCounted() throws IOException {
        Path file = tmp.resolve("a/b/c/log.txt");
        JobLog log = new JobLog(file, 5);
        assertFalse(Files.exists(file));
        append(log, "\u00e9\n"); // 2 bytes + newline
        assertEquals(3, log.bytes());
        log.flush();
        assertTrue(Files.isRegularFile(file));
        assertEquals("\u00e9\n", Files.readString(file));
        assertEquals(file, log.file());
    }

    @Test
    void noteAppendsALine() throws IOException {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 5);
        append(log, "script output\n");
        log.note("=== attempt 2 of 3 ===");
        append(log, "more\n");
        assertEquals(List.of("script output", "=== attempt 2 of 3 ===", "more"), log.tail());
        log.close();
        assertEquals("script output\n=== attempt 2 of 3 ===\nmore\n", Files.readString(log.file()));
    }

    @Test
    void releaseThenTailReadsBackFromTheFile() {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 3);
        for (int i = 1; i <= 6; i++) append(log, "line " + i + "\r\n");
        append(log, "partial");
        assertEquals(List.of("line 4", "line 5", "line 6", "partial"), log.tail(),
                "in memory: the last 3 complete lines plus the partial one");
        log.release();
        // Read back from the file: the last 3 lines, the partial one counted among them.
        assertEquals(List.of("line 5", "line 6", "partial"), log.tail());
    }

    @Test
    void releasedTailCutsLongLines() {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 3);
        append(log, "q".repeat(JobLog.MAX_LINE_CHARS + 500) + "\nend\n");
        log.release();
        assertEquals(List.of("q".repeat(JobLog.MAX_LINE_CHARS), "end"), log.tail());
    }

    @Test
    void releasedTailOfALargeFileDropsTheCutFirstLine() throws IOException {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 1000);
        List<String> expected = new ArrayList<>();
        // ~400 KB: more than the 256 KB read back, so the window starts mid-line.
        for (int i = 0; i < 4000; i++) {
            String line = i + ":" + "w".repeat(95);
            expected.add(line);
            append(log, line + "\n");
        }
        log.release();
        List<String> tail = log.tail();
        assertEquals(1000, tail.size());
        assertEquals(expected.subList(3000, 4000), tail);
        assertTrue(Files.size(log.file()) > 256 * 1024);
    }

    @Test
    void releasedTailOfAMissingFileIsEmpty() {
        JobLog log = new JobLog(tmp.resolve("never-written/log.txt"), 3);
        log.release();
        assertEquals(List.of(), log.tail());
    }

    @Test
    void invalidUtf8BecomesReplacementCharacters() {
        JobLog log = new JobLog(tmp.resolve("log.txt"), 3);
        log.append(new byte[]{'a', (byte) 0xff, 'b', '\n'}, 0, 4);
        assertEquals(List.of("a\uFFFDb"), log.tail());
    }

    @Test
    void unwritableFileKeepsTheTailInMemory() throws IOException {
        Path blocker = tmp.resolve("not-a-dir");
        Files.writeString(blocker, "I am a file");
        JobLog log = new JobLog(blocker.resolve("log.txt"), 3);
        append(log, "still\nhere\n");
        assertEquals(List.of("still", "here"), log.tail());
        assertEquals(11, log.bytes());
    }

    @Test
    void aJobLogGrowsUnderThePartNameAndIsRenamedWhenReleased() throws IOException {
        Path name = tmp.resolve("job/log.txt");
        Path part = tmp.resolve("job/log.txt.part");
        JobLog log = JobLog.committedOnRelease(name, 5);
        append(log, "printed\n");
        // Each chunk is written through: a server killed now leaves it on disk.
        assertEquals("printed\n", Files.readString(part));
        assertEquals(part, log.file());
        assertFalse(Files.exists(name), "the final name only ever holds a whole log");
        log.release();
        assertFalse(Files.exists(part));
        assertEquals("printed\n", Files.readString(name));
        assertEquals(name, log.file());
        assertEquals(List.of("printed"), log.tail());
    }

    @Test
    void aResumedJobsLogGoesOnFromItsEarlierAttempts() throws IOException {
        Path name = tmp.resolve("log.txt");
        JobLog first = JobLog.committedOnRelease(name, 5);
        append(first, "attempt one\n");
        first.release();
        JobLog resumed = JobLog.committedOnRelease(name, 5);
        resumed.note("=== resumed ===");
        assertFalse(Files.exists(name), "moved back to the .part name while it grows again");
        append(resumed, "attempt two\n");
        resumed.release();
        assertEquals("attempt one\n=== resumed ===\nattempt two\n", Files.readString(name));
    }

    @Test
    void releasingALogAKilledServerLeftUnderThePartNameCommitsIt() throws IOException {
        Path name = tmp.resolve("log.txt");
        Files.writeString(tmp.resolve("log.txt.part"), "up to the kill\n");
        JobLog recovered = JobLog.committedOnRelease(name, 5);
        recovered.release();
        assertEquals("up to the kill\n", Files.readString(name));
        assertEquals(List.of("up to the kill"), recovered.tail());
        assertFalse(Files.exists(tmp.resolve("log.txt.part")));
    }

    // ------------------------------------------------------------------ follow

    /** Records what a follower hears. */
    private static final class Recorder implements JobLog.Listener {
        final java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        int releases;

        @Override
        public void appended(byte[] data, int offset, int length) {
            bytes.write(data, offset, length);
        }

        @Override
        public void released() {
            releases++;
        }

        String text() {
            return bytes.toString(StandardCharsets.UTF_8);
        }
    }

    @Test
    void followGivesTheTailAndThenEveryByteAppendedUntilRelease() throws IOException {
        JobLog log = JobLog.committedOnRelease(tmp.resolve("job/log.txt"), 5);
        append(log, "before\n");
        Recorder r = new Recorder();
        JobLog.Followed f = log.follow(r, 1024);
        assertTrue(f.following());
        assertEquals("before\n", new String(f.tail(), StandardCharsets.UTF_8));
        assertEquals(0, f.skipped());
        log.note("=== a note ===");
        byte[] raw = {'x', (byte) 0xff, (byte) 0xe2, '\n'};
        log.append(raw, 0, raw.length);
        assertEquals("=== a note ===\n", r.text().substring(0, 15));
        assertTrue(java.util.Arrays.equals(raw, java.util.Arrays.copyOfRange(r.bytes.toByteArray(), 15, 19)),
                "the bytes as appended, invalid UTF-8 included");
        log.release();
        assertEquals(1, r.releases);
        append(log, "after release\n");
        assertFalse(r.text().contains("after release"));
        assertEquals(Files.readString(tmp.resolve("job/log.txt"), StandardCharsets.ISO_8859_1).length(), 7 + 15 + 4);
    }

    @Test
    void followKeepsOnlyTheLastBytesAndSaysHowManyWereLeftOut() {
        JobLog log = JobLog.committedOnRelease(tmp.resolve("job/log.txt"), 5);
        for (int i = 0; i < 100; i++) append(log, "line " + i + "\n");
        JobLog.Followed f = log.follow(new Recorder(), 16);
        assertEquals("line 98\nline 99\n", new String(f.tail(), StandardCharsets.UTF_8));
        assertEquals(16, f.tail().length);
        assertEquals(log.bytes() - 16, f.skipped());
    }

    @Test
    void followingAReleasedLogReadsItsFileAndRegistersNothing() {
        JobLog log = JobLog.committedOnRelease(tmp.resolve("job/log.txt"), 5);
        append(log, "all of it\n");
        log.release();
        Recorder r = new Recorder();
        JobLog.Followed f = log.follow(r, 1024);
        assertFalse(f.following());
        assertEquals("all of it\n", new String(f.tail(), StandardCharsets.UTF_8));
        append(log, "more\n");
        assertEquals(0, r.releases);
        assertEquals("", r.text());
    }

    @Test
    void anUnfollowedListenerHearsNothingMore() {
        JobLog log = JobLog.committedOnRelease(tmp.resolve("job/log.txt"), 5);
        Recorder r = new Recorder();
        assertEquals(0, log.follow(r, 1024).tail().length, "no output yet: no file, an empty tail");
        append(log, "one\n");
        log.unfollow(r);
        append(log, "two\n");
        log.release();
        assertEquals("one\n", r.text());
        assertEquals(0, r.releases);
    }

    @Test
    void aFailingListenerDoesNotStopTheLog() throws IOException {
        JobLog log = JobLog.committedOnRelease(tmp.resolve("job/log.txt"), 5);
        log.follow(new JobLog.Listener() {
            @Override
            public void appended(byte[] data, int offset, int length) {
                throw new IllegalStateException("listener bug");
            }

            @Override
            public void released() {
                throw new IllegalStateException("listener bug");
            }
        }, 10);
        append(log, "still written\n");
        log.release();
        assertEquals("still written\n", Files.readString(tmp.resolve("job/log.txt")));
    }

    @Test
    void aLogOverItsCapKeepsItsHeadAMarkerAndItsLastLines() throws Exception {
        Path file = tmp.resolve("capped/log.txt");
        JobLog log = JobLog.committedOnRelease(file, 5, 64 * 1024);
        for (int i = 0; i < 5000; i++) append(log, String.format("line %05d %s%n", i, "x".repeat(40)));
        append(log, "THE END\n");
        assertEquals("THE END", log.tail().get(log.tail().size() - 1));
        log.release();
        String text = Files.readString(file, StandardCharsets.UTF_8);
        assertTrue(text.startsWith("line 00000 "), text.substring(0, 40));
        assertTrue(text.contains("--max-log-size"), "a marker says where the log was cut");
        assertTrue(Files.size(file) < 64 * 1024 + 2048, Files.size(file) + " bytes");
        assertTrue(text.contains("bytes of output were cut here"), text.substring(text.length() - 600));
        assertTrue(text.endsWith("line 04999 " + "x".repeat(40) + "\nTHE END\n"), text.substring(text.length() - 300));
    }

    @Test
    void aFollowerHearsEveryByteEvenPastTheCapWhileTheFileStopsAtItsMarker() throws Exception {
        Path file = tmp.resolve("capped-followed/log.txt");
        JobLog log = JobLog.committedOnRelease(file, 5, 64 * 1024);
        Recorder r = new Recorder();
        assertTrue(log.follow(r, 1024).following());
        StringBuilder all = new StringBuilder();
        for (int i = 0; i < 2000; i++) {
            String line = String.format("line %05d %s%n", i, "x".repeat(40));
            all.append(line);
            append(log, line);
        }
        assertEquals(all.toString(), r.text(), "the follower got the output the file leaves out");
        JobLog.Followed late = log.follow(new Recorder(), 200);
        assertTrue(new String(late.tail(), StandardCharsets.UTF_8).contains("--max-log-size"),
                "a follow after the cut starts from the end of the file: its marker");
        log.release();
        assertEquals(1, r.releases);
    }

    @Test
    void aResumedLogCountsWhatItsFileAlreadyHolds() throws Exception {
        Path file = tmp.resolve("resumed/log.txt");
        Files.createDirectories(file.getParent());
        Files.writeString(file, "y".repeat(70 * 1024) + "\n");
        JobLog log = JobLog.committedOnRelease(file, 5, 64 * 1024);
        append(log, "more\n");
        log.release();
        String text = Files.readString(file, StandardCharsets.UTF_8);
        assertTrue(text.contains("--max-log-size") && text.endsWith("more\n"), text.substring(text.length() - 300));
    }
}
