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

    /** Longest traceback, message and crash report kept (in the table and the record): the end of a traceback, the start of the others. */
    public static final int MAX_DETAIL_CHARS = 64 * 1024;

    public JobFailure {
        if (kind == null) throw new IllegalArgumentException("a failure needs a kind");
        logTail = logTail == null ? List.of() : List.copyOf(logTail);
        // A finished job stays in the table (and its record) for days: what it keeps is bounded.
        message = head(message);
        crashReport = head(crashReport);
        if (traceback != null && traceback.length() > MAX_DETAIL_CHARS) {
            int cut = traceback.length() - MAX_DETAIL_CHARS;
            traceback = "(" + cut + " characters of the traceback cut; its end follows)\n" + traceback.substring(cut);
        }
    }

    private static String head(String s) {
        if (s == null || s.length() <= MAX_DETAIL_CHARS) return s;
        return s.substring(0, MAX_DETAIL_CHARS) + " ... (" + (s.length() - MAX_DETAIL_CHARS) + " characters cut)";
    }

    /** Longest message kept by {@link #summary}. */
    public static final int SUMMARY_MESSAGE_CHARS = 2048;

    /**
     * What the job table keeps of the failure of a job that finished a while ago: its kind,
     * attempt and the start of its message. The job's record on disk keeps the whole failure,
     * and getJob reads it from there.
     */
    public JobFailure summary() {
        String m = message == null || message.length() <= SUMMARY_MESSAGE_CHARS ? message
                : message.substring(0, SUMMARY_MESSAGE_CHARS) + " ...";
        return new JobFailure(kind, m, attempt, null, null, List.of());
    }

    /** As kept among a job's earlier errors: notifications and getJob show only the last 20 log lines of those. */
    public JobFailure asEarlierError() {
        return logTail.size() <= 20 ? this : withLogTail(logTail.subList(logTail.size() - 20, logTail.size()));
    }

    /** A failure without traceback, crash report or log, e.g. one the server decides. */
    public static JobFailure of(FailureKind kind, String message, int attempt) {
        return new JobFailure(kind, message, attempt, null, null, List.of());
    }

    public JobFailure withLogTail(List<String> tail) {
        return new JobFailure(kind, message, attempt, traceback, crashReport, tail);
    }
}
