package dev.blenderjobs.wire;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.blenderjobs.jobs.JobSpec;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;

/**
 * Turns addJob params into a {@link JobSpec}, checking every field before anything is queued.
 * Reads the script file, so it runs off the protocol reader thread.
 */
public final class AddJobRequest {
    static final Set<String> FIELDS = Set.of("script", "scriptText", "name", "timeout", "passedData",
            "passedDataBlocks", "blendFile", "maxAttempts", "isolation", "replaceExisting", "workDoneToken");
    /** Names the script contract defines; passedData keys may not shadow them. */
    static final Set<String> RESERVED_KEYS = Set.of("update_job_progress", "passed_data", "passed_data_blocks",
            "python_data", "data_blocks", "bpy", "__name__", "__file__", "__builtins__");
    static final long MAX_SCRIPT_BYTES = 16L * 1024 * 1024;
    static final int MAX_NAME_CHARS = 1000;

    private AddJobRequest() {
    }

    public static JobSpec parse(JsonObject raw) {
        return parse(raw, false);
    }

    /**
     * @param workDoneProgress whether the client declared window.workDoneProgress; only then is
     *                         a workDoneToken used (LSP: $/progress begin/report/end for the job)
     */
    public static JobSpec parse(JsonObject raw, boolean workDoneProgress) {
        Params p = Params.of("addJob", raw);
        p.allowOnly(FIELDS);

        boolean hasScript = p.has("script");
        boolean hasText = p.has("scriptText");
        if (hasScript == hasText) {
            throw p.invalid("script", hasScript
                    ? "and \"scriptText\" were both given; give exactly one of them"
                    : "is missing: give \"script\" (path to a .py file) or \"scriptText\" (the source itself)");
        }
        Path scriptPath = null;
        String source;
        if (hasScript) {
            scriptPath = existingFile(p, "script", p.requiredString("script"));
            source = readScript(p, scriptPath);
        } else {
            source = p.requiredString("scriptText");
            if (source.isBlank()) throw p.invalid("scriptText", "is empty; give the script's source");
        }

        String name = p.optionalString("name");
        if (name != null && name.length() > MAX_NAME_CHARS) {
            throw p.invalid("name", "is " + name.length() + " characters long; a name is a label of at most "
                    + MAX_NAME_CHARS + " characters");
        }
        double timeout = p.optionalNumber("timeout", 0, 0, 31_536_000);
        JsonObject passedData = p.optionalObject("passedData");
        if (passedData != null) {
            for (String key : passedData.keySet()) {
                if (RESERVED_KEYS.contains(key)) {
                    throw p.invalid("passedData", "has the key \"" + key + "\", which the script contract "
                            + "defines itself; rename it");
                }
            }
        } else {
            passedData = new JsonObject();
        }

        Path library = null;
        JsonObject names = null;
        JsonObject blocks = p.optionalObject("passedDataBlocks");
        if (blocks != null) {
            Params b = Params.of("addJob", blocks);
            try {
                b.allowOnly(Set.of("library", "names"));
                library = blendFile(b, "library", b.requiredString("library"));
                names = b.optionalObject("names");
            } catch (org.eclipse.lsp4j.jsonrpc.ResponseErrorException e) {
                throw p.invalid("passedDataBlocks", e.getResponseError().getData() instanceof JsonObject d
                        ? d.get("field").getAsString() + " " + d.get("reason").getAsString()
                        : e.getMessage());
            }
            if (names != null) {
                for (Map.Entry<String, JsonElement> e : names.entrySet()) {
                    if (!e.getValue().isJsonArray() || !allStrings(e.getValue())) {
                        throw p.invalid("passedDataBlocks", "names." + e.getKey() + " must be an array of "
                                + "data-block names, e.g. {\"objects\": [\"Cube\"]}");
                    }
                }
            }
        }
        Path blend = p.has("blendFile") ? blendFile(p, "blendFile", p.requiredString("blendFile")) : null;
        int maxAttempts = p.optionalInt("maxAttempts", 1, 1, 100);
        boolean fresh = "process".equals(p.oneOf("isolation", "worker", Set.of("worker", "process")));
        boolean replace = p.optionalBoolean("replaceExisting", false);
        if (replace && name == null) throw p.invalid("replaceExisting", "needs a \"name\" to know which jobs to replace");
        JsonElement token = null;
        if (p.has("workDoneToken")) {
            JsonElement t = p.raw().get("workDoneToken");
            boolean valid = t.isJsonPrimitive() && (t.getAsJsonPrimitive().isString()
                    || (t.getAsJsonPrimitive().isNumber() && isInteger(t.getAsString())));
            if (!valid) throw p.invalid("workDoneToken", "must be a string or an integer (an LSP ProgressToken), got "
                    + Params.describe(t));
            if (workDoneProgress) token = t;
        }
        return new JobSpec(name, scriptPath, source, timeout, passedData, library, names, blend, maxAttempts,
                fresh, replace, token);
    }

    private static boolean isInteger(String number) {
        try {
            new java.math.BigInteger(number);
            return true;
        } catch (NumberFormatException e) {
            return false;
        }
    }

    private static boolean allStrings(JsonElement array) {
        for (JsonElement e : array.getAsJsonArray()) {
            if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) return false;
        }
        return true;
    }

    private static Path existingFile(Params p, String field, String value) {
        Path path;
        try {
            if (value.indexOf('\0') >= 0) throw new InvalidPathException(value, "contains a NUL character");
            path = Path.of(value).toAbsolutePath().normalize();
        } catch (InvalidPathException e) {
            throw p.invalid(field, "is not a valid path: " + e.getMessage());
        }
        if (!Files.exists(path)) throw p.invalid(field, "names a file that does not exist: " + path);
        if (!Files.isRegularFile(path)) throw p.invalid(field, "is not a regular file: " + path);
        if (!Files.isReadable(path)) throw p.invalid(field, "is not readable by the server: " + path);
        return path;
    }

    private static String readScript(Params p, Path path) {
        try {
            long size = Files.size(path);
            if (size > MAX_SCRIPT_BYTES) {
                throw p.invalid("script", "is " + size + " bytes; scripts are limited to " + MAX_SCRIPT_BYTES + " bytes");
            }
            byte[] bytes = Files.readAllBytes(path);
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw p.invalid("script", "is not valid UTF-8 text: " + path);
        } catch (IOException e) {
            throw p.invalid("script", "could not be read: " + e.getMessage());
        }
    }

    /** A .blend file: plain ("BLENDER"), gzip or zstd compressed. */
    private static Path blendFile(Params p, String field, String value) {
        Path path = existingFile(p, field, value);
        byte[] head = new byte[7];
        int n;
        try (InputStream in = Files.newInputStream(path)) {
            n = in.readNBytes(head, 0, head.length);
        } catch (IOException e) {
            throw p.invalid(field, "could not be read: " + e.getMessage());
        }
        boolean plain = n == 7 && Arrays.equals(head, "BLENDER".getBytes(StandardCharsets.US_ASCII));
        boolean gzip = n >= 2 && (head[0] & 0xff) == 0x1f && (head[1] & 0xff) == 0x8b;
        boolean zstd = n >= 4 && (head[0] & 0xff) == 0x28 && (head[1] & 0xff) == 0xb5 && (head[2] & 0xff) == 0x2f
                && (head[3] & 0xff) == 0xfd;
        if (!plain && !gzip && !zstd) throw p.invalid(field, "is not a .blend file: " + path);
        return path;
    }
}
