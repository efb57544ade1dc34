package dev.blenderjobs.wire;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.blenderjobs.model.Fields;
import dev.blenderjobs.model.JobRequest;
import dev.blenderjobs.model.JobSpec;
import org.eclipse.lsp4j.jsonrpc.ResponseErrorException;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The intake's file checks of addJob, and how a rejected field reaches the client. The checks
 * that need no file (types, ranges, unknown fields) are the model's: JobRequestTest, JobSpecTest.
 */
class AddJobRequestTest {

    @TempDir
    Path tmp;

    private static JsonObject json(String text) {
        return JsonParser.parseString(text).getAsJsonObject();
    }

    private static JsonObject withText() {
        JsonObject o = new JsonObject();
        o.addProperty("scriptText", "print('hi')");
        return o;
    }

    /**
     * Parses and expects the client to get -32602 with data.field == field, as the endpoint
     * answers it; returns the error for further checks.
     */
    private static ResponseError rejects(JsonObject params, String field) {
        Fields.InvalidFieldException invalid = assertThrows(Fields.InvalidFieldException.class,
                () -> AddJobRequest.parse(params));
        assertEquals(field, invalid.field(), invalid.getMessage());
        ResponseErrorException e = assertInstanceOf(ResponseErrorException.class, JobServerEndpoint.translate(invalid));
        ResponseError error = e.getResponseError();
        assertEquals(-32602, error.getCode(), error.getMessage());
        JsonObject data = assertInstanceOf(JsonObject.class, error.getData());
        assertEquals(field, data.get("field").getAsString(), error.getMessage());
        assertTrue(data.has("reason"), "data has a reason");
        assertEquals(invalid.reason(), data.get("reason").getAsString());
        return error;
    }

    private static String reason(ResponseError error) {
        return ((JsonObject) error.getData()).get("reason").getAsString();
    }

    private Path file(String name, byte[] content) throws IOException {
        Path p = tmp.resolve(name);
        Files.write(p, content);
        return p;
    }

    private Path plainBlend() throws IOException {
        return file("scene.blend", "BLENDER-v300RENDH".getBytes(StandardCharsets.US_ASCII));
    }

    // ------------------------------------------------------------------ valid requests

    @Test
    void scriptTextNeedsNoFileAndGivesTheModelsRequest() {
        JobRequest request = AddJobRequest.parse(withText());
        assertEquals("print('hi')", request.scriptSource());
        assertNull(request.spec().script());
        assertEquals(JobSpec.defaults(null), request.spec());
        assertNull(request.libraryToCopy());
        assertNull(request.blendToCopy());
        assertEquals(JobRequest.parse(Fields.of("addJob", withText()), false), request);
    }

    @Test
    void validScriptPathReadsTheSource() throws IOException {
        String source = "import bpy\nprint('h\u00e9llo \u2713')\n";
        Path script = file("job.py", source.getBytes(StandardCharsets.UTF_8));
        JsonObject o = new JsonObject();
        // Not normalized as given: the spec keeps the absolute, normalized path.
        o.addProperty("script", tmp.resolve("sub/../job.py").toString());
        o.addProperty("name", "my job");
        o.addProperty("timeout", 2.5);
        o.add("passedData", json("{\"count\": 3, \"items\": [1, 2]}"));
        o.addProperty("maxAttempts", 3);
        o.addProperty("isolation", "process");
        o.addProperty("priority", 4);
        o.addProperty("replaceExisting", true);

        JobRequest request = AddJobRequest.parse(o);
        JobSpec spec = request.spec();
        assertEquals(source, request.scriptSource());
        assertEquals(script.toAbsolutePath().normalize().toString(), spec.script());
        assertEquals("my job", spec.name());
        assertEquals(2.5, spec.timeout());
        assertEquals(3, com.google.gson.JsonParser.parseString(request.passedData().text()).getAsJsonObject().get("count").getAsInt());
        assertEquals(3, spec.maxAttempts());
        assertTrue(spec.freshProcess());
        assertEquals(4, spec.priority());
        assertTrue(request.replaceExisting());
    }

    @Test
    void nullParamsAreTreatedAsEmpty() {
        rejects(null, "script");
    }

    @Test
    void anInvalidFieldTheModelFindsIsAnswered32602Too() {
        JsonObject o = withText();
        o.addProperty("timeout", -1);
        ResponseError e = rejects(o, "timeout");
        assertTrue(reason(e).contains("between 0 and"), reason(e));
        assertTrue(e.getMessage().contains("addJob") && e.getMessage().contains("timeout"), e.getMessage());
    }

    // ------------------------------------------------------------------ script file

    @Test
    void missingScriptFileIsRejectedNamingThePath() {
        Path missing = tmp.resolve("nope.py");
        JsonObject o = new JsonObject();
        o.addProperty("script", missing.toString());
        ResponseError e = rejects(o, "script");
        assertTrue(reason(e).contains("does not exist"), reason(e));
        assertTrue(reason(e).contains(missing.toString()), reason(e));
    }

    @Test
    void scriptThatIsADirectoryIsRejected() {
        JsonObject o = new JsonObject();
        o.addProperty("script", tmp.toString());
        ResponseError e = rejects(o, "script");
        assertTrue(reason(e).contains("not a regular file"), reason(e));
    }

    @Test
    void scriptPathWithNulIsRejected() {
        JsonObject o = new JsonObject();
        o.addProperty("script", tmp + "/a\0b.py");
        ResponseError e = rejects(o, "script");
        assertTrue(reason(e).contains("not a valid path"), reason(e));
    }

    @Test
    void nonUtf8ScriptIsRejected() throws IOException {
        // Latin-1 "é" (0xE9) followed by ASCII is malformed UTF-8.
        Path script = file("latin1.py", new byte[]{'p', 'r', 'i', 'n', 't', '(', '"', (byte) 0xE9, '"', ')', '\n'});
        JsonObject o = new JsonObject();
        o.addProperty("script", script.toString());
        ResponseError e = rejects(o, "script");
        assertTrue(reason(e).contains("UTF-8"), reason(e));
    }

    // ------------------------------------------------------------------ blendFile

    @Test
    void blendFileThatIsNotABlendIsRejected() throws IOException {
        Path notBlend = file("fake.blend", "just some text".getBytes(StandardCharsets.US_ASCII));
        JsonObject o = withText();
        o.addProperty("blendFile", notBlend.toString());
        ResponseError e = rejects(o, "blendFile");
        assertTrue(reason(e).contains("not a .blend file"), reason(e));
    }

    @Test
    void emptyBlendFileIsRejected() throws IOException {
        Path empty = file("empty.blend", new byte[0]);
        JsonObject o = withText();
        o.addProperty("blendFile", empty.toString());
        rejects(o, "blendFile");
    }

    @Test
    void missingBlendFileIsRejected() {
        JsonObject o = withText();
        o.addProperty("blendFile", tmp.resolve("gone.blend").toString());
        ResponseError e = rejects(o, "blendFile");
        assertTrue(reason(e).contains("does not exist"), reason(e));
    }

    /** The spec keeps the client's path (normalized), the request the file to copy. */
    private static void assertBlendFile(Path blend, JobRequest request) {
        Path normalized = blend.toAbsolutePath().normalize();
        assertEquals(normalized.toString(), request.spec().blendFile());
        assertEquals(normalized, request.blendToCopy());
    }

    @Test
    void plainBlendFileIsAccepted() throws IOException {
        Path blend = plainBlend();
        JsonObject o = withText();
        o.addProperty("blendFile", blend.toString());
        assertBlendFile(blend, AddJobRequest.parse(o));
    }

    @Test
    void gzipBlendFileIsAccepted() throws IOException {
        Path blend = file("gz.blend", new byte[]{0x1f, (byte) 0x8b, 0x08, 0x00});
        JsonObject o = withText();
        o.addProperty("blendFile", blend.toString());
        assertBlendFile(blend, AddJobRequest.parse(o));
    }

    @Test
    void zstdBlendFileIsAccepted() throws IOException {
        Path blend = file("zstd.blend", new byte[]{0x28, (byte) 0xb5, 0x2f, (byte) 0xfd, 0x00});
        JsonObject o = withText();
        o.addProperty("blendFile", blend.toString());
        assertBlendFile(blend, AddJobRequest.parse(o));
    }

    // ------------------------------------------------------------------ passedDataBlocks library

    @Test
    void passedDataBlocksWithLibraryAndNamesIsAccepted() throws IOException {
        Path lib = plainBlend();
        JsonObject o = withText();
        JsonObject blocks = new JsonObject();
        blocks.addProperty("library", lib.toString());
        blocks.add("names", json("{\"objects\": [\"Cube\", \"Sphere\"], \"materials\": []}"));
        o.add("passedDataBlocks", blocks);
        JobRequest request = AddJobRequest.parse(o);
        Path normalized = lib.toAbsolutePath().normalize();
        assertEquals(normalized, request.libraryToCopy());
        assertEquals(normalized.toString(), request.spec().passedDataBlocks().library());
        assertEquals(2, request.spec().passedDataBlocks().names().getAsJsonArray("objects").size());
    }

    @Test
    void passedDataBlocksLibraryThatIsNotABlendIsRejected() throws IOException {
        Path lib = file("lib.blend", "nope".getBytes(StandardCharsets.US_ASCII));
        JsonObject o = withText();
        JsonObject blocks = new JsonObject();
        blocks.addProperty("library", lib.toString());
        o.add("passedDataBlocks", blocks);
        ResponseError e = rejects(o, "passedDataBlocks");
        assertTrue(reason(e).contains("library") && reason(e).contains("not a .blend"), reason(e));
    }

    @Test
    void passedDataBlocksLibraryThatDoesNotExistIsRejected() {
        JsonObject o = withText();
        JsonObject blocks = new JsonObject();
        blocks.addProperty("library", tmp.resolve("gone.blend").toString());
        o.add("passedDataBlocks", blocks);
        ResponseError e = rejects(o, "passedDataBlocks");
        assertTrue(reason(e).contains("library") && reason(e).contains("does not exist"), reason(e));
    }
}
