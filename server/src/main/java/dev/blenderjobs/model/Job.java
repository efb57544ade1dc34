package dev.blenderjobs.model;

import java.util.List;

/**
 * One job as it is at one moment: the immutable snapshot the job manager hands out. The same
 * record is the job's durable record ({@code job.json}), the source of every wire view
 * ({@code getJob}, {@code listJobs}, notifications), and what the worker is given to run.
 * Times are epoch milliseconds, 0 when not reached.
 *
 * @param attempt       attempts started so far (0 = never ran)
 * @param error         why the job FAILED or was INTERRUPTED; null in other states
 * @param earlierErrors failures of attempts that were retried, and interruptions of a resumed job
 * @param workerPid     the Blender that ran (or runs) the latest attempt, or -1
 * @param result        what the job left, when COMPLETED; else null
 */
public record Job(String jobId, JobSpec spec, JobState state, double progress, String progressMessage,
                  int attempt, long createdAt, long startedAt, long finishedAt, JobFailure error,
                  List<JobFailure> earlierErrors, long workerPid, JobResult result) {

    public Job {
        earlierErrors = earlierErrors == null ? List.of() : List.copyOf(earlierErrors);
    }

    public String name() {
        return spec.name();
    }

    /** Run time of the job so far (or in all), in ms: from its first start to its end or now. */
    public long elapsedMs(long now) {
        if (startedAt == 0) return 0;
        long end = finishedAt != 0 ? finishedAt : now;
        return Math.max(0, end - startedAt);
    }
}
