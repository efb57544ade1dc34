package dev.blenderjobs.wire;

import com.google.gson.JsonElement;

import java.util.HashMap;
import java.util.Map;

/**
 * The LSP work-done progress tokens clients gave with addJob, and the job each reports: a wire
 * concern, so it lives here and not in the job model. A token is bound before its job is queued
 * (so the job's first notification already knows it) and released when the job rests; tokens
 * are unique among unfinished jobs. Shared by the endpoint and the notifier thread, hence
 * synchronized.
 */
final class WorkDoneTokens {
    private final Map<JsonElement, String> jobByToken = new HashMap<>();
    private final Map<String, JsonElement> tokenByJob = new HashMap<>();

    /** Binds the token to the job; false when an unfinished job already holds it. */
    synchronized boolean bind(JsonElement token, String jobId) {
        if (jobByToken.containsKey(token)) return false;
        jobByToken.put(token, jobId);
        tokenByJob.put(jobId, token);
        return true;
    }

    /** The job holding the token, or null. */
    synchronized String jobOf(JsonElement token) {
        return jobByToken.get(token);
    }

    synchronized JsonElement tokenOf(String jobId) {
        return tokenByJob.get(jobId);
    }

    /** The job rested (or was never added): its token is free again. */
    synchronized void release(String jobId) {
        JsonElement token = tokenByJob.remove(jobId);
        if (token != null) jobByToken.remove(token);
    }
}
