package dev.blenderjobs.jobs;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.blenderjobs.workers.JobLog;

import java.nio.file.Path;
import java.util.List;

/**
 * An immutable snapshot of one job, taken on the event loop and handed to the wire.
 * Times are epoch milliseconds, 0 when not reached.
 */
public record JobView(
        String id,
        String name,
        String script,
        JobState state,
        double progress,
        String progressMessage,
        int attempt,
        int maxAttempts,
        double timeoutSeconds,
        long createdAt,
        long startedAt,
        long finishedAt,
        JobFailure failure,
        List<JobFailure> earlierFailures,
        long workerPid,
        Path pythonDataFile,
        long pythonDataBytes,
        JsonObject dataBlocks,
        JsonObject timing,
        Path directory,
        JobLog log,
        JsonElement progressToken) {
}
