package dev.blenderjobs.wire;

import com.google.gson.JsonElement;
import com.google.gson.JsonPrimitive;

import java.util.HashSet;
import java.util.Set;

/**
 * The jobs reported as LSP work-done progress on a token the server created for them
 * ({@code addJob} with {@code "workDoneProgress": true}): a wire concern, so it lives here and
 * not in the job model. A job is opened by the intake before it is queued (so its first
 * notification already knows it) and closed when its progress has ended, or the client refused
 * the token. The token is {@code "blender-jobs/<jobId>"}, so it is unique and names its job.
 * Shared by the endpoint (intake, cancel) and the notifier thread, hence synchronized.
 */
final class WorkDoneTokens {
    static final String PREFIX = "blender-jobs/";

    private final Set<String> open = new HashSet<>();

    static JsonPrimitive tokenOf(String jobId) {
        return new JsonPrimitive(PREFIX + jobId);
    }

    /** The job will be reported on its own token. */
    synchronized void open(String jobId) {
        open.add(jobId);
    }

    synchronized boolean isOpen(String jobId) {
        return open.contains(jobId);
    }

    /** The job of a token the server created and still reports on, or null. */
    synchronized String jobOf(JsonElement token) {
        if (token == null || !token.isJsonPrimitive() || !token.getAsJsonPrimitive().isString()) return null;
        String t = token.getAsString();
        if (!t.startsWith(PREFIX)) return null;
        String jobId = t.substring(PREFIX.length());
        return open.contains(jobId) ? jobId : null;
    }

    /** Its progress ended (or never began): the token is done. */
    synchronized void close(String jobId) {
        open.remove(jobId);
    }
}
