package dev.blenderjobs.jobs;

import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobRequest;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.PassedData;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The job folder layout's two ways of not creating files on a job's path: spare folders made
 * ahead, and records written into the inode of the record before (creating a file costs about
 * 0.3 ms of CPU on the measured disks). Checked by inode identity: a file that was not created
 * keeps the inode of the one made ahead.
 */
class JobFilesTest {
    @TempDir
    Path state;
    private JobFiles files;

    @BeforeEach
    void setUp() {
        files = new JobFiles(state);
    }

    @AfterEach
    void tearDown() {
        files.close();
    }

    private static JobSpec spec() {
        return new JobSpec(null, null, 0, 1, JobSpec.Isolation.WORKER, 0, null, null);
    }

    private static Job job(String id, JobState state) {
        return new Job(id, spec(), state, 0, null, 1, 1000, 0, 0, null, List.of(), -1, null);
    }

    private void prepare(String id) throws Exception {
        files.prepare(new JobRequest(spec(), "python_data = {'n': 1}", PassedData.EMPTY, null, null, false, null,
                false), job(id, JobState.QUEUED));
    }

    /** The state in the job's record on disk, as a restarted server would read it. */
    private JobState recorded(String id) throws Exception {
        return JobFiles.jobOf(id, files.readRecordJson(id)).state();
    }

    private static Object inode(Path p) throws Exception {
        return Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
    }

    private Set<Object> sparesInodes() throws Exception {
        Set<Object> keys = new HashSet<>();
        Path dir = state.resolve("spare-folders");
        if (!Files.isDirectory(dir)) return keys;
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.toList()) if (!p.equals(dir)) keys.add(inode(p));
        }
        return keys;
    }

    private int spareCount() throws Exception {
        Path dir = state.resolve("spare-folders");
        if (!Files.isDirectory(dir)) return 0;
        try (Stream<Path> all = Files.list(dir)) {
            return (int) all.count();
        }
    }

    /** Waits for n spares made whole (a folder in spare-folders/ may still be half made). */
    private void awaitSpares(int n) throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (files.sparesReady() < n || spareCount() < n) {
            assertTrue(System.nanoTime() < deadline, "no " + n + " spare folders within 10 s");
            Thread.sleep(10);
        }
    }

    @Test
    void aJobTakesASpareFolderWholeAndTheSpareIsMadeAgain() throws Exception {
        files.keepSpareFolders(2);
        awaitSpares(2);
        Set<Object> made = sparesInodes();
        prepare("job-000000000001");
        Path dir = files.dirOf("job-000000000001");
        for (Path p : List.of(dir, files.scriptOf("job-000000000001"), files.passedDataOf("job-000000000001"),
                dir.resolve("job.json"), dir.resolve(JobFiles.SPARE_RECORD), files.workDirOf("job-000000000001"),
                files.resultDirOf("job-000000000001"), files.resultDirOf("job-000000000001").resolve("python_data.json.tmp"))) {
            assertTrue(made.contains(inode(p)), p + " was created on the job's path, not taken from a spare");
        }
        assertEquals("python_data = {'n': 1}", Files.readString(files.scriptOf("job-000000000001")));
        assertEquals("{}", Files.readString(files.passedDataOf("job-000000000001")));
        assertEquals(JobState.QUEUED, recorded("job-000000000001"));
        assertEquals(List.of("job-000000000001"), files.listJobIds());
        awaitSpares(2); // the maker replaces what was taken
    }

    @Test
    void withoutASpareTheIntakeMakesTheFolderItself() throws Exception {
        prepare("job-000000000002");
        assertEquals(JobState.QUEUED, recorded("job-000000000002"));
        assertTrue(Files.isRegularFile(files.scriptOf("job-000000000002")));
        assertFalse(Files.exists(state.resolve("spare-folders")));
    }

    @Test
    void aRecordIsWrittenIntoTheInodeOfTheRecordBefore() throws Exception {
        prepare("job-000000000003");
        Path dir = files.dirOf("job-000000000003");
        files.writeRecord(job("job-000000000003", JobState.ACTIVE));
        Object activeRecord = inode(dir.resolve("job.json"));
        Object spare = inode(dir.resolve(JobFiles.SPARE_RECORD));
        files.writeRecord(job("job-000000000003", JobState.COMPLETED));
        assertEquals(spare, inode(dir.resolve("job.json")), "the new record went into the spare inode");
        assertEquals(activeRecord, inode(dir.resolve(JobFiles.SPARE_RECORD)), "the old record is the next spare");
        assertEquals(JobState.COMPLETED, recorded("job-000000000003"));
        for (String left : List.of("job.json.tmp", "job.json.old")) {
            assertFalse(Files.exists(dir.resolve(left)), left + " is left behind");
        }
    }

    @Test
    void whatAKilledWriteLeavesBesidesTheRecordIsOverwrittenNotRead() throws Exception {
        prepare("job-000000000004");
        Path dir = files.dirOf("job-000000000004");
        files.writeRecord(job("job-000000000004", JobState.ACTIVE));
        // Killed between the link and the renames: a second name of the record, a half spare.
        Files.createLink(dir.resolve("job.json.old"), dir.resolve("job.json"));
        Files.writeString(dir.resolve(JobFiles.SPARE_RECORD), "{\"half");
        assertEquals(JobState.ACTIVE, recorded("job-000000000004"));
        files.writeRecord(job("job-000000000004", JobState.FAILED));
        assertEquals(JobState.FAILED, recorded("job-000000000004"));
        assertFalse(Files.exists(dir.resolve("job.json.old")));
    }

    /** A job with an ACTIVE record whose record spare is then a symbolic link to {@code target}; its folder. */
    private Path withRecordSpareLinkedTo(String id, Path target) throws Exception {
        prepare(id);
        Path dir = files.dirOf(id);
        files.writeRecord(job(id, JobState.ACTIVE));
        Files.delete(dir.resolve(JobFiles.SPARE_RECORD));
        Files.createSymbolicLink(dir.resolve(JobFiles.SPARE_RECORD), target);
        return dir;
    }

    @Test
    void aSpareThatCannotBeWrittenFailsTheWriteAndTheNextWriteStartsAnew() throws Exception {
        // As on a full disk: the spare is /dev/full (writes fail with ENOSPC).
        Path dir = withRecordSpareLinkedTo("job-000000000005", Path.of("/dev/full"));
        java.io.IOException e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class,
                () -> files.writeRecord(job("job-000000000005", JobState.COMPLETED)));
        assertTrue(String.valueOf(e.getMessage()).contains("No space left on device"), String.valueOf(e));
        assertEquals(JobState.ACTIVE, recorded("job-000000000005"), "the record before is whole");
        assertFalse(Files.exists(dir.resolve(JobFiles.SPARE_RECORD), LinkOption.NOFOLLOW_LINKS));
        files.writeRecord(job("job-000000000005", JobState.COMPLETED));
        assertEquals(JobState.COMPLETED, recorded("job-000000000005"));
    }

    @Test
    void aRecordSpareLinkedToAFifoIsNotOpened() throws Exception {
        // Opening a FIFO to write blocks until a reader comes: the store's thread would wait for ever.
        Path fifo = state.resolve("a-fifo");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        Path dir = withRecordSpareLinkedTo("job-000000000014", fifo);
        org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(10),
                () -> files.writeRecord(job("job-000000000014", JobState.COMPLETED)));
        assertEquals(JobState.COMPLETED, recorded("job-000000000014"));
        assertTrue(Files.isRegularFile(dir.resolve(JobFiles.SPARE_RECORD), LinkOption.NOFOLLOW_LINKS),
                "the link was replaced by the old record's file");
    }

    @Test
    void aSpareAJobTamperedWithIsNotUsedAndTheRecordItPointsAtIsUntouched() throws Exception {
        prepare("job-0000000000a1");
        Path victim = files.dirOf("job-0000000000a1").resolve("job.json");
        String before = Files.readString(victim);
        files.keepSpareFolders(1);
        awaitSpares(1);
        Path spare;
        try (Stream<Path> all = Files.list(state.resolve("spare-folders"))) {
            spare = all.findFirst().orElseThrow();
        }
        // What a job's script could do from its work/ folder: ../../spare-folders/...
        Files.delete(spare.resolve("script.py"));
        Files.createLink(spare.resolve("script.py"), victim);
        prepare("job-0000000000a2");
        assertEquals(before, Files.readString(victim), "the intake wrote through a link into another job's record");
        assertEquals("python_data = {'n': 1}", Files.readString(files.scriptOf("job-0000000000a2")));
        assertFalse(Files.exists(spare), "the tampered spare is deleted");
    }

    @Test
    void aHardLinkedRecordSpareIsNotWrittenThrough() throws Exception {
        prepare("job-0000000000b1");
        prepare("job-0000000000b2");
        Path mine = files.dirOf("job-0000000000b1");
        Path other = files.dirOf("job-0000000000b2").resolve("job.json");
        String before = Files.readString(other);
        Files.deleteIfExists(mine.resolve(JobFiles.SPARE_RECORD));
        Files.createLink(mine.resolve(JobFiles.SPARE_RECORD), other);
        files.writeRecord(job("job-0000000000b1", JobState.ACTIVE));
        assertEquals(before, Files.readString(other));
        assertEquals(JobState.ACTIVE, recorded("job-0000000000b1"));
    }

    @Test
    void aRecordSpareLinkedToAnotherJobsRecordIsNotWrittenThrough() throws Exception {
        prepare("job-0000000000e1");
        prepare("job-0000000000e2");
        Path mine = files.dirOf("job-0000000000e1");
        Path other = files.dirOf("job-0000000000e2").resolve("job.json");
        String before = Files.readString(other);
        Files.deleteIfExists(mine.resolve(JobFiles.SPARE_RECORD));
        Files.createSymbolicLink(mine.resolve(JobFiles.SPARE_RECORD), Path.of("../job-0000000000e2/job.json"));
        files.writeRecord(job("job-0000000000e1", JobState.ACTIVE));
        assertEquals(before, Files.readString(other));
        assertTrue(Files.isRegularFile(mine.resolve("job.json"), LinkOption.NOFOLLOW_LINKS));
        assertEquals(JobState.ACTIVE, recorded("job-0000000000e1"));
    }

    @Test
    void aSpareWithAnythingAddedIsNotUsed() throws Exception {
        prepare("job-0000000000f1");
        Path victimInput = files.dirOf("job-0000000000f1").resolve("input");
        Files.createDirectories(victimInput);
        files.keepSpareFolders(2);
        awaitSpares(2);
        List<Path> spares;
        try (Stream<Path> all = Files.list(state.resolve("spare-folders"))) {
            spares = all.sorted().toList();
        }
        Files.createSymbolicLink(spares.get(0).resolve("input"), victimInput); // where copies go
        Files.writeString(spares.get(1).resolve("work/left.txt"), "from another job");
        prepare("job-0000000000f2");
        prepare("job-0000000000f3");
        for (String id : List.of("job-0000000000f2", "job-0000000000f3")) {
            if (Files.isDirectory(files.workDirOf(id))) { // a fresh spare's; a folder made at addJob has none yet
                try (Stream<Path> work = Files.list(files.workDirOf(id))) {
                    assertEquals(0, work.count(), id + " was given a folder another job had written into");
                }
            }
            assertFalse(Files.exists(files.dirOf(id).resolve("input"), LinkOption.NOFOLLOW_LINKS));
        }
        assertFalse(Files.exists(spares.get(0)) || Files.exists(spares.get(1)), "changed spares are deleted");
    }

    @Test
    void aRecordIsSavedEvenWhenItsOldFileCannotBecomeTheSpare() throws Exception {
        prepare("job-0000000000c1");
        Path dir = files.dirOf("job-0000000000c1");
        Files.deleteIfExists(dir.resolve(JobFiles.SPARE_RECORD));
        Files.createDirectories(dir.resolve(JobFiles.SPARE_RECORD).resolve("occupied"));
        files.writeRecord(job("job-0000000000c1", JobState.ACTIVE)); // no exception: it is saved
        assertEquals(JobState.ACTIVE, recorded("job-0000000000c1"));
        assertFalse(Files.exists(dir.resolve("job.json.old")));
        files.writeRecord(job("job-0000000000c1", JobState.COMPLETED));
        assertEquals(JobState.COMPLETED, recorded("job-0000000000c1"));
    }

    @Test
    void whenASpareCannotBeMovedIntoJobsTheIntakeMakesTheFolderItself() throws Exception {
        // jobs/ on another file system than spare-folders/ (a link to /dev/shm, a tmpfs): a
        // rename between them fails (EXDEV), and the job must still be added.
        Path elsewhere = Path.of("/dev/shm").resolve("blender-jobs-test-" + System.nanoTime());
        Files.createDirectories(elsewhere);
        try {
            Files.createSymbolicLink(state.resolve("jobs"), elsewhere);
            boolean otherStore = !Files.getFileStore(elsewhere).equals(Files.getFileStore(state));
            files.keepSpareFolders(1);
            awaitSpares(1);
            prepare("job-0000000000d1");
            assertEquals(JobState.QUEUED, recorded("job-0000000000d1"));
            assertTrue(Files.isRegularFile(elsewhere.resolve("job-0000000000d1/script.py")));
            if (otherStore) {
                assertFalse(Files.exists(state.resolve("spare-folders")), "spares are given up after a failed move");
                prepare("job-0000000000d2"); // and later jobs are made directly
                assertTrue(Files.isRegularFile(elsewhere.resolve("job-0000000000d2/job.json")));
            }
        } finally {
            dev.blenderjobs.io.PrivateFiles.deleteAll(elsewhere);
        }
    }

    @Test
    void sparesAnEarlierServerLeftAreDeletedAndCloseDeletesTheUntaken() throws Exception {
        Path leftover = state.resolve("spare-folders/old-1");
        Files.createDirectories(leftover.resolve("work"));
        Files.writeString(leftover.resolve("script.py"), "half");
        files.keepSpareFolders(3);
        assertFalse(Files.exists(leftover));
        awaitSpares(3);
        files.close();
        assertFalse(Files.exists(state.resolve("spare-folders")), "an untaken spare outlived the server");
    }

    private static Job withMessage(String id, JobState state, String progressMessage) {
        return new Job(id, spec(), state, 0.5, progressMessage, 1, 1000, 0, 0, null, List.of(), -1, null);
    }

    @Test
    void aRecordWrittenOverALongerOneKeepsNothingOfIt() throws Exception {
        // Records are written over the bytes of the record two states before (no O_TRUNC): what
        // was longer must be cut off, or the record would not parse.
        String id = "job-000000000010";
        prepare(id);
        Path dir = files.dirOf(id);
        files.writeRecord(withMessage(id, JobState.ACTIVE, "x".repeat(20_000)));
        files.writeRecord(withMessage(id, JobState.ACTIVE, "short"));
        Object longInode = inode(dir.resolve(JobFiles.SPARE_RECORD));
        files.writeRecord(withMessage(id, JobState.COMPLETED, null));
        assertEquals(longInode, inode(dir.resolve("job.json")), "written into the long record's inode");
        assertTrue(Files.size(dir.resolve("job.json")) < 2_000, "what the long record left was cut off");
        assertEquals(JobState.COMPLETED, recorded(id));
    }

    @Test
    void inputsWrittenIntoASpareHoldExactlyTheRequest() throws Exception {
        files.keepSpareFolders(1);
        awaitSpares(1);
        String id = "job-000000000011";
        String script = "python_data = {'text': '" + "é".repeat(5_000) + "'}";
        files.prepare(new JobRequest(spec(), script, PassedData.EMPTY, null, null, false, null, false),
                job(id, JobState.QUEUED));
        assertEquals(script, Files.readString(files.scriptOf(id)));
        assertEquals("{}", Files.readString(files.passedDataOf(id)));
    }

    @Test
    void aTornRecordIsReadAsTheRecordBeforeIt() throws Exception {
        // Without fsync a power cut may leave job.json a mix of two records (they are written
        // over an earlier record's bytes): the record before it is what can still be known.
        String id = "job-000000000012";
        prepare(id);
        Path dir = files.dirOf(id);
        files.writeRecord(job(id, JobState.ACTIVE));
        files.writeRecord(job(id, JobState.COMPLETED));
        String whole = Files.readString(dir.resolve("job.json"));
        Files.writeString(dir.resolve("job.json"), whole.substring(0, whole.length() / 2));
        org.junit.jupiter.api.Assertions.assertThrows(JobFiles.NotJson.class, () -> files.readRecordJson(id));
        assertEquals(JobState.ACTIVE, files.readEarlierRecord(id).state());
        // Another job's record beside it is not taken for this job's.
        prepare("job-000000000013");
        Path other = files.dirOf("job-000000000013");
        Files.writeString(other.resolve("job.json"), "{\"torn");
        Files.copy(dir.resolve(JobFiles.SPARE_RECORD), other.resolve("job.json.old"));
        org.junit.jupiter.api.Assertions.assertNull(files.readEarlierRecord("job-000000000013"));
    }
}
