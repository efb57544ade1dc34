package dev.blenderjobs.model;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

/**
 * An addJob request: the {@link JobSpec} to keep, plus what exists only at intake. The inputs
 * (the script's source, passedData, the libraries to copy) are written into the job's private
 * directory and then dropped from memory: a job in the table holds its spec, never its inputs.
 *
 * @param scriptSource    the script's source text (read from {@code spec.script()} at intake, or scriptText)
 * @param passedData      the client's passedData object, checked, as JSON text (never pasted into source)
 * @param libraryToCopy   the passedDataBlocks library to copy, or null
 * @param blendToCopy     the blendFile to copy, or null
 * @param replaceExisting cancel and remove jobs with the same name first
 * @param workDoneToken   the client's LSP work-done progress token (string or integer), reported on
 *                        only while the addJob request is pending; or null
 * @param workDoneProgress the job is reported as LSP work-done progress on a token the server
 *                        creates (window/workDoneProgress/create) for the job's whole life
 */
public record JobRequest(JobSpec spec, String scriptSource, PassedData passedData, Path libraryToCopy,
                         Path blendToCopy, boolean replaceExisting, JsonElement workDoneToken,
                         boolean workDoneProgress) {

    /** The params of addJob that are not options of the spec. */
    public static final Set<String> INTAKE_FIELDS = Set.of("scriptText", "passedData", "replaceExisting",
            "workDoneToken", "workDoneProgress");
    /** Names the script contract defines; passedData keys may not shadow them. */
    public static final Set<String> RESERVED_KEYS = Set.of("update_job_progress", "passed_data",
            "passed_data_blocks", "python_data", "data_blocks", "bpy", "__name__", "__file__", "__builtins__");

    public static Set<String> fields() {
        Set<String> all = new HashSet<>(JobSpec.FIELDS);
        all.addAll(INTAKE_FIELDS);
        return all;
    }

    /**
     * Checks addJob params that need no file access. The script's source ({@code scriptText}) is
     * set here; for {@code script}, the intake reads the file and completes the request.
     *
     * @param workDoneProgress whether the client declared window.workDoneProgress: only then are
     *                         a workDoneToken and {@code "workDoneProgress": true} kept
     */
    public static JobRequest parse(Fields p, boolean workDoneProgress) {
        return parse(p, null, workDoneProgress);
    }

    /**
     * The same, with passedData already read from the request as it streamed in ({@link
     * PassedData#read}); {@code p} then holds the other params only.
     *
     * @param preRead passedData read from the stream, or null to take it from {@code p}
     */
    public static JobRequest parse(Fields p, PassedData preRead, boolean workDoneProgress) {
        p.allowOnly(fields());
        boolean hasScript = p.has("script");
        boolean hasText = p.has("scriptText");
        if (hasScript == hasText) {
            throw p.invalid("script", hasScript
                    ? "and \"scriptText\" were both given; give exactly one of them"
                    : "is missing: give \"script\" (path to a .py file) or \"scriptText\" (the source itself)");
        }
        String source = null;
        if (hasText) {
            source = p.requiredString("scriptText");
            if (source.isBlank()) throw p.invalid("scriptText", "is empty; give the script's source");
        } else {
            p.requiredString("script");
        }
        JobSpec spec = JobSpec.parse(p);
        PassedData passedData = preRead;
        if (passedData == null) {
            JsonObject tree = p.optionalObject("passedData");
            passedData = tree == null ? PassedData.EMPTY : PassedData.of(tree, p);
        }
        boolean replace = p.optionalBoolean("replaceExisting", false);
        if (replace && spec.name() == null) {
            throw p.invalid("replaceExisting", "needs a \"name\" to know which jobs to replace");
        }
        JsonElement token = null;
        if (p.has("workDoneToken")) {
            JsonElement t = p.raw().get("workDoneToken");
            boolean valid = t.isJsonPrimitive() && (t.getAsJsonPrimitive().isString()
                    || (t.getAsJsonPrimitive().isNumber() && isInteger(t.getAsString())));
            if (!valid) {
                throw p.invalid("workDoneToken", "must be a string or an integer (an LSP ProgressToken), got "
                        + Fields.describe(t));
            }
            if (t.getAsJsonPrimitive().isString()) p.requiredString("workDoneToken"); // proper Unicode
            if (workDoneProgress) token = t;
        }
        boolean serverProgress = p.optionalBoolean("workDoneProgress", false) && workDoneProgress;
        return new JobRequest(spec, source, passedData, null, null, replace, token, serverProgress);
    }

    /** The request once the intake has checked the client's files and read the script. */
    public JobRequest withInputs(JobSpec resolved, String source, Path library, Path blend) {
        return new JobRequest(resolved, source, passedData, library, blend, replaceExisting, workDoneToken,
                workDoneProgress);
    }

    private static boolean isInteger(String number) {
        try {
            new java.math.BigInteger(number);
            return true;
        } catch (NumberFormatException e) {
            return false;
        }
    }
}
