package dev.blenderjobs.store;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.blenderjobs.io.PrivateFiles;
import dev.blenderjobs.jobs.JobEvents;
import dev.blenderjobs.jobs.JobFiles;
import dev.blenderjobs.jobs.JobManager;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobFailure;
import dev.blenderjobs.model.JobRequest;
import dev.blenderjobs.model.JobResult;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.RemovalReason;
import dev.blenderjobs.model.Timing;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.mockito.ArgumentCaptor;
import org.mockito.InOrder;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyDouble;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.argThat;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.ArgumentMatchers.isNull;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.inOrder;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.timeout;
import static org.mockito.Mockito.verify;

@Timeout(20)
class JobStoreTest {
    @TempDir
    Path state;

    private JobFiles files;
    private JobEvents downstream;
    private JobStore store;

    @BeforeEach
    void setUp() {
        files = new JobFiles(state);
        downstream = mock(JobEvents.class);
        store = new JobStore(downstream);
        store.bind(files);
    }

    private static JobSpec spec() {
        return new JobSpec("label", null, 0, 1, JobSpec.Isolation.WORKER, 0, null, null);
    }

    private String prepared(String id) throws Exception {
        return prepared(id, spec());
    }

    private String prepared(String id, JobSpec spec) throws Exception {
        Job first = new Job(id, spec, JobState.QUEUED, 0, null, 0, 1000, 0, 0, null, List.of(), -1, null);
        files.prepare(new JobRequest(spec, "python_data = {}", dev.blenderjobs.model.PassedData.EMPTY, null, null, false, null, false), first);
        return id;
    }

    private static Job job(String id, JobState state) {
        return job(id, spec(), state);
    }

    private static Job job(String id, JobSpec spec, JobState state) {
        return new Job(id, spec, state, 0.25, "halfway", 1, 1000, 1001, 0, null, List.of(), -1, null);
    }

    /** The record on disk, as the next server would read it. */
    private Job record(String id) throws Exception {
        return JobFiles.jobOf(id, files.readRecordJson(id));
    }

    @Test
    void aStateChangeIsWrittenBeforeItIsPassedOn() throws Exception {
        String id = prepared("job-000000000001");
        List<JobState> onDiskWhenTold = new ArrayList<>();
        doAnswer(inv -> {
            onDiskWhenTold.add(record(id).state());
            return null;
        }).when(downstream).stateChanged(any(), any());

        store.stateChanged(job(id, JobState.ACTIVE), JobState.QUEUED);
        store.stateChanged(job(id, JobState.COMPLETED), JobState.ACTIVE);
        store.close();

        // Each was told only once a record at least as new was on disk (the two may share a
        // batch, and then both follow the COMPLETED record).
        assertEquals(2, onDiskWhenTold.size());
        assertTrue(onDiskWhenTold.get(0) == JobState.ACTIVE || onDiskWhenTold.get(0) == JobState.COMPLETED,
                onDiskWhenTold.toString());
        assertEquals(JobState.COMPLETED, onDiskWhenTold.get(1));
        Job r = record(id);
        assertEquals("halfway", r.progressMessage());
        assertEquals(1001, r.startedAt());
        assertFalse(Files.exists(files.dirOf(id).resolve("job.json.tmp")));
    }

    @Test
    void aRecordIsTheWholeJobInFormat2AndReadsBackEqual() throws Exception {
        JobSpec spec = new JobSpec("render \"shot\" <1>", "/home/u/render.py", 2.5, 3, JobSpec.Isolation.PROCESS, 7,
                new JobSpec.PassedDataBlocks("/home/u/lib.blend",
                        JsonParser.parseString("{\"objects\": [\"Cube\"]}").getAsJsonObject()), "/home/u/scene.blend");
        String id = prepared("job-000000000007", spec);
        Timing timing = new Timing(0.5, 12.0, null, 1.25);
        Job done = new Job(id, spec, JobState.COMPLETED, 1.0, "done", 2, 1000, 1001, 2000, null,
                List.of(new JobFailure(FailureKind.SCRIPT_ERROR, "first try", 1, "Traceback...", null, List.of("x"))),
                4242, new JobResult(10, "ab".repeat(32), JsonParser.parseString("{\"objects\": [\"Cube\"]}")
                .getAsJsonObject(), timing));
        store.stateChanged(done, JobState.ACTIVE);
        store.close();

        JsonObject raw = files.readRecordJson(id);
        assertEquals(JobFiles.FORMAT, raw.get("format").getAsInt());
        assertEquals(2, JobFiles.FORMAT);
        assertTrue(raw.get("job").isJsonObject(), raw.toString());
        assertEquals(done, record(id), "every field survives a restart, the priority among them");
        assertEquals(7, record(id).spec().priority());
    }

    @Test
    void aFormat2RecordOfTheBuildBeforeReadsItsTimingAsFourNumbers() throws Exception {
        // The build before kept timing as the worker's JSON object: integers, and maybe not all
        // four stages. Its records are read as they are (an unknown name is ignored).
        String id = prepared("job-000000000008");
        Job done = new Job(id, spec(), JobState.COMPLETED, 1.0, null, 1, 1000, 1001, 2000, null, List.of(), 42,
                new JobResult(10, "ab".repeat(32), null, Timing.NONE));
        files.writeRecord(done);
        JsonObject raw = files.readRecordJson(id);
        JsonObject result = raw.getAsJsonObject("job").getAsJsonObject("result");

        result.add("timing", JsonParser.parseString("{\"setupMs\":5,\"scriptMs\":545.149,\"collectMs\":1.41,\"gcMs\":3}"));
        assertEquals(new Timing(5.0, 545.149, null, 1.41), JobFiles.jobOf(id, raw).result().timing());
        result.add("timing", new JsonObject());
        assertEquals(Timing.NONE, JobFiles.jobOf(id, raw).result().timing());
        result.remove("timing");
        assertNull(JobFiles.jobOf(id, raw).result().timing(), "getJob then shows no timing");
        assertEquals(10, JobFiles.jobOf(id, raw).result().pythonDataBytes());
    }

    @Test
    void progressKeepsItsPlaceBetweenStateChanges() throws Exception {
        String id = prepared("job-000000000002");
        store.stateChanged(job(id, JobState.ACTIVE), JobState.QUEUED);
        store.progress(id, 0.5, null, 1);
        store.stateChanged(job(id, JobState.COMPLETED), JobState.ACTIVE);
        store.close();
        InOrder order = inOrder(downstream);
        order.verify(downstream).stateChanged(any(), eq(JobState.QUEUED));
        order.verify(downstream).progress(eq(id), anyDouble(), isNull(), anyLong());
        order.verify(downstream).stateChanged(any(), eq(JobState.ACTIVE));
    }

    @Test
    void aBatchWritesEachJobsLatestRecordOnceAndPassesEveryEventOnInOrder() throws Exception {
        String id = prepared("job-000000000005");
        JobStore quiet = new JobStore(downstream);
        quiet.bind(files);
        List<JobState> onDiskWhenTold = new ArrayList<>();
        doAnswer(inv -> {
            onDiskWhenTold.add(record(id).state());
            return null;
        }).when(downstream).stateChanged(any(), any());

        quiet.commit(List.of(new JobStore.StateChanged(job(id, JobState.ACTIVE), JobState.QUEUED),
                new JobStore.Progress(id, 0.5, null, 1),
                new JobStore.StateChanged(job(id, JobState.COMPLETED), JobState.ACTIVE)));
        quiet.close();

        // Both were told after the COMPLETED record was on disk: never a word before its record.
        assertEquals(List.of(JobState.COMPLETED, JobState.COMPLETED), onDiskWhenTold);
        InOrder order = inOrder(downstream);
        order.verify(downstream).stateChanged(any(), eq(JobState.QUEUED));
        order.verify(downstream).progress(eq(id), anyDouble(), isNull(), anyLong());
        order.verify(downstream).stateChanged(any(), eq(JobState.ACTIVE));
    }

    @Test
    void theFirstQueuedRecordIsTheOneWrittenWithTheJobsFiles() throws Exception {
        String id = prepared("job-000000000006");
        Path record = files.dirOf(id).resolve("job.json");
        Files.setLastModifiedTime(record, java.nio.file.attribute.FileTime.fromMillis(1000));
        store.stateChanged(job(id, JobState.QUEUED), null);
        store.close();
        assertEquals(1000, Files.getLastModifiedTime(record).toMillis(), "not written again");
        verify(downstream).stateChanged(any(), isNull());
    }

    @Test
    void removedDeletesTheDirectoryAfterTheWritesBeforeIt() throws Exception {
        String id = prepared("job-000000000003");
        store.stateChanged(job(id, JobState.COMPLETED), JobState.ACTIVE);
        store.removed(id, RemovalReason.REMOVED);
        store.close();
        assertFalse(Files.exists(files.dirOf(id)), "a record written after the delete would revive the job");
        verify(downstream).removed(id, RemovalReason.REMOVED);
    }

    @Test
    void aFailedWriteIsLoggedAndTheClientIsStillTold() throws Exception {
        String id = prepared("job-000000000004");
        PrivateFiles.deleteRecursively(files.dirOf(id));
        store.stateChanged(job(id, JobState.COMPLETED), JobState.ACTIVE);
        store.close();
        verify(downstream).stateChanged(any(), eq(JobState.ACTIVE));
        assertFalse(Files.exists(files.dirOf(id)), "a write never recreates a removed job's directory");
    }

    @Test
    void anUnwrittenRecordIsToldOnceRetriedAndItsRecoveryToldWhenItIsOnDisk() throws Exception {
        String a = prepared("job-000000000005");
        String b = prepared("job-000000000006");
        // A directory where the record's temporary file goes: every write of a's record fails.
        Path blocker = files.dirOf(a).resolve("job.json.tmp");
        Files.createDirectories(blocker.resolve("occupied"));
        store.stateChanged(job(a, JobState.ACTIVE), JobState.QUEUED);
        store.stateChanged(job(a, JobState.COMPLETED), JobState.ACTIVE);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.state() == JobState.COMPLETED), eq(JobState.ACTIVE));
        ArgumentCaptor<String> said = ArgumentCaptor.forClass(String.class);
        verify(downstream).recordsNotSaved(said.capture());
        assertTrue(said.getValue().contains(a) && said.getValue().contains("writable and its disk is not full"),
                said.getValue());
        // A later batch (b's record is written, a's retry fails again): no second message, no recovery.
        store.stateChanged(job(b, JobState.ACTIVE), JobState.QUEUED);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.jobId().equals(b)), eq(JobState.QUEUED));
        verify(downstream, never()).recordsSavedAgain(any());
        assertEquals(JobState.QUEUED, record(a).state(), "a's COMPLETED is not on disk yet");

        // The disk is free again: the next retry (at most RETRY_SECONDS later) writes a's
        // latest record, and the client hears that everything is saved.
        PrivateFiles.deleteRecursively(blocker);
        verify(downstream, timeout((JobStore.RETRY_SECONDS + 5) * 1000L)).recordsSavedAgain(any());
        assertEquals(JobState.COMPLETED, record(a).state());
        verify(downstream).recordsNotSaved(any());
    }

    @Test
    void aJobWhoseDirectoryIsGoneIsToldOnceAndDoesNotSilenceLaterWarnings() throws Exception {
        // Issue 10, item 14: a record that can never be written (its directory was deleted) kept
        // the "not saved" spell open forever, so a later job's failed write was never told.
        String gone = prepared("job-0000000000a1");
        String later = prepared("job-0000000000a2");
        PrivateFiles.deleteRecursively(files.dirOf(gone));
        store.stateChanged(job(gone, JobState.ACTIVE), JobState.QUEUED);
        store.stateChanged(job(gone, JobState.FAILED), JobState.ACTIVE);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.state() == JobState.FAILED), eq(JobState.ACTIVE));
        ArgumentCaptor<String> goneMessage = ArgumentCaptor.forClass(String.class);
        verify(downstream).warning(eq("JOB_FILES_GONE"), goneMessage.capture());
        assertTrue(goneMessage.getValue().contains(gone) && goneMessage.getValue().contains("was deleted"),
                goneMessage.getValue());
        verify(downstream, never()).recordsNotSaved(any());

        Files.createDirectories(files.dirOf(later).resolve("job.json.tmp").resolve("occupied"));
        store.stateChanged(job(later, JobState.ACTIVE), JobState.QUEUED);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.jobId().equals(later)), eq(JobState.QUEUED));
        ArgumentCaptor<String> notSaved = ArgumentCaptor.forClass(String.class);
        verify(downstream).recordsNotSaved(notSaved.capture());
        assertTrue(notSaved.getValue().contains(later), notSaved.getValue());
        PrivateFiles.deleteRecursively(files.dirOf(later).resolve("job.json.tmp"));
        verify(downstream, timeout((JobStore.RETRY_SECONDS + 5) * 1000L)).recordsSavedAgain(any());
        assertEquals(JobState.ACTIVE, record(later).state());
        verify(downstream).warning(eq("JOB_FILES_GONE"), any()); // once, not at every retry
    }

    @Test
    void eachJobWhoseRecordNewlyFailsIsToldByName() throws Exception {
        String a = prepared("job-0000000000b1");
        String b = prepared("job-0000000000b2");
        Files.createDirectories(files.dirOf(a).resolve("job.json.tmp").resolve("occupied"));
        Files.createDirectories(files.dirOf(b).resolve("job.json.tmp").resolve("occupied"));
        store.stateChanged(job(a, JobState.ACTIVE), JobState.QUEUED);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.jobId().equals(a)), eq(JobState.QUEUED));
        store.stateChanged(job(b, JobState.ACTIVE), JobState.QUEUED);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.jobId().equals(b)), eq(JobState.QUEUED));
        store.stateChanged(job(b, JobState.COMPLETED), JobState.ACTIVE);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.jobId().equals(b)), eq(JobState.ACTIVE));
        ArgumentCaptor<String> said = ArgumentCaptor.forClass(String.class);
        verify(downstream, org.mockito.Mockito.times(2)).recordsNotSaved(said.capture());
        assertTrue(said.getAllValues().get(0).contains(a), said.getAllValues().toString());
        assertTrue(said.getAllValues().get(1).contains(b), said.getAllValues().toString());
        store.close();
    }

    @Test
    void aRemovedJobsDirectoryLeavesTheJobsFolderAtOnceEvenWhenItCannotAllBeDeleted() throws Exception {
        // Issue 10, item 12: the removal is the rename to a tombstone, which a restarted
        // server ignores and cleans; what cannot be deleted stays there, and the caller is told.
        String id = prepared("job-0000000000c1");
        Path sub = files.dirOf(id).resolve("work/sub");
        Files.createDirectories(sub);
        Files.writeString(sub.resolve("kept.txt"), "x");
        Files.setPosixFilePermissions(sub, java.nio.file.attribute.PosixFilePermissions.fromString("---------"));
        String left = store.removing(id, RemovalReason.REMOVED).get(5, java.util.concurrent.TimeUnit.SECONDS);
        assertNull(left, "a folder its job made unreadable is opened and deleted: " + left);
        assertFalse(Files.exists(files.dirOf(id)));
        try (var rest = Files.list(state.resolve("jobs"))) {
            assertEquals(List.of(), rest.toList());
        }
        verify(downstream).removed(id, RemovalReason.REMOVED);
        assertEquals(List.of(), store.loadAll(files).jobs());
    }

    @Test
    void aRecordTooLargeToBeOneIsSkippedAndReportedWithoutReadingIt() throws Exception {
        // Issue 10, item 13: a 1 GB (sparse) job.json took the heap and initialize with it.
        String ok = prepared("job-0000000000d1");
        Path big = files.dirOf(prepared("job-0000000000d2")).resolve("job.json");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(big.toFile(), "rw")) {
            f.setLength(1L << 30);
        }
        Path link = files.dirOf(prepared("job-0000000000d3")).resolve("job.json");
        Files.delete(link);
        Files.createSymbolicLink(link, Path.of("/dev/zero"));
        JobStore.Loaded loaded = store.loadAll(files);
        assertEquals(List.of(ok), loaded.jobs().stream().map(r -> r.job().jobId()).toList());
        assertEquals(2, loaded.unreadable().size(), loaded.unreadable().toString());
        String all = String.join("\n", loaded.unreadable());
        assertTrue(all.contains("job-0000000000d2") && all.contains("a record is at most"), all);
        assertTrue(all.contains("job-0000000000d3") && all.contains("symbolic link"), all);
        assertTrue(Files.exists(big), "left in place for a person");
    }

    @Test
    void loadListsReadableJobsAndSaysWhyItSkipsTheOthers() throws Exception {
        String finished = prepared("job-0000000000a1");
        files.writeRecord(job(finished, JobState.COMPLETED));
        // A finished job needs no inputs: it is listed without them.
        Files.delete(files.scriptOf(finished));
        Files.delete(files.passedDataOf(finished));
        String interrupted = prepared("job-0000000000a2");
        Files.writeString(files.dirOf(interrupted).resolve("job.json.tmp"), "{\"half");
        String inputsGone = prepared("job-0000000000a5");
        files.writeRecord(job(inputsGone, JobState.ACTIVE));
        Files.delete(files.passedDataOf(inputsGone));
        String garbled = prepared("job-0000000000a3");
        Files.writeString(files.dirOf(garbled).resolve("job.json"), "{\"format\": 2, \"job\": {\"jobId\": \"job-0000");
        String future = prepared("job-0000000000a6");
        Files.writeString(files.dirOf(future).resolve("job.json"), "{\"format\": 3, \"job\": {}}");
        String neverAnswered = prepared("job-0000000000a4");
        Files.delete(files.dirOf(neverAnswered).resolve("job.json")); // died before the record
        Files.createDirectories(state.resolve("jobs/not-a-job"));

        List<JobManager.Recovered> found = store.load(files);

        assertEquals(List.of(finished, interrupted, inputsGone),
                found.stream().map(r -> r.job().jobId()).sorted().toList());
        JobManager.Recovered f = found(found, finished);
        assertEquals(JobState.COMPLETED, f.job().state());
        assertTrue(f.resumable(), "a finished job is never failed for its missing inputs");
        JobManager.Recovered i = found(found, interrupted);
        assertEquals(JobState.QUEUED, i.job().state());
        assertEquals(spec(), i.job().spec());
        assertTrue(i.resumable(), "its inputs are all there");
        assertEquals("python_data = {}", Files.readString(files.scriptOf(interrupted)));
        assertFalse(found(found, inputsGone).resumable(), "passed_data.json is gone");
        assertFalse(Files.exists(files.dirOf(interrupted).resolve("job.json.tmp")));
        assertTrue(Files.exists(files.dirOf(garbled)), "an unreadable job is left for a person to look at");
        assertTrue(Files.exists(files.dirOf(future)), "a record of an unknown format is left as it is");
        assertEquals("{\"format\": 3, \"job\": {}}", Files.readString(files.dirOf(future).resolve("job.json")));
        assertFalse(Files.exists(files.dirOf(neverAnswered)), "an addJob that never answered leaves nothing");
        assertTrue(Files.isDirectory(state.resolve("jobs/not-a-job")), "only job directories are touched");
    }

    private static JobManager.Recovered found(List<JobManager.Recovered> found, String id) {
        return found.stream().filter(r -> r.job().jobId().equals(id)).findFirst().orElseThrow();
    }

    // ------------------------------------------------------------------ records of blender-jobs 0.1.0 (format 1)

    /** A job directory as blender-jobs 0.1.0 left it: script.py, spec.json, job.json (flat), input/, result/. */
    private Path legacyDir(String id, String script, String specJson, String jobJson) throws Exception {
        Path dir = files.dirOf(id);
        Files.createDirectories(dir.resolve("input"));
        Files.createDirectories(dir.resolve("work"));
        Files.createDirectories(dir.resolve("result"));
        Files.writeString(dir.resolve("script.py"), script, StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("spec.json"), specJson, StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("job.json"), jobJson, StandardCharsets.UTF_8);
        return dir;
    }

    @Test
    void aCompletedFormat1RecordIsConvertedWithItsResultAndHistory() throws Exception {
        String id = "job-0000000000c1";
        Path dataBlocks = files.dataBlocksOf(id);
        // Written as 0.1.0's Gson wrote them: nulls left out.
        Path dir = legacyDir(id, "import bpy\n",
                "{\"format\":1,\"name\":\"old render\",\"scriptPath\":\"/home/u/render.py\",\"timeoutSeconds\":60.0,"
                        + "\"passedData\":{\"frame\":7},\"passedNames\":{\"objects\":[\"Cube\"]},\"maxAttempts\":3,"
                        + "\"freshProcess\":true}",
                "{\"format\":1,\"id\":\"" + id + "\",\"name\":\"old render\",\"script\":\"/home/u/render.py\","
                        + "\"state\":\"COMPLETED\",\"progress\":1.0,\"progressMessage\":\"done\",\"attempt\":2,"
                        + "\"maxAttempts\":3,\"timeoutSeconds\":60.0,\"createdAt\":1000,\"startedAt\":1001,"
                        + "\"finishedAt\":1500,\"earlierFailures\":[{\"kind\":\"SCRIPT_ERROR\",\"message\":\"first try\","
                        + "\"attempt\":1,\"traceback\":\"Traceback (most recent call last): ...\",\"logTail\":[\"x\"]}],"
                        + "\"pythonDataBytes\":10,\"dataBlocks\":{\"library\":\"" + dataBlocks
                        + "\",\"blocks\":{\"objects\":[\"Cube\"]}},\"timing\":{\"scriptMs\":12}}");
        Files.write(dir.resolve("input/passed.blend"), "BLENDER-v300".getBytes(StandardCharsets.US_ASCII));
        Files.writeString(files.pythonDataOf(id), "{\"size\":3}");

        List<JobManager.Recovered> found = store.load(files);

        assertEquals(1, found.size());
        assertTrue(found.get(0).resumable());
        Job job = found.get(0).job();
        assertEquals(id, job.jobId());
        assertEquals(JobState.COMPLETED, job.state());
        assertEquals(1.0, job.progress());
        assertEquals("done", job.progressMessage());
        assertEquals(2, job.attempt());
        assertEquals(1000, job.createdAt());
        assertEquals(1001, job.startedAt());
        assertEquals(1500, job.finishedAt());
        assertNull(job.error());
        assertEquals(List.of(new JobFailure(FailureKind.SCRIPT_ERROR, "first try", 1,
                "Traceback (most recent call last): ...", null, List.of("x"))), job.earlierErrors());
        JobSpec spec = job.spec();
        assertEquals("old render", spec.name());
        assertEquals("/home/u/render.py", spec.script());
        assertEquals(60.0, spec.timeout());
        assertEquals(3, spec.maxAttempts());
        assertEquals(JobSpec.Isolation.PROCESS, spec.isolation());
        assertEquals(0, spec.priority(), "0.1.0 had no priorities: the default");
        assertEquals(JsonParser.parseString("{\"objects\":[\"Cube\"]}"), spec.passedDataBlocks().names());
        assertNull(spec.blendFile());
        JobResult result = job.result();
        assertEquals(10, result.pythonDataBytes());
        assertNull(result.pythonDataSha256(), "0.1.0 kept no checksum");
        assertEquals(JsonParser.parseString("{\"objects\":[\"Cube\"]}"), result.dataBlocks());
        assertEquals(12, result.timing().scriptMs().intValue());

        // Rewritten in place as format 2; spec.json is gone, and the next start reads the new record.
        JsonObject raw = files.readRecordJson(id);
        assertEquals(JobFiles.FORMAT, raw.get("format").getAsInt());
        assertEquals(job, JobFiles.jobOf(id, raw));
        assertFalse(Files.exists(dir.resolve("spec.json")));
        assertEquals(List.of(job), store.load(files).stream().map(JobManager.Recovered::job).toList());
    }

    @Test
    void anInterruptedFormat1RecordIsConvertedAndCanBeResumed() throws Exception {
        String id = "job-0000000000c2";
        Path dir = legacyDir(id, "python_data = {'size': size}",
                "{\"format\":1,\"timeoutSeconds\":0.0,\"passedData\":{\"size\":3},\"maxAttempts\":2,"
                        + "\"freshProcess\":false}",
                "{\"format\":1,\"id\":\"" + id + "\",\"script\":\"<scriptText>\",\"state\":\"INTERRUPTED\","
                        + "\"progress\":0.5,\"attempt\":1,\"maxAttempts\":2,\"timeoutSeconds\":0.0,\"createdAt\":1000,"
                        + "\"startedAt\":1001,\"finishedAt\":1200,\"failure\":{\"kind\":\"INTERRUPTED\","
                        + "\"message\":\"The job was interrupted while attempt 1 was running: the client sent shutdown.\","
                        + "\"attempt\":1,\"logTail\":[]},\"earlierFailures\":[]}");
        assertFalse(Files.exists(files.passedDataOf(id)), "0.1.0 kept passedData in spec.json");

        List<JobManager.Recovered> found = store.load(files);

        assertEquals(1, found.size());
        JobManager.Recovered r = found.get(0);
        assertTrue(r.resumable(), "its inputs are all there after the conversion");
        Job job = r.job();
        assertEquals(JobState.INTERRUPTED, job.state());
        assertEquals(FailureKind.INTERRUPTED, job.error().kind());
        assertTrue(job.error().message().contains("the client sent shutdown"), job.error().message());
        assertEquals(1, job.attempt());
        assertNull(job.name());
        assertNull(job.spec().script(), "a scriptText job has no script path");
        assertEquals(0.0, job.spec().timeout());
        assertEquals(2, job.spec().maxAttempts());
        assertEquals(JobSpec.Isolation.WORKER, job.spec().isolation());
        assertNull(job.spec().passedDataBlocks());
        assertNull(job.result());

        assertEquals(JsonParser.parseString("{\"size\":3}"),
                JsonParser.parseString(Files.readString(files.passedDataOf(id))), "passedData moved to its own file");
        assertEquals(JobFiles.FORMAT, files.readRecordJson(id).get("format").getAsInt());
        assertEquals(job, record(id));
        assertFalse(Files.exists(dir.resolve("spec.json")));
        assertTrue(files.hasInputs(job));
    }

    @Test
    void aTornRecordIsListedAsTheRecordBeforeItAndOtherUnreadableOnesAreNot() throws Exception {
        String torn = prepared("job-0000000000e1");
        files.writeRecord(job(torn, JobState.ACTIVE));
        files.writeRecord(job(torn, JobState.COMPLETED));
        String whole = Files.readString(files.dirOf(torn).resolve("job.json"));
        Files.writeString(files.dirOf(torn).resolve("job.json"), whole.substring(0, whole.length() / 2));
        String future = prepared("job-0000000000e2");
        files.writeRecord(job(future, JobState.ACTIVE));
        Files.writeString(files.dirOf(future).resolve("job.json"), "{\"format\": 3, \"job\": {}}");

        JobStore.Loaded loaded = store.loadAll(files);

        assertEquals(List.of(torn), loaded.jobs().stream().map(r -> r.job().jobId()).toList());
        assertEquals(JobState.ACTIVE, loaded.jobs().get(0).job().state(), "the record before the torn one");
        assertTrue(loaded.jobs().get(0).resumable());
        assertEquals(1, loaded.unreadable().size(), loaded.unreadable().toString());
        assertTrue(loaded.unreadable().get(0).contains(future), "a record of another format is never replaced by an "
                + "older one: " + loaded.unreadable());
    }
}
