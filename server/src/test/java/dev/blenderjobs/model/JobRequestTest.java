package dev.blenderjobs.model;

import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import org.junit.jupiter.api.Test;

import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The checks of addJob's params that need no file: what {@link JobRequest#parse} accepts and how
 * it says what is wrong. (The intake's file checks, and the -32602 answer a rejected field
 * becomes, are in wire.AddJobRequestTest.)
 */
class JobRequestTest {

    private static JsonObject json(String text) {
        return JsonParser.parseString(text).getAsJsonObject();
    }

    private static JsonObject withText() {
        JsonObject o = new JsonObject();
        o.addProperty("scriptText", "print('hi')");
        return o;
    }

    private static JobRequest parse(JsonObject params) {
        return JobRequest.parse(Fields.of("addJob", params), false);
    }

    /** Parses and expects the field to be rejected; returns the exception for its reason. */
    static Fields.InvalidFieldException rejects(JsonObject params, String field) {
        Fields.InvalidFieldException e = assertThrows(Fields.InvalidFieldException.class, () -> parse(params));
        assertEquals(field, e.field(), e.getMessage());
        assertTrue(e.reason() != null && !e.reason().isBlank(), "it says what is wrong");
        assertTrue(e.getMessage().contains("addJob") && e.getMessage().contains("\"" + field + "\""), e.getMessage());
        return e;
    }

    // ------------------------------------------------------------------ valid requests

    @Test
    void validScriptTextUsesDefaults() {
        JobRequest request = parse(withText());
        JobSpec spec = request.spec();
        assertEquals("print('hi')", request.scriptSource());
        assertNull(spec.script());
        assertEquals("<scriptText>", spec.scriptLabel());
        assertNull(spec.name());
        assertEquals(0.0, spec.timeout());
        assertEquals("{}", request.passedData().text());
        assertNull(spec.passedDataBlocks());
        assertNull(request.libraryToCopy());
        assertNull(spec.blendFile());
        assertNull(request.blendToCopy());
        assertEquals(1, spec.maxAttempts());
        assertFalse(spec.freshProcess());
        assertEquals(JobSpec.Isolation.WORKER, spec.isolation());
        assertEquals(0, spec.priority());
        assertFalse(request.replaceExisting());
        assertNull(request.workDoneToken());
        assertEquals(JobSpec.defaults(null), spec);
    }

    @Test
    void aScriptPathIsTakenAsGivenForTheIntakeToRead() {
        JsonObject o = new JsonObject();
        o.addProperty("script", "relative/job.py");
        JobRequest request = parse(o);
        assertEquals("relative/job.py", request.spec().script());
        assertNull(request.scriptSource(), "the intake reads the file");
    }

    @Test
    void allOptionsAreRead() {
        JsonObject o = withText();
        o.addProperty("name", "my job");
        o.addProperty("timeout", 2.5);
        o.add("passedData", json("{\"count\": 3, \"items\": [1, 2]}"));
        o.addProperty("maxAttempts", 3);
        o.addProperty("isolation", "process");
        o.addProperty("priority", -7);
        o.addProperty("replaceExisting", true);
        JobRequest request = parse(o);
        JobSpec spec = request.spec();
        assertEquals("my job", spec.name());
        assertEquals(2.5, spec.timeout());
        assertEquals(3, com.google.gson.JsonParser.parseString(request.passedData().text()).getAsJsonObject().get("count").getAsInt());
        assertEquals(3, spec.maxAttempts());
        assertTrue(spec.freshProcess());
        assertEquals(-7, spec.priority());
        assertTrue(request.replaceExisting());
    }

    @Test
    void nullFieldsCountAsAbsent() {
        JsonObject o = withText();
        o.add("script", JsonNull.INSTANCE);
        o.add("timeout", JsonNull.INSTANCE);
        o.add("priority", JsonNull.INSTANCE);
        JobRequest request = parse(o);
        assertEquals("print('hi')", request.scriptSource());
        assertEquals(0.0, request.spec().timeout());
        assertEquals(0, request.spec().priority());
    }

    @Test
    void theKnownFieldsAreTheSpecsAndTheIntakes() {
        assertEquals(Set.of("name", "script", "timeout", "maxAttempts", "isolation", "priority", "passedDataBlocks",
                "blendFile", "scriptText", "passedData", "replaceExisting", "workDoneToken", "workDoneProgress"),
                JobRequest.fields());
    }

    // ------------------------------------------------------------------ script fields

    @Test
    void bothScriptFieldsAreRejected() {
        JsonObject o = withText();
        o.addProperty("script", "/some/a.py");
        Fields.InvalidFieldException e = rejects(o, "script");
        assertTrue(e.reason().contains("both"), e.reason());
    }

    @Test
    void neitherScriptFieldIsRejected() {
        Fields.InvalidFieldException e = rejects(new JsonObject(), "script");
        assertTrue(e.reason().contains("scriptText"), e.reason());
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
        Fields.InvalidFieldException e = rejects(o, "scriptText");
        assertTrue(e.reason().contains("must be a string"), e.reason());
    }

    @Test
    void scriptPathMustBeAString() {
        JsonObject o = new JsonObject();
        o.add("script", new JsonArray());
        Fields.InvalidFieldException e = rejects(o, "script");
        assertTrue(e.reason().contains("must be a string"), e.reason());
    }

    // ------------------------------------------------------------------ passedData

    @Test
    void passedDataMustBeAnObject() {
        JsonObject o = withText();
        o.add("passedData", new JsonArray());
        Fields.InvalidFieldException e = rejects(o, "passedData");
        assertTrue(e.reason().contains("JSON object"), e.reason());
    }

    @Test
    void passedDataWithReservedKeyIsRejected() {
        JsonObject o = withText();
        o.add("passedData", json("{\"ok\": 1, \"python_data\": {}}"));
        Fields.InvalidFieldException e = rejects(o, "passedData");
        assertTrue(e.reason().contains("python_data"), e.reason());
    }

    @Test
    void everyReservedKeyIsRejected() {
        for (String key : JobRequest.RESERVED_KEYS) {
            JsonObject o = withText();
            JsonObject passed = new JsonObject();
            passed.addProperty(key, 1);
            o.add("passedData", passed);
            assertTrue(rejects(o, "passedData").reason().contains(key), key);
        }
    }

    // ------------------------------------------------------------------ unknown fields, replaceExisting

    @Test
    void unknownFieldIsRejectedNamingIt() {
        JsonObject o = withText();
        o.addProperty("timout", 5);
        Fields.InvalidFieldException e = rejects(o, "timout");
        assertTrue(e.getMessage().contains("timout"), e.getMessage());
        assertTrue(e.reason().contains("timeout"), "lists the known parameters: " + e.reason());
        assertTrue(e.reason().contains("priority"), "lists the known parameters: " + e.reason());
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
        Fields.InvalidFieldException e = rejects(o, "replaceExisting");
        assertTrue(e.reason().contains("true or false"), e.reason());
    }

    // ------------------------------------------------------------------ workDoneToken

    @Test
    void aWorkDoneTokenIsKeptOnlyForAClientThatDeclaredWorkDoneProgress() {
        for (JsonPrimitive token : new JsonPrimitive[]{new JsonPrimitive("tok-1"), new JsonPrimitive(42)}) {
            JsonObject o = withText();
            o.add("workDoneToken", token);
            assertEquals(token, JobRequest.parse(Fields.of("addJob", o), true).workDoneToken());
            assertNull(JobRequest.parse(Fields.of("addJob", o), false).workDoneToken(),
                    "a client that did not declare window.workDoneProgress gets no $/progress");
        }
    }

    @Test
    void aWorkDoneTokenMustBeAStringOrAnInteger() {
        for (String bad : new String[]{"1.5", "true", "{}", "[\"t\"]"}) {
            JsonObject o = withText();
            o.add("workDoneToken", JsonParser.parseString(bad));
            Fields.InvalidFieldException e = assertThrows(Fields.InvalidFieldException.class,
                    () -> JobRequest.parse(Fields.of("addJob", o), true), bad);
            assertEquals("workDoneToken", e.field());
            assertTrue(e.reason().contains("string or an integer"), e.reason());
        }
    }

    // ------------------------------------------------------------------ workDoneProgress

    @Test
    void workDoneProgressIsAnIntakeFlagKeptOnlyForAClientThatDeclaredWorkDoneProgress() {
        JsonObject o = withText();
        o.addProperty("workDoneProgress", true);
        assertTrue(JobRequest.parse(Fields.of("addJob", o), true).workDoneProgress());
        assertFalse(JobRequest.parse(Fields.of("addJob", o), false).workDoneProgress(),
                "a client that did not declare window.workDoneProgress is not asked to create a token");
        assertFalse(JobRequest.parse(Fields.of("addJob", withText()), true).workDoneProgress(), "off by default");
        assertFalse(JobSpec.FIELDS.contains("workDoneProgress"), "not a job option: it is not stored with the job");
    }

    @Test
    void workDoneProgressMustBeABoolean() {
        JsonObject o = withText();
        o.addProperty("workDoneProgress", "yes");
        Fields.InvalidFieldException e = assertThrows(Fields.InvalidFieldException.class,
                () -> JobRequest.parse(Fields.of("addJob", o), true));
        assertEquals("workDoneProgress", e.field());
        assertTrue(e.reason().contains("true or false"), e.reason());
    }

    @Test
    void loneSurrogatesInStringParamsAreRefusedNamingTheField() {
        for (String field : new String[] {"scriptText", "name", "script", "blendFile"}) {
            JsonObject o = new JsonObject();
            if (!field.equals("scriptText") && !field.equals("script")) o.addProperty("scriptText", "pass");
            o.addProperty(field, "x\ud800y");
            Fields.InvalidFieldException e = assertThrows(Fields.InvalidFieldException.class, () -> parse(o), field);
            assertEquals(field, e.field());
            assertTrue(e.reason().contains("lone surrogate (\\ud800 at character 1)"), e.reason());
        }
        JsonObject blocks = JsonParser.parseString("{\"scriptText\": \"pass\", \"passedDataBlocks\": "
                + "{\"library\": \"/l.blend\", \"names\": {\"objects\": [\"ok\", \"\\udfff\"]}}}").getAsJsonObject();
        Fields.InvalidFieldException e = assertThrows(Fields.InvalidFieldException.class, () -> parse(blocks));
        assertEquals("passedDataBlocks", e.field());
        assertTrue(e.reason().contains("names.objects[1]"), e.reason());
        JsonObject pair = new JsonObject();
        pair.addProperty("scriptText", "s = '\ud83d\ude00'");
        pair.addProperty("name", "\ud83d\ude00");
        assertEquals("\ud83d\ude00", parse(pair).spec().name());
    }
}
