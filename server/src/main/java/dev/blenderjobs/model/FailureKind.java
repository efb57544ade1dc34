package dev.blenderjobs.model;

import java.util.Optional;

/**
 * Why an attempt failed, machine-readable. Documented in protocol.md ("Failure kinds"); the
 * worker runtime reports the kinds it can see itself (a closed set, checked by the channel codec).
 */
public enum FailureKind {
    /** The script raised an exception (the failure carries its Python traceback). */
    SCRIPT_ERROR,
    /** The script called sys.exit() with a non-zero code. */
    SCRIPT_EXITED,
    /** The attempt ran past the job's timeout and was killed. */
    TIMED_OUT,
    /** Blender died from a signal or wrote a crash report. */
    BLENDER_CRASHED,
    /** Blender exited without reporting a result (e.g. os._exit()). */
    BLENDER_EXITED,
    /** python_data or data_blocks could not be turned into JSON / a .blend library. */
    RESULT_NOT_SERIALIZABLE,
    /** The results could not be written to the job's directory (disk full, unwritable). */
    RESULT_WRITE_FAILED,
    /** The job's blendFile or passedDataBlocks could not be loaded. */
    SETUP_FAILED,
    /** No worker could be started (Blender fails at start-up). */
    WORKER_START_FAILED,
    /** The worker runtime itself failed; a bug in blender-jobs. */
    WORKER_ERROR,
    /**
     * The worker broke the channel protocol while running the job: a message of the wrong type or
     * shape, a result for another job, or results that are not what the runtime says it wrote.
     * The job's own script can do this (it runs in the worker's process); the worker is replaced.
     */
    PROTOCOL_VIOLATION,
    /** The server stopped or died while the job was queued or running; not the script's fault. */
    INTERRUPTED,
    /**
     * The worker running the job was lost with the machine or batch job it lived in: a cluster
     * node went down, its pilot job was cancelled by an administrator or reached its walltime.
     * Not the script's fault; retried (on another worker) when attempts remain.
     */
    WORKER_LOST;

    /** The kind named {@code name}, or empty when there is none: callers decide what that means. */
    public static Optional<FailureKind> named(String name) {
        for (FailureKind k : values()) {
            if (k.name().equals(name)) return Optional.of(k);
        }
        return Optional.empty();
    }
}
