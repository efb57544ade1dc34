package dev.blenderjobs.store;

import com.google.gson.Gson;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.reflect.TypeToken;
import dev.blenderjobs.jobs.JobFiles;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobFailure;
import dev.blenderjobs.model.JobResult;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.Timing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Reads the records of blender-jobs 0.1 (format 1: a flat job.json, and spec.json beside it
 * holding passedData) and converts them in place to the current format, so that a state
 * directory outlives an upgrade: the job keeps its id, state, errors and results, and an
 * interrupted one can still be resumed.
 */
final class LegacyRecords {
    static final int FORMAT = 1;
    private static final Gson GSON = new Gson();

    private LegacyRecords() {
    }

    /** The job of a format-1 record; writes passed_data.json and the new job.json. */
    static Job convert(JobFiles files, String id, JsonObject record) throws IOException {
        if (!id.equals(string(record, "id")) || string(record, "state") == null) {
            throw new IOException("job.json of " + id + " is not a format-1 record of that job");
        }
        Path dir = files.dirOf(id);
        JsonObject spec = readSpec(dir.resolve("spec.json"));
        String script = spec != null ? string(spec, "scriptPath") : null;
        if (script == null && !"<scriptText>".equals(string(record, "script"))) script = string(record, "script");
        JsonObject names = spec != null && spec.has("passedNames") && spec.get("passedNames").isJsonObject()
                ? spec.getAsJsonObject("passedNames") : null;
        Path library = files.libraryOf(id);
        Path blend = files.blendFileOf(id);
        JobSpec jobSpec = new JobSpec(string(record, "name"), script, number(record, "timeoutSeconds"),
                (int) number(record, "maxAttempts"),
                spec != null && spec.has("freshProcess") && spec.get("freshProcess").getAsBoolean()
                        ? JobSpec.Isolation.PROCESS : JobSpec.Isolation.WORKER, 0,
                Files.isRegularFile(library) ? new JobSpec.PassedDataBlocks(library.toString(), names) : null,
                Files.isRegularFile(blend) ? blend.toString() : null);
        JobResult result = null;
        if (record.has("pythonDataBytes") && !record.get("pythonDataBytes").isJsonNull()) {
            JsonObject blocks = record.has("dataBlocks") && record.get("dataBlocks").isJsonObject()
                    && record.getAsJsonObject("dataBlocks").has("blocks")
                    ? record.getAsJsonObject("dataBlocks").getAsJsonObject("blocks") : null;
            result = new JobResult(record.get("pythonDataBytes").getAsLong(), null, blocks,
                    Timing.lenient(record.get("timing")));
        }
        List<JobFailure> earlier = record.has("earlierFailures") && record.get("earlierFailures").isJsonArray()
                ? GSON.fromJson(record.get("earlierFailures"), new TypeToken<List<JobFailure>>() { }.getType())
                : List.of();
        JobFailure error = record.has("failure") && record.get("failure").isJsonObject()
                ? GSON.fromJson(record.get("failure"), JobFailure.class) : null;
        Job job = new Job(id, jobSpec, JobState.valueOf(string(record, "state")), number(record, "progress"),
                string(record, "progressMessage"), (int) number(record, "attempt"), (long) number(record, "createdAt"),
                (long) number(record, "startedAt"), (long) number(record, "finishedAt"), error, earlier, -1, result);
        if (spec != null && !Files.exists(files.passedDataOf(id))) {
            JsonElement passed = spec.get("passedData");
            Files.writeString(files.passedDataOf(id), passed != null && passed.isJsonObject() ? passed.toString() : "{}",
                    StandardCharsets.UTF_8);
        }
        files.writeRecord(job);
        Files.deleteIfExists(dir.resolve("spec.json"));
        return job;
    }

    private static JsonObject readSpec(Path file) {
        try {
            JsonElement e = com.google.gson.JsonParser.parseString(Files.readString(file, StandardCharsets.UTF_8));
            return e.isJsonObject() ? e.getAsJsonObject() : null;
        } catch (IOException | RuntimeException e) {
            return null; // a finished job does not need it; an unfinished one then cannot be resumed
        }
    }

    private static String string(JsonObject o, String key) {
        JsonElement e = o.get(key);
        return e == null || e.isJsonNull() || !e.isJsonPrimitive() ? null : e.getAsString();
    }

    private static double number(JsonObject o, String key) {
        JsonElement e = o.get(key);
        return e == null || e.isJsonNull() || !e.isJsonPrimitive() ? 0 : e.getAsDouble();
    }
}
