package dev.blenderjobs.store;

import com.google.gson.JsonObject;
import dev.blenderjobs.jobs.JobEvents;
import dev.blenderjobs.jobs.JobFiles;
import dev.blenderjobs.jobs.JobManager;
import dev.blenderjobs.jobs.JobRecord;
import dev.blenderjobs.jobs.JobSpec;
import dev.blenderjobs.jobs.JobState;
import dev.blenderjobs.jobs.JobView;
import dev.blenderjobs.jobs.RemovalReason;
import dev.blenderjobs.workers.JobLog;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.mockito.InOrder;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyDouble;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.ArgumentMatchers.isNull;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.inOrder;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.verify;
import org.mockito.ArgumentCaptor;
import static org.mockito.ArgumentMatchers.argThat;
import static org.mockito.Mockito.timeout;
import static org.mockito.Mockito.never;

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
        return new JobSpec("label", null, "python_data = {}", 0, new JsonObject(), null, null, null, 1, false, false,
                null);
    }

    private String prepared(String id) throws Exception {
        files.prepare(id, spec(), 1000);
        return id;
    }

    private JobView view(String id, JobState state) {
        return new JobView(id, "label", "<scriptText>", state, 0.25, "halfway", 1, 1, 0, 1000, 1001, 0, null, List.of(),
                -1, null, 0, null, null, files.dirOf(id), new JobLog(files.logOf(id), 10), null);
    }

    @Test
    void aStateChangeIsWrittenBeforeItIsPassedOn() throws Exception {
        String id = prepared("job-000000000001");
        List<JobState> onDiskWhenTold = new ArrayList<>();
        doAnswer(inv -> {
            onDiskWhenTold.add(files.readRecord(id).state());
            return null;
        }).when(downstream).stateChanged(any(), any());

        store.stateChanged(view(id, JobState.ACTIVE), JobState.QUEUED);
        store.stateChanged(view(id, JobState.COMPLETED), JobState.ACTIVE);
        store.close();

        // Each was told only once a record at least as new was on disk (the two may share a
        // batch, and then both follow the COMPLETED record).
        assertEquals(2, onDiskWhenTold.size());
        assertTrue(onDiskWhenTold.get(0) == JobState.ACTIVE || onDiskWhenTold.get(0) == JobState.COMPLETED,
                onDiskWhenTold.toString());
        assertEquals(JobState.COMPLETED, onDiskWhenTold.get(1));
        JobRecord r = files.readRecord(id);
        assertEquals("halfway", r.progressMessage());
        assertEquals(1001, r.startedAt());
        assertFalse(Files.exists(files.dirOf(id).resolve("job.json.tmp")));
    }

    @Test
    void progressKeepsItsPlaceBetweenStateChanges() throws Exception {
        String id = prepared("job-000000000002");
        store.stateChanged(view(id, JobState.ACTIVE), JobState.QUEUED);
        store.progress(id, 0.5, null, 1);
        store.stateChanged(view(id, JobState.COMPLETED), JobState.ACTIVE);
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
            onDiskWhenTold.add(files.readRecord(id).state());
            return null;
        }).when(downstream).stateChanged(any(), any());

        quiet.commit(List.of(new JobStore.StateChanged(view(id, JobState.ACTIVE), JobState.QUEUED),
                new JobStore.Progress(id, 0.5, null, 1),
                new JobStore.StateChanged(view(id, JobState.COMPLETED), JobState.ACTIVE)));
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
        store.stateChanged(view(id, JobState.QUEUED), null);
        store.close();
        assertEquals(1000, Files.getLastModifiedTime(record).toMillis(), "not written again");
        verify(downstream).stateChanged(any(), isNull());
    }

    @Test
    void removedDeletesTheDirectoryAfterTheWritesBeforeIt() throws Exception {
        String id = prepared("job-000000000003");
        store.stateChanged(view(id, JobState.COMPLETED), JobState.ACTIVE);
        store.removed(id, RemovalReason.REMOVED);
        store.close();
        assertFalse(Files.exists(files.dirOf(id)), "a record written after the delete would revive the job");
        verify(downstream).removed(id, RemovalReason.REMOVED);
    }

    @Test
    void aFailedWriteIsLoggedAndTheClientIsStillTold() throws Exception {
        String id = prepared("job-000000000004");
        JobFiles.deleteRecursively(files.dirOf(id));
        store.stateChanged(view(id, JobState.COMPLETED), JobState.ACTIVE);
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
        store.stateChanged(view(a, JobState.ACTIVE), JobState.QUEUED);
        store.stateChanged(view(a, JobState.COMPLETED), JobState.ACTIVE);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.state() == JobState.COMPLETED), eq(JobState.ACTIVE));
        ArgumentCaptor<String> said = ArgumentCaptor.forClass(String.class);
        verify(downstream).recordsNotSaved(said.capture());
        assertTrue(said.getValue().contains(a) && said.getValue().contains("writable and its disk is not full"),
                said.getValue());
        // A later batch (b's record is written, a's retry fails again): no second message, no recovery.
        store.stateChanged(view(b, JobState.ACTIVE), JobState.QUEUED);
        verify(downstream, timeout(5000)).stateChanged(argThat(v -> v.id().equals(b)), eq(JobState.QUEUED));
        verify(downstream, never()).recordsSavedAgain(any());
        assertEquals(JobState.QUEUED, files.readRecord(a).state(), "a's COMPLETED is not on disk yet");

        // The disk is free again: the next retry (at most RETRY_SECONDS later) writes a's
        // latest record, and the client hears that everything is saved.
        JobFiles.deleteRecursively(blocker);
        verify(downstream, timeout((JobStore.RETRY_SECONDS + 5) * 1000L)).recordsSavedAgain(any());
        assertEquals(JobState.COMPLETED, files.readRecord(a).state());
        verify(downstream).recordsNotSaved(any());
    }

    @Test
    void loadListsReadableJobsAndSaysWhyItSkipsTheOthers() throws Exception {
        String finished = prepared("job-0000000000a1");
        files.writeRecord(JobRecord.of(view(finished, JobState.COMPLETED)));
        String interrupted = prepared("job-0000000000a2");
        Files.writeString(files.dirOf(interrupted).resolve("job.json.tmp"), "{\"half");
        String garbled = prepared("job-0000000000a3");
        Files.writeString(files.dirOf(garbled).resolve("job.json"), "{\"format\": 1, \"id\": \"job-0000");
        String neverAnswered = "job-0000000000a4";
        files.prepare(neverAnswered, spec(), 1000);
        Files.delete(files.dirOf(neverAnswered).resolve("job.json")); // died before the record
        Files.createDirectories(state.resolve("jobs/not-a-job"));

        List<JobManager.Recovered> found = store.load(files);

        assertEquals(List.of(finished, interrupted), found.stream().map(r -> r.record().id()).sorted().toList());
        JobManager.Recovered f = found.stream().filter(r -> r.record().id().equals(finished)).findFirst().orElseThrow();
        assertNull(f.spec(), "a finished job needs no inputs");
        JobManager.Recovered i = found.stream().filter(r -> r.record().id().equals(interrupted)).findFirst().orElseThrow();
        assertNotNull(i.spec());
        assertEquals("python_data = {}", i.spec().scriptSource());
        assertFalse(Files.exists(files.dirOf(interrupted).resolve("job.json.tmp")));
        assertTrue(Files.exists(files.dirOf(garbled)), "an unreadable job is left for a person to look at");
        assertFalse(Files.exists(files.dirOf(neverAnswered)), "an addJob that never answered leaves nothing");
        assertTrue(Files.isDirectory(state.resolve("jobs/not-a-job")), "only job directories are touched");
    }
}
