package dev.blenderjobs.jobs;

import java.util.List;

/**
 * Why an attempt failed: a machine-readable kind plus what a person needs to fix it.
 *
 * @param traceback   the script's Python traceback, for SCRIPT_ERROR
 * @param crashReport Blender's crash report, for BLENDER_CRASHED when it wrote one
 * @param logTail     the last console lines of the attempt
 */
public record JobFailure(FailureKind kind, String message, int attempt, String traceback, String crashReport,
                         List<String> logTail) {
}
