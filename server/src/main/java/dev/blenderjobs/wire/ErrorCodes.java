package dev.blenderjobs.wire;

import dev.blenderjobs.jobs.JobException;

/**
 * Application error codes of the wire (protocol.md, "Errors"). JSON-RPC's own codes
 * (-32700..-32600) and LSP's ServerNotInitialized (-32002) keep their meaning; the
 * application codes are positive so they never collide with reserved ranges.
 */
public final class ErrorCodes {
    public static final int PARSE_ERROR = -32700;
    public static final int INVALID_REQUEST = -32600;
    public static final int METHOD_NOT_FOUND = -32601;
    public static final int INVALID_PARAMS = -32602;
    public static final int INTERNAL_ERROR = -32603;
    public static final int SERVER_NOT_INITIALIZED = -32002;

    public static final int JOB_NOT_FOUND = 1001;
    public static final int JOB_NOT_FINISHED = 1002;
    public static final int JOB_FAILED = 1003;
    public static final int JOB_CANCELED = 1004;
    public static final int JOB_NOT_REMOVABLE = 1005;
    public static final int JOB_INTERRUPTED = 1006;
    public static final int JOB_NOT_RESUMABLE = 1007;
    public static final int BLENDER_UNAVAILABLE = 1010;
    public static final int SHUTTING_DOWN = 1011;
    public static final int JOB_FILES_UNAVAILABLE = 1012;
    public static final int RESULT_DAMAGED = 1013;

    private ErrorCodes() {
    }

    public static int of(JobException.Reason reason) {
        return switch (reason) {
            case JOB_NOT_FOUND -> JOB_NOT_FOUND;
            case JOB_NOT_FINISHED -> JOB_NOT_FINISHED;
            case JOB_FAILED -> JOB_FAILED;
            case JOB_CANCELED -> JOB_CANCELED;
            case JOB_NOT_REMOVABLE -> JOB_NOT_REMOVABLE;
            case JOB_INTERRUPTED -> JOB_INTERRUPTED;
            case JOB_NOT_RESUMABLE -> JOB_NOT_RESUMABLE;
            case BLENDER_UNAVAILABLE -> BLENDER_UNAVAILABLE;
            case SHUTTING_DOWN -> SHUTTING_DOWN;
            case JOB_FILES_UNAVAILABLE -> JOB_FILES_UNAVAILABLE;
            case RESULT_DAMAGED -> RESULT_DAMAGED;
        };
    }
}
