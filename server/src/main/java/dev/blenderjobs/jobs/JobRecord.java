package dev.blenderjobs.jobs;

import com.google.gson.JsonObject;

import java.util.List;

/**
 * The durable form of a job's state: what {@code job.json} in the job's directory holds. It is
 * rewritten (atomically) on every state change, never on progress, and a restarted server
 * rebuilds its job table from these records. The job's inputs live beside it in
 * {@code spec.json} (see {@link JobFiles}), written once when the job is added.
 *
 * @param format          {@link #FORMAT}; a record of another format is not read
 * @param script          the label shown as the job's script (its path, or {@code <scriptText>})
 * @param failure         why the job FAILED or was INTERRUPTED; null otherwise
 * @param pythonDataBytes size of result/python_data.json when COMPLETED, else null
 * @param dataBlocks      {"library", "blocks"} when the job left data blocks, else null
 */
public record JobRecord(int format, String id, String name, String script, JobState state, double progress,
                        String progressMessage, int attempt, int maxAttempts, double timeoutSeconds,
                        long createdAt, long startedAt, long finishedAt, JobFailure failure,
                        List<JobFailure> earlierFailures, Long pythonDataBytes, JsonObject dataBlocks,
                        JsonObject timing) {

    public static final int FORMAT = 1;

    /** The record of a snapshot; live-only details (worker pid, log buffer, token) are left out. */
    public static JobRecord of(JobView v) {
        return new JobRecord(FORMAT, v.id(), v.name(), v.script(), v.state(), v.progress(), v.progressMessage(),
                v.attempt(), v.maxAttempts(), v.timeoutSeconds(), v.createdAt(), v.startedAt(), v.finishedAt(),
                v.state().carriesError() ? v.failure() : null, v.earlierFailures(),
                v.pythonDataFile() == null ? null : v.pythonDataBytes(), v.dataBlocks(), v.timing());
    }

    /** The first record of a job, written before addJob answers so that no accepted job is lost. */
    public static JobRecord queued(String id, JobSpec spec, long createdAt) {
        return new JobRecord(FORMAT, id, spec.name(), scriptLabel(spec), JobState.QUEUED, 0, null, 0,
                spec.maxAttempts(), spec.timeoutSeconds(), createdAt, 0, 0, null, List.of(), null, null, null);
    }

    static String scriptLabel(JobSpec spec) {
        return spec.scriptPath() != null ? spec.scriptPath().toString() : "<scriptText>";
    }
}
