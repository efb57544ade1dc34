package dev.blenderjobs.model;

import com.google.gson.Gson;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The options of addJob that stay with a job: their checks, defaults and JSON form. */
class JobSpecTest {

    private static JsonObject json(String text) {
        return JsonParser.parseString(text).getAsJsonObject();
    }

    private static JsonObject withText() {
        JsonObject o = new JsonObject();
        o.addProperty("scriptText", "print('hi')");
        return o;
    }

    private static Fields.InvalidFieldException rejects(JsonObject params, String field) {
        return JobRequestTest.rejects(params, field);
    }

    private static JobSpec parse(JsonObject params) {
        return JobSpec.parse(Fields.of("addJob", params));
    }

    // ------------------------------------------------------------------ timeout

    @Test
    void negativeTimeoutIsRejected() {
        JsonObject o = withText();
        o.addProperty("timeout", -1);
        Fields.InvalidFieldException e = rejects(o, "timeout");
        assertTrue(e.reason().contains("between 0 and"), e.reason());
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
        Fields.InvalidFieldException e = rejects(o, "timeout");
        assertTrue(e.reason().contains("must be a number"), e.reason());
    }

    @Test
    void timeoutAboveOneYearIsRejected() {
        JsonObject o = withText();
        o.addProperty("timeout", 31_536_001);
        rejects(o, "timeout");
        o.addProperty("timeout", JobSpec.MAX_TIMEOUT_SECONDS);
        assertEquals(31_536_000.0, parse(o).timeout(), "one year is allowed");
    }

    // ------------------------------------------------------------------ maxAttempts, isolation, name

    @Test
    void maxAttemptsZeroIsRejected() {
        JsonObject o = withText();
        o.addProperty("maxAttempts", 0);
        Fields.InvalidFieldException e = rejects(o, "maxAttempts");
        assertTrue(e.reason().contains("between 1 and 100"), e.reason());
    }

    @Test
    void fractionalMaxAttemptsIsRejected() {
        JsonObject o = withText();
        o.addProperty("maxAttempts", 1.5);
        Fields.InvalidFieldException e = rejects(o, "maxAttempts");
        assertTrue(e.reason().contains("whole number"), e.reason());
    }

    @Test
    void invalidIsolationIsRejected() {
        JsonObject o = withText();
        o.addProperty("isolation", "thread");
        Fields.InvalidFieldException e = rejects(o, "isolation");
        assertTrue(e.reason().contains("process") && e.reason().contains("worker"), e.reason());
    }

    @Test
    void tooLongNameIsRejected() {
        JsonObject o = withText();
        o.addProperty("name", "x".repeat(JobSpec.MAX_NAME_CHARS + 1));
        rejects(o, "name");
        o.addProperty("name", "x".repeat(JobSpec.MAX_NAME_CHARS));
        assertEquals(JobSpec.MAX_NAME_CHARS, parse(o).name().length());
    }

    // ------------------------------------------------------------------ priority

    @Test
    void priorityIsAWholeNumberDefaultingToZero() {
        assertEquals(0, parse(withText()).priority());
        for (int p : new int[]{1, -1, 42, JobSpec.MAX_PRIORITY, -JobSpec.MAX_PRIORITY}) {
            JsonObject o = withText();
            o.addProperty("priority", p);
            assertEquals(p, parse(o).priority());
        }
    }

    @Test
    void priorityOutOfRangeIsRejected() {
        for (long p : new long[]{JobSpec.MAX_PRIORITY + 1L, -JobSpec.MAX_PRIORITY - 1L, Integer.MAX_VALUE + 1L}) {
            JsonObject o = withText();
            o.addProperty("priority", p);
            Fields.InvalidFieldException e = rejects(o, "priority");
            assertTrue(e.reason().contains("between -" + JobSpec.MAX_PRIORITY + " and " + JobSpec.MAX_PRIORITY),
                    e.reason());
        }
    }

    @Test
    void priorityMustBeAWholeNumber() {
        JsonObject o = withText();
        o.addProperty("priority", 1.5);
        assertTrue(rejects(o, "priority").reason().contains("whole number"));
        o.addProperty("priority", "high");
        assertTrue(rejects(o, "priority").reason().contains("whole number"));
    }

    // ------------------------------------------------------------------ passedDataBlocks (shape)

    @Test
    void passedDataBlocksKeepsTheLibraryAsGivenAndItsNames() {
        JsonObject o = withText();
        o.add("passedDataBlocks", json("{\"library\": \"lib.blend\", \"names\": {\"objects\": [\"Cube\"]}}"));
        JobSpec.PassedDataBlocks blocks = parse(o).passedDataBlocks();
        assertEquals("lib.blend", blocks.library(), "checked and normalized by the intake, not here");
        assertEquals(json("{\"objects\": [\"Cube\"]}"), blocks.names());
    }

    @Test
    void passedDataBlocksWithoutLibraryIsRejected() {
        JsonObject o = withText();
        o.add("passedDataBlocks", json("{\"names\": {\"objects\": [\"Cube\"]}}"));
        Fields.InvalidFieldException e = rejects(o, "passedDataBlocks");
        assertTrue(e.reason().contains("library"), e.reason());
    }

    @Test
    void passedDataBlocksUnknownKeyIsRejected() {
        JsonObject o = withText();
        o.add("passedDataBlocks", json("{\"library\": \"lib.blend\", \"nmes\": \"x\"}"));
        Fields.InvalidFieldException e = rejects(o, "passedDataBlocks");
        assertTrue(e.reason().contains("nmes"), e.reason());
    }

    @Test
    void passedDataBlocksNamesThatAreNotArraysAreRejected() {
        JsonObject o = withText();
        o.add("passedDataBlocks", json("{\"library\": \"lib.blend\", \"names\": {\"objects\": \"Cube\"}}"));
        Fields.InvalidFieldException e = rejects(o, "passedDataBlocks");
        assertTrue(e.reason().contains("names.objects"), e.reason());
    }

    @Test
    void passedDataBlocksNamesWithNonStringsAreRejected() {
        JsonObject o = withText();
        o.add("passedDataBlocks", json("{\"library\": \"lib.blend\", \"names\": {\"meshes\": [\"Cube\", 3]}}"));
        Fields.InvalidFieldException e = rejects(o, "passedDataBlocks");
        assertTrue(e.reason().contains("names.meshes"), e.reason());
    }

    @Test
    void passedDataBlocksMustBeAnObject() {
        JsonObject o = withText();
        o.addProperty("passedDataBlocks", "lib.blend");
        rejects(o, "passedDataBlocks");
    }

    // ------------------------------------------------------------------ the record

    @Test
    void defaultsAndPaths() {
        JobSpec d = JobSpec.defaults("/a/job.py");
        assertEquals(new JobSpec(null, "/a/job.py", 0, 1, JobSpec.Isolation.WORKER, 0, null, null), d);
        assertEquals("/a/job.py", d.scriptLabel());
        assertFalse(d.freshProcess());

        JobSpec withBlocks = new JobSpec("n", "job.py", 1, 2, JobSpec.Isolation.PROCESS, 3,
                new JobSpec.PassedDataBlocks("lib.blend", json("{\"objects\": []}")), "scene.blend");
        JobSpec resolved = withBlocks.withPaths("/abs/job.py", "/abs/lib.blend", "/abs/scene.blend");
        assertEquals(new JobSpec("n", "/abs/job.py", 1, 2, JobSpec.Isolation.PROCESS, 3,
                new JobSpec.PassedDataBlocks("/abs/lib.blend", json("{\"objects\": []}")), "/abs/scene.blend"), resolved);
        assertNull(JobSpec.defaults(null).withPaths(null, "/ignored", null).passedDataBlocks(),
                "no library without passedDataBlocks");
    }

    @Test
    void itsJsonFormUsesTheWireNamesAndReadsOlderRecords() {
        Gson gson = new Gson();
        JobSpec spec = new JobSpec("n", null, 2.5, 3, JobSpec.Isolation.PROCESS, 9, null, null);
        JsonObject tree = gson.toJsonTree(spec).getAsJsonObject();
        assertEquals("process", tree.get("isolation").getAsString());
        assertEquals(9, tree.get("priority").getAsInt());
        assertEquals(2.5, tree.get("timeout").getAsDouble());
        assertEquals(spec, gson.fromJson(tree, JobSpec.class));

        // A record written before an option existed reads back with that option's default.
        JobSpec old = gson.fromJson("{\"name\": \"n\", \"timeout\": 0}", JobSpec.class);
        assertEquals(0, old.priority());
        assertEquals(1, old.maxAttempts());
        assertEquals(JobSpec.Isolation.WORKER, old.isolation());
    }

    @Test
    void noOptionsGiveTheDefaults() {
        assertThrows(Fields.InvalidFieldException.class, () -> parse(json("{\"timeout\": -1}")));
        assertEquals(JobSpec.defaults(null), parse(new JsonObject()));
    }
}
