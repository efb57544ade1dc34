package dev.blenderjobs.wire;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.blenderjobs.jobs.JobFailure;
import dev.blenderjobs.jobs.JobView;
import dev.blenderjobs.wire.messages.Messages.DataBlocksResult;
import dev.blenderjobs.wire.messages.Messages.ErrorInfo;
import dev.blenderjobs.wire.messages.Messages.JobDetail;
import dev.blenderjobs.wire.messages.Messages.JobSummary;
import dev.blenderjobs.wire.messages.Messages.ProgressResult;

import java.util.List;

/** Converts job snapshots into wire records. */
final class JobViews {
    private JobViews() {
    }

    static ErrorInfo errorInfo(JobFailure f, boolean withLog) {
        return new ErrorInfo(f.kind().name(), f.message(), f.attempt(), f.traceback(), f.crashReport(),
                withLog || f.logTail() == null ? f.logTail() : lastLines(f.logTail(), 20));
    }

    static ProgressResult progress(JobView v) {
        return new ProgressResult(v.id(), v.name(), v.state().name(), v.progress(), v.progressMessage(), v.attempt(),
                v.maxAttempts(), v.createdAt(), orNull(v.startedAt()), orNull(v.finishedAt()), elapsed(v));
    }

    static JobSummary summary(JobView v) {
        return new JobSummary(v.id(), v.name(), v.state().name(), v.progress(), v.attempt(), v.createdAt(),
                orNull(v.finishedAt()), v.failure() == null ? null : v.failure().kind().name());
    }

    static DataBlocksResult dataBlocks(JobView v) {
        JsonObject blocks = v.dataBlocks() == null ? new JsonObject() : v.dataBlocks().getAsJsonObject("blocks");
        int count = 0;
        for (String key : blocks.keySet()) {
            JsonArray names = blocks.getAsJsonArray(key);
            count += names.size();
        }
        String library = v.dataBlocks() == null ? null : v.dataBlocks().get("library").getAsString();
        return new DataBlocksResult(v.id(), library, blocks, count);
    }

    static JobDetail detail(JobView v) {
        return new JobDetail(v.id(), v.name(), v.script(), v.state().name(), v.progress(), v.progressMessage(),
                v.attempt(), v.maxAttempts(), v.timeoutSeconds(), v.createdAt(), orNull(v.startedAt()),
                orNull(v.finishedAt()), elapsed(v), v.failure() == null ? null : errorInfo(v.failure(), true),
                v.earlierFailures().stream().map(f -> errorInfo(f, false)).toList(),
                v.workerPid() > 0 ? v.workerPid() : null,
                v.pythonDataFile() == null ? null : v.pythonDataBytes(),
                v.pythonDataFile() == null ? null : dataBlocks(v), v.timing(),
                v.directory().toString(), v.log().file().toString(), v.log().tail());
    }

    static long elapsed(JobView v) {
        if (v.startedAt() == 0) return 0;
        long end = v.finishedAt() != 0 ? v.finishedAt() : System.currentTimeMillis();
        return Math.max(0, end - v.startedAt());
    }

    private static Long orNull(long t) {
        return t == 0 ? null : t;
    }

    private static List<String> lastLines(List<String> lines, int n) {
        return List.copyOf(lines.subList(Math.max(0, lines.size() - n), lines.size()));
    }
}
