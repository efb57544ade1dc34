package dev.blenderjobs.model;

import java.util.List;

/**
 * Why an attempt failed: a machine-readable kind plus what a person needs to fix it.
 *
 * @param attempt     the attempt that failed (1-based)
 * @param traceback   the script's Python traceback, for SCRIPT_ERROR and WORKER_ERROR
 * @param crashReport Blender's crash report, for BLENDER_CRASHED when it wrote one
 * @param logTail     the last console lines of the job when the attempt failed
 */
public record JobFailure(FailureKind kind, String message, int attempt, String traceback, String crashReport,
                         List<String> logTail) {

    public JobFailure {
        if (kind == null) throw new IllegalArgumentException("a failure needs a kind");
        logTail = logTail == null ? List.of() : List.copyOf(logTail);
    }

    /** A failure without traceback, crash report or log, e.g. one the server decides. */
    public static JobFailure of(FailureKind kind, String message, int attempt) {
        return new JobFailure(kind, message, attempt, null, null, List.of());
    }

    public JobFailure withLogTail(List<String> tail) {
        return new JobFailure(kind, message, attempt, traceback, crashReport, tail);
    }
}
