package dev.blenderjobs.model;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.annotations.SerializedName;

import java.util.Map;
import java.util.Set;

/**
 * What a client asked a job to be: the options of {@code addJob} that stay with the job for its
 * whole life. It is parsed once at intake, stored in the job's record, shown as it is by
 * {@code getJob} and {@code listJobs}, and sent to the worker inside the {@code run} message.
 * Component names are the wire names, so the JSON form of this record is the same everywhere.
 * <p>
 * Adding an option: a component here, its line in {@link #parse} and in {@link #FIELDS}; the
 * runtime only if the script sees it; protocol.md and the clients' types. Nothing else copies it.
 * <p>
 * The inputs that are copied into the job's directory at intake (the script's source, passedData,
 * the libraries) are not part of the spec: see {@link JobRequest}. Paths here are the client's,
 * kept as labels (the server never reads them again after intake).
 *
 * @param name             the client's label, never used in a path; may be null
 * @param script           the absolute path of the client's script file, or null for {@code scriptText}
 * @param timeout          seconds per attempt; 0 = none
 * @param maxAttempts      attempts before the job fails for good (1..100)
 * @param isolation        a warm worker, or a Blender process of its own
 * @param priority         higher starts first; FIFO within one priority
 * @param passedDataBlocks the library whose blocks are appended before the script runs, or null
 * @param blendFile        the client's .blend the job runs in (a private copy), or null
 */
public record JobSpec(String name, String script, double timeout, int maxAttempts, Isolation isolation,
                      int priority, PassedDataBlocks passedDataBlocks, String blendFile) {

    /** The addJob params this record reads. */
    public static final Set<String> FIELDS = Set.of("name", "script", "timeout", "maxAttempts", "isolation",
            "priority", "passedDataBlocks", "blendFile");
    public static final int MAX_NAME_CHARS = 1000;
    public static final double MAX_TIMEOUT_SECONDS = 31_536_000;
    public static final int MAX_ATTEMPTS = 100;
    public static final int MAX_PRIORITY = 1_000_000;

    public enum Isolation {
        /** A warm worker, reset between jobs. */
        @SerializedName("worker") WORKER,
        /** A Blender process that ran no other job, replaced afterwards. */
        @SerializedName("process") PROCESS
    }

    /**
     * @param library the client's path of the .blend library (a label: the job uses its private copy)
     * @param names   {collection: [names]} to append, or null for every block
     */
    public record PassedDataBlocks(String library, JsonObject names) {
    }

    public JobSpec {
        // Records read back by Gson pass through here too: old records lack newer options.
        if (maxAttempts < 1) maxAttempts = 1;
        if (isolation == null) isolation = Isolation.WORKER;
    }

    /** A spec with every option at its default, for a script path or scriptText (null). */
    public static JobSpec defaults(String script) {
        return new JobSpec(null, script, 0, 1, Isolation.WORKER, 0, null, null);
    }

    public boolean freshProcess() {
        return isolation == Isolation.PROCESS;
    }

    /** What a person sees as the job's script: its path, or {@code <scriptText>}. */
    public String scriptLabel() {
        return script != null ? script : "<scriptText>";
    }

    /**
     * Reads the options from addJob params, checking each one; paths are taken as given (the
     * intake checks and normalizes them, see {@link #withPaths}).
     */
    public static JobSpec parse(Fields p) {
        String name = p.optionalString("name");
        if (name != null && name.length() > MAX_NAME_CHARS) {
            throw p.invalid("name", "is " + name.length() + " characters long; a name is a label of at most "
                    + MAX_NAME_CHARS + " characters");
        }
        double timeout = p.optionalNumber("timeout", 0, 0, MAX_TIMEOUT_SECONDS);
        int maxAttempts = p.optionalInt("maxAttempts", 1, 1, MAX_ATTEMPTS);
        Isolation isolation = "process".equals(p.oneOf("isolation", "worker", Set.of("worker", "process")))
                ? Isolation.PROCESS : Isolation.WORKER;
        int priority = p.optionalInt("priority", 0, -MAX_PRIORITY, MAX_PRIORITY);
        PassedDataBlocks blocks = null;
        JsonObject raw = p.optionalObject("passedDataBlocks");
        if (raw != null) {
            Fields b = Fields.of(p.method(), raw);
            try {
                b.allowOnly(Set.of("library", "names"));
                blocks = new PassedDataBlocks(b.requiredString("library"), b.optionalObject("names"));
            } catch (Fields.InvalidFieldException e) {
                throw p.invalid("passedDataBlocks", e.field() + " " + e.reason());
            }
            if (blocks.names() != null) {
                for (Map.Entry<String, JsonElement> e : blocks.names().entrySet()) {
                    int badKey = Unicode.loneSurrogateAt(e.getKey());
                    if (badKey >= 0) {
                        throw p.invalid("passedDataBlocks", "names has a collection name with a lone surrogate ("
                                + Unicode.describeAt(e.getKey(), badKey) + "); " + Unicode.ADVICE);
                    }
                    if (!e.getValue().isJsonArray() || !allStrings(e.getValue())) {
                        throw p.invalid("passedDataBlocks", "names." + e.getKey() + " must be an array of "
                                + "data-block names, e.g. {\"objects\": [\"Cube\"]}");
                    }
                    JsonArray names = e.getValue().getAsJsonArray();
                    for (int i = 0; i < names.size(); i++) {
                        String block = names.get(i).getAsString();
                        int bad = Unicode.loneSurrogateAt(block);
                        if (bad >= 0) {
                            throw p.invalid("passedDataBlocks", "names." + e.getKey() + "[" + i + "] has a lone "
                                    + "surrogate (" + Unicode.describeAt(block, bad) + "); " + Unicode.ADVICE);
                        }
                    }
                }
            }
        }
        return new JobSpec(name, p.optionalString("script"), timeout, maxAttempts, isolation, priority, blocks,
                p.optionalString("blendFile"));
    }

    /** The same spec with the client's paths as the intake resolved them (absolute, normalized). */
    public JobSpec withPaths(String script, String library, String blendFile) {
        PassedDataBlocks blocks = passedDataBlocks == null ? null
                : new PassedDataBlocks(library, passedDataBlocks.names());
        return new JobSpec(name, script, timeout, maxAttempts, isolation, priority, blocks, blendFile);
    }

    private static boolean allStrings(JsonElement array) {
        for (JsonElement e : array.getAsJsonArray()) {
            if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) return false;
        }
        return true;
    }
}
