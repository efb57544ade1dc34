package dev.blenderjobs.jobs;

/** A request about jobs that cannot be served; the wire maps the reason to an error code. */
public final class JobException extends RuntimeException {

    /** Stable reasons; protocol.md lists their codes. */
    public enum Reason { JOB_NOT_FOUND, JOB_NOT_FINISHED, JOB_FAILED, JOB_CANCELED, JOB_NOT_REMOVABLE,
        BLENDER_UNAVAILABLE, SHUTTING_DOWN, JOB_FILES_UNAVAILABLE, JOB_INTERRUPTED, JOB_NOT_RESUMABLE, RESULT_DAMAGED }

    private final Reason reason;
    private final transient Object data;

    public JobException(Reason reason, String message, Object data) {
        super(message);
        this.reason = reason;
        this.data = data;
    }

    public Reason reason() {
        return reason;
    }

    /** Extra machine-readable detail for the error's data field (e.g. the job's failure). */
    public Object data() {
        return data;
    }
}
