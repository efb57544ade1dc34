package dev.blenderjobs.wire;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.blenderjobs.jobs.JobSpec;
import org.eclipse.lsp4j.jsonrpc.ResponseErrorException;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

    /** Parses and expects -32602 with data.field == field; returns the error for further checks. */
    private static ResponseError rejects(JsonObject params, String field) {
        ResponseErrorException e = assertThrows(ResponseErrorException.class, () -> AddJobRequest.parse(params));
        ResponseError error = e.getResponseError();
        assertEquals(-32602, error.getCode(), error.getMessage());
        JsonObject data = assertInstanceOf(JsonObject.class, error.getData());
        assertEquals(field, data.get("field").getAsString(), error.getMessage());
        assertTrue(data.has("reason"), "data has a reason");
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
    void validScriptTextUsesDefaults() {
        JobSpec spec = AddJobRequest.parse(withText());
        assertEquals("print('hi')", spec.scriptSource());
        assertNull(spec.scriptPath());
        assertNull(spec.name());
        assertEquals(0.0, spec.timeoutSeconds());
        assertEquals(new JsonObject(), spec.passedData());
        assertNull(spec.passedLibrary());
        assertNull(spec.passedNames());
        assertNull(spec.blendFile());
        assertEquals(1, spec.maxAttempts());
        assertFalse(spec.freshProcess());
        assertFalse(spec.replaceExisting());
    }

    @Test
    void validScriptPathReadsTheSource() throws IOException {
        String source = "import bpy\nprint('h\u00e9llo \u2713')\n";
        Path script = file("job.py", source.getBytes(StandardCharsets.UTF_8));
        JsonObject o = new JsonObject();
        o.addProperty("script", script.toString());
        o.addProperty("name", "my job");
        o.addProperty("timeout", 2.5);
        o.add("passedData", json("{\"count\": 3, \"items\": [1, 2]}"));
        o.addProperty("maxAttempts", 3);
        o.addProperty("isolation", "process");
        o.addProperty("replaceExisting", true);

        JobSpec spec = AddJobRequest.parse(o);
        assertEquals(source, spec.scriptSource());
        assertEquals(script.toAbsolutePath().normalize(), spec.scriptPath());
        assertEquals("my job", spec.name());
        assertEquals(2.5, spec.timeoutSeconds());
        assertEquals(3, spec.passedData().get("count").getAsInt());
        assertEquals(3, spec.maxAttempts());
        assertTrue(spec.freshProcess());
        assertTrue(spec.replaceExisting());
    }

    @Test
    void nullFieldsCountAsAbsent() {
        JsonObject o = withText();
        o.add("script", com.google.gson.JsonNull.INSTANCE);
        o.add("timeout", com.google.gson.JsonNull.INSTANCE);
        JobSpec spec = AddJobRequest.parse(o);
        assertEquals("print('hi')", spec.scriptSource());
        assertEquals(0.0, spec.timeoutSeconds());
    }

    // ------------------------------------------------------------------ script fields

    @Test
    void bothScriptFieldsAreRejected() throws IOException {
        Path script = file("a.py", "pass\n".getBytes(StandardCharsets.UTF_8));
        JsonObject o = withText();
        o.addProperty("script", script.toString());
        ResponseError e = rejects(o, "script");
        assertTrue(reason(e).contains("both"), reason(e));
    }

    @Test
    void neitherScriptFieldIsRejected() {
        ResponseError e = rejects(new JsonObject(), "script");
        assertTrue(reason(e).contains("scriptText"), reason(e));
    }

    @Test
    void nullParamsAreTreatedAsEmpty() {
        rejects(null, "script");
    }

    @Test
    void blankScriptTextIsRejected() {
        JsonObject o = new JsonObject();
        o.addProperty("scriptText", "   \n");
        rejects(o, "scriptText");
    }

    @Test
    void scriptTextMustBeAString() {
        JsonObject o = new JsonObject();
        o.addProperty("scriptText", 42);
        ResponseError e = rejects(o, "scriptText");
        assertTrue(reason(e).contains("must be a string"), reason(e));
    }

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

    // ------------------------------------------------------------------ timeout

    @Test
    void negativeTimeoutIsRejected() {
        JsonObject o = withText();
        o.addProperty("timeout", -1);
        ResponseError e = rejects(o, "timeout");
        assertTrue(reason(e).contains("between 0 and"), reason(e));
    }

    @Test
    void nanTimeoutIsRejected() {
        JsonObject o = withText();
        o.addProperty("timeout", Double.NaN);
        rejects(o, "timeout");
    }

    @Test
    void stringTimeoutIsRejected() {
        JsonObject o = withText();
        o.addProperty("timeout", "10");
        ResponseError e = rejects(o, "timeout");
        assertTrue(reason(e).contains("must be a number"), reason(e));
    }

    @Test
    void timeoutAboveOneYearIsRejected() {
        JsonObject o = withText();
        o.addProperty("timeout", 31_536_001);
        rejects(o, "timeout");
    }

    // ------------------------------------------------------------------ passedData

    @Test
    void passedDataMustBeAnObject() {
        JsonObject o = withText();
        o.add("passedData", new JsonArray());
        ResponseError e = rejects(o, "passedData");
        assertTrue(reason(e).contains("JSON object"), reason(e));
    }

    @Test
    void passedDataWithReservedKeyIsRejected() {
        JsonObject o = withText();
        o.add("passedData", json("{\"ok\": 1, \"python_data\": {}}"));
        ResponseError e = rejects(o, "passedData");
        assertTrue(reason(e).contains("python_data"), reason(e));
    }

    // ------------------------------------------------------------------ unknown fields, simple fields

    @Test
    void unknownFieldIsRejectedNamingIt() {
        JsonObject o = withText();
        o.addProperty("timout", 5);
        ResponseError e = rejects(o, "timout");
        assertTrue(e.getMessage().contains("timout"), e.getMessage());
        assertTrue(reason(e).contains("timeout"), "lists the known parameters: " + reason(e));
    }

    @Test
    void maxAttemptsZeroIsRejected() {
        JsonObject o = withText();
        o.addProperty("maxAttempts", 0);
        ResponseError e = rejects(o, "maxAttempts");
        assertTrue(reason(e).contains("between 1 and 100"), reason(e));
    }

    @Test
    void fractionalMaxAttemptsIsRejected() {
        JsonObject o = withText();
        o.addProperty("maxAttempts", 1.5);
        ResponseError e = rejects(o, "maxAttempts");
        assertTrue(reason(e).contains("whole number"), reason(e));
    }

    @Test
    void invalidIsolationIsRejected() {
        JsonObject o = withText();
        o.addProperty("isolation", "thread");
        ResponseError e = rejects(o, "isolation");
        assertTrue(reason(e).contains("process") && reason(e).contains("worker"), reason(e));
    }

    @Test
    void tooLongNameIsRejected() {
        JsonObject o = withText();
        o.addProperty("name", "x".repeat(AddJobRequest.MAX_NAME_CHARS + 1));
        rejects(o, "name");
    }

    @Test
    void replaceExistingWithoutNameIsRejected() {
        JsonObject o = withText();
        o.addProperty("replaceExisting", true);
        rejects(o, "replaceExisting");
    }

    @Test
    void replaceExistingMustBeBoolean() {
        JsonObject o = withText();
        o.addProperty("name", "n");
        o.addProperty("replaceExisting", "yes");
        ResponseError e = rejects(o, "replaceExisting");
        assertTrue(reason(e).contains("true or false"), reason(e));
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

    @Test
    void plainBlendFileIsAccepted() throws IOException {
        Path blend = plainBlend();
        JsonObject o = withText();
        o.addProperty("blendFile", blend.toString());
        assertEquals(blend.toAbsolutePath().normalize(), AddJobRequest.parse(o).blendFile());
    }

    @Test
    void gzipBlendFileIsAccepted() throws IOException {
        Path blend = file("gz.blend", new byte[]{0x1f, (byte) 0x8b, 0x08, 0x00});
        JsonObject o = withText();
        o.addProperty("blendFile", blend.toString());
        assertEquals(blend.toAbsolutePath().normalize(), AddJobRequest.parse(o).blendFile());
    }

    @Test
    void zstdBlendFileIsAccepted() throws IOException {
        Path blend = file("zstd.blend", new byte[]{0x28, (byte) 0xb5, 0x2f, (byte) 0xfd, 0x00});
        JsonObject o = withText();
        o.addProperty("blendFile", blend.toString());
        assertEquals(blend.toAbsolutePath().normalize(), AddJobRequest.parse(o).blendFile());
    }

    // ------------------------------------------------------------------ passedDataBlocks

    @Test
    void passedDataBlocksWithLibraryAndNamesIsAccepted() throws IOException {
        Path lib = plainBlend();
        JsonObject o = withText();
        JsonObject blocks = new JsonObject();
        blocks.addProperty("library", lib.toString());
        blocks.add("names", json("{\"objects\": [\"Cube\", \"Sphere\"], \"materials\": []}"));
        o.add("passedDataBlocks", blocks);
        JobSpec spec = AddJobRequest.parse(o);
        assertEquals(lib.toAbsolutePath().normalize(), spec.passedLibrary());
        assertEquals(2, spec.passedNames().getAsJsonArray("objects").size());
    }

    @Test
    void passedDataBlocksWithoutLibraryIsRejected() {
        JsonObject o = withText();
        o.add("passedDataBlocks", json("{\"names\": {\"objects\": [\"Cube\"]}}"));
        ResponseError e = rejects(o, "passedDataBlocks");
        assertTrue(reason(e).contains("library"), reason(e));
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
    void passedDataBlocksUnknownKeyIsRejected() throws IOException {
        Path lib = plainBlend();
        JsonObject o = withText();
        JsonObject blocks = new JsonObject();
        blocks.addProperty("library", lib.toString());
        blocks.addProperty("nmes", "x");
        o.add("passedDataBlocks", blocks);
        ResponseError e = rejects(o, "passedDataBlocks");
        assertTrue(reason(e).contains("nmes"), reason(e));
    }

    @Test
    void passedDataBlocksNamesThatAreNotArraysAreRejected() throws IOException {
        Path lib = plainBlend();
        JsonObject o = withText();
        JsonObject blocks = new JsonObject();
        blocks.addProperty("library", lib.toString());
        blocks.add("names", json("{\"objects\": \"Cube\"}"));
        o.add("passedDataBlocks", blocks);
        ResponseError e = rejects(o, "passedDataBlocks");
        assertTrue(reason(e).contains("names.objects"), reason(e));
    }

    @Test
    void passedDataBlocksNamesWithNonStringsAreRejected() throws IOException {
        Path lib = plainBlend();
        JsonObject o = withText();
        JsonObject blocks = new JsonObject();
        blocks.addProperty("library", lib.toString());
        blocks.add("names", json("{\"meshes\": [\"Cube\", 3]}"));
        o.add("passedDataBlocks", blocks);
        ResponseError e = rejects(o, "passedDataBlocks");
        assertTrue(reason(e).contains("names.meshes"), reason(e));
    }

    @Test
    void passedDataBlocksMustBeAnObject() {
        JsonObject o = withText();
        o.addProperty("passedDataBlocks", "lib.blend");
        rejects(o, "passedDataBlocks");
    }
}
