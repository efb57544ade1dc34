package dev.blenderjobs.wire;

import com.google.gson.JsonObject;
import dev.blenderjobs.model.Fields;
import dev.blenderjobs.model.JobRequest;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.wire.messages.AddJobParams;

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

/**
 * The intake's file checks of addJob: the model parses and checks the params
 * ({@link JobRequest#parse}); this checks the client's files (the script exists and is UTF-8,
 * the libraries are .blend files) and reads the script. Reads files, so it runs off the
 * protocol reader thread.
 */
public final class AddJobRequest {
    static final long MAX_SCRIPT_BYTES = 16L * 1024 * 1024;

    private AddJobRequest() {
    }

    public static JobRequest parse(JsonObject raw) {
        return parse(raw, false);
    }

    public static JobRequest parse(JsonObject raw, boolean workDoneProgress) {
        return parse(AddJobParams.of(raw), workDoneProgress, Long.MAX_VALUE);
    }

    /**
     * @param workDoneProgress whether the client declared window.workDoneProgress; only then is
     *                         a workDoneToken used (LSP: $/progress begin/report/end for the job)
     * @param maxInputBytes    largest file copied into the job (blendFile, passedDataBlocks.library):
     *                         --max-input-size
     */
    public static JobRequest parse(AddJobParams params, boolean workDoneProgress, long maxInputBytes) {
        if (params.problem() != null) throw params.problem();
        Fields p = Fields.of("addJob", params.fields());
        JobRequest request = JobRequest.parse(p, params.passedData(), workDoneProgress);
        JobSpec spec = request.spec();
        Path script = null;
        String source = request.scriptSource();
        if (spec.script() != null) {
            script = existingFile(p, "script", spec.script());
            source = readScript(p, script);
        }
        Path library = null;
        if (spec.passedDataBlocks() != null) {
            try {
                library = blendFile(Fields.of(p.method(), null), "library", spec.passedDataBlocks().library(),
                        maxInputBytes);
            } catch (Fields.InvalidFieldException e) {
                throw p.invalid("passedDataBlocks", e.field() + " " + e.reason());
            }
        }
        Path blend = spec.blendFile() == null ? null : blendFile(p, "blendFile", spec.blendFile(), maxInputBytes);
        return request.withInputs(spec.withPaths(script == null ? null : script.toString(),
                library == null ? null : library.toString(), blend == null ? null : blend.toString()),
                source, library, blend);
    }

    private static Path existingFile(Fields p, String field, String value) {
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

    private static String readScript(Fields p, Path path) {
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

    private static String megabytes(long bytes) {
        return bytes % (1024 * 1024) == 0 ? (bytes >> 20) + " MB" : String.format(java.util.Locale.ROOT, "%.1f MB",
                bytes / (1024.0 * 1024));
    }

    /** A .blend file: plain ("BLENDER"), gzip or zstd compressed. */
    private static Path blendFile(Fields p, String field, String value, long maxBytes) {
        Path path = existingFile(p, field, value);
        long size;
        try {
            size = Files.size(path);
        } catch (IOException e) {
            throw p.invalid(field, "could not be read: " + e.getMessage());
        }
        if (size > maxBytes) {
            // Each job gets its own copy: without a cap, a huge (or sparse) file costs its full
            // size of real disk per job.
            throw p.invalid(field, "is " + megabytes(size) + " (" + size + " bytes), over the server's limit of "
                    + megabytes(maxBytes) + " for a file copied into a job (--max-input-size); start the server "
                    + "with a larger --max-input-size, or pass a smaller file: " + path);
        }
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
