package dev.blenderjobs.wire;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.blenderjobs.jobs.JobFiles;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobFailure;
import dev.blenderjobs.model.JobResult;
import dev.blenderjobs.wire.messages.Messages.DataBlocksResult;
import dev.blenderjobs.wire.messages.Messages.ProgressResult;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The wire's views of a {@link Job}, derived from the snapshot rather than copied field by
 * field: every view starts from {@link #base}, which is the job's id, its spec as the client
 * gave it (so a new job option shows up in getJob and listJobs by itself), and its status.
 */
final class JobViews {
    /** ErrorInfo in notifications and earlierErrors carries at most this many log lines. */
    static final int SHORT_LOG_TAIL = 20;
    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();

    private JobViews() {
    }

    /** jobId, the spec's options, then the status: what getJob and listJobs both show. */
    static JsonObject base(Job job) {
        JsonObject o = new JsonObject();
        o.addProperty("jobId", job.jobId());
        for (Map.Entry<String, JsonElement> e : GSON.toJsonTree(job.spec()).getAsJsonObject().entrySet()) {
            o.add(e.getKey(), e.getValue());
        }
        o.addProperty("script", job.spec().scriptLabel());
        o.addProperty("state", job.state().name());
        o.addProperty("progress", job.progress());
        if (job.progressMessage() != null) o.addProperty("progressMessage", job.progressMessage());
        o.addProperty("attempt", job.attempt());
        o.addProperty("createdAt", job.createdAt());
        if (job.startedAt() != 0) o.addProperty("startedAt", job.startedAt());
        if (job.finishedAt() != 0) o.addProperty("finishedAt", job.finishedAt());
        o.addProperty("elapsedMs", job.elapsedMs(System.currentTimeMillis()));
        return o;
    }

    /** listJobs: the base, and the kind of the job's error. */
    static JsonObject summary(Job job) {
        JsonObject o = base(job);
        if (job.error() != null) o.addProperty("errorKind", job.error().kind().name());
        return o;
    }

    /** getJob: the base, errors, results and the job's files and log. */
    static JsonObject detail(Job job, JobFiles files, Path logFile, List<String> logTail) {
        JsonObject o = base(job);
        if (job.error() != null) o.add("error", GSON.toJsonTree(job.error()));
        o.add("earlierErrors", GSON.toJsonTree(job.earlierErrors().stream().map(JobViews::shortError).toList()));
        if (job.workerPid() > 0) o.addProperty("workerPid", job.workerPid());
        JobResult r = job.result();
        if (r != null) {
            o.addProperty("pythonDataBytes", r.pythonDataBytes());
            o.add("dataBlocks", GSON.toJsonTree(dataBlocks(job, files)));
            if (r.timing() != null) o.add("timing", r.timing().toJson());
        }
        o.addProperty("directory", files.dirOf(job.jobId()).toString());
        o.addProperty("logFile", logFile.toString());
        o.add("logTail", GSON.toJsonTree(logTail));
        return o;
    }

    /** An error as notifications and earlierErrors show it: its log tail cut short. */
    static JobFailure shortError(JobFailure f) {
        List<String> tail = f.logTail();
        return tail.size() <= SHORT_LOG_TAIL ? f : f.withLogTail(tail.subList(tail.size() - SHORT_LOG_TAIL, tail.size()));
    }

    static ProgressResult progress(Job job) {
        return new ProgressResult(job.jobId(), job.name(), job.state().name(), job.progress(), job.progressMessage(),
                job.attempt(), job.spec().maxAttempts(), job.createdAt(), orNull(job.startedAt()),
                orNull(job.finishedAt()), job.elapsedMs(System.currentTimeMillis()));
    }

    /** The data-block library of a completed job, at the path of the server's own layout. */
    static DataBlocksResult dataBlocks(Job job, JobFiles files) {
        JobResult r = job.result();
        if (r == null || !r.hasDataBlocks()) return new DataBlocksResult(job.jobId(), null, new JsonObject(), 0);
        return new DataBlocksResult(job.jobId(), files.dataBlocksOf(job.jobId()).toString(), r.dataBlocks(),
                r.dataBlockCount());
    }

    private static Long orNull(long t) {
        return t == 0 ? null : t;
    }
}
