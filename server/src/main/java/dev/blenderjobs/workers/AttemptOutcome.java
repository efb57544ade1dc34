package dev.blenderjobs.workers;

import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.JobResult;

/** How one attempt of a job ended, as the pool reports it. */
public sealed interface AttemptOutcome {

    /** The script finished; its results were written and checked. */
    record Succeeded(JobResult result, long workerPid) implements AttemptOutcome {
    }

    /**
     * The attempt failed.
     *
     * @param traceback   the script's traceback (SCRIPT_ERROR, WORKER_ERROR)
     * @param crashReport Blender's crash report, when it wrote one
     */
    record Failed(FailureKind kind, String message, String traceback, String crashReport) implements AttemptOutcome {
    }
}
