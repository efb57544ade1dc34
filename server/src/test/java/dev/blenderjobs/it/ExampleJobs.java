package dev.blenderjobs.it;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The add-on's four example jobs, rewritten in test-fixtures/, on real Blender through the real
 * wire; run with warm workers ({@link WarmWorkersExamplesIT}) and with a fresh Blender per job
 * ({@link FreshProcessExamplesIT}), which must give the same results.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class ExampleJobs {
    static final Duration HANG_GUARD = Duration.ofSeconds(120);
    /** Results of each mode, compared once both have run. */
    static final Map<String, Map<String, JsonElement>> RESULTS_BY_MODE = new LinkedHashMap<>();

    ServerProcess server;

    abstract String mode();

    abstract String[] serverArgs();

    @BeforeAll
    void start() throws Exception {
        server = ServerProcess.start(serverArgs());
    }

    @AfterAll
    void stop() throws Exception {
        server.close();
        // Whichever mode runs second compares its results with the first.
        synchronized (RESULTS_BY_MODE) {
            Map<String, JsonElement> warm = RESULTS_BY_MODE.get("warm");
            Map<String, JsonElement> fresh = RESULTS_BY_MODE.get("fresh");
            if (warm != null && fresh != null) assertEquals(warm, fresh, "warm reuse changed results");
        }
    }

    JsonObject passedBlocks(String object) {
        JsonObject names = new JsonObject();
        com.google.gson.JsonArray list = new com.google.gson.JsonArray();
        list.add(object);
        names.add("objects", list);
        return Json.of("library", ServerProcess.fixture("blend/library.blend").toString(), "names", names);
    }

    JsonObject runExample(String script, JsonObject extra) throws Exception {
        JsonObject params = Json.of("script", ServerProcess.fixture("jobs/" + script).toString());
        extra.entrySet().forEach(e -> params.add(e.getKey(), e.getValue()));
        return server.runToEnd(params, HANG_GUARD);
    }

    void remember(String example, JsonElement value) {
        synchronized (RESULTS_BY_MODE) {
            RESULTS_BY_MODE.computeIfAbsent(mode(), k -> new LinkedHashMap<>()).put(example, value);
        }
    }

    /** Checks the job's library really holds the blocks, by appending it into another job. */
    JsonObject inspectLibrary(JsonObject dataBlocks) throws Exception {
        String library = dataBlocks.get("library").getAsString();
        JsonObject done = runExample("echo.py", Json.of(
                "passedDataBlocks", Json.of("library", library),
                "passedData", Json.of("note", "inspect")));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        // echo.py does not look at blocks; use a small inline script instead for details.
        String id = server.addJob(Json.of("scriptText", String.join("\n",
                "python_data = {b.name: (len(b.data.vertices) if getattr(b, 'type', '') == 'MESH' else -1)",
                "               for b in passed_data_blocks if isinstance(b, bpy.types.Object)}"),
                "passedDataBlocks", Json.of("library", library)));
        JsonObject inspected = server.awaitFinal(id, HANG_GUARD);
        assertEquals("COMPLETED", inspected.get("state").getAsString(), inspected.toString());
        return server.callObject("getPythonData", Json.jobId(id));
    }

    @Test
    void remeshAPassedObjectAndReturnIt() throws Exception {
        JsonObject done = runExample("remesh.py", Json.of("passedDataBlocks", passedBlocks("Cube"),
                "passedData", Json.of("duration", 0.5)));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        String id = done.get("jobId").getAsString();
        JsonObject data = server.callObject("getPythonData", Json.jobId(id));
        assertEquals(3.14159, data.get("pi").getAsDouble());
        JsonObject blocks = server.callObject("getDataBlocks", Json.jobId(id));
        assertTrue(Path.of(blocks.get("library").getAsString()).isAbsolute());
        assertTrue(Files.size(Path.of(blocks.get("library").getAsString())) > 0);
        assertEquals("[\"Cube_remeshed\"]", blocks.getAsJsonObject("blocks").get("objects").toString());
        JsonObject inLibrary = inspectLibrary(blocks);
        assertEquals(data.get("vertices").getAsInt(), inLibrary.get("Cube_remeshed").getAsInt(), inLibrary.toString());
        remember("remesh", data);
    }

    @Test
    void addAQuadWithBmesh() throws Exception {
        JsonObject done = runExample("bmesh_quad.py", Json.of("passedDataBlocks", passedBlocks("Cube")));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        String id = done.get("jobId").getAsString();
        JsonObject data = server.callObject("getPythonData", Json.jobId(id));
        assertEquals(data.get("faces_before").getAsInt() + 1, data.get("faces_after").getAsInt());
        List<Double> progress = server.notificationsFor(id).stream().filter(n -> n.method().equals("job/progress"))
                .map(n -> n.params().get("progress").getAsDouble()).toList();
        assertFalse(progress.isEmpty());
        assertEquals(1.0, progress.get(progress.size() - 1));
        JsonObject blocks = server.callObject("getDataBlocks", Json.jobId(id));
        assertEquals(1, blocks.get("count").getAsInt(), blocks.toString());
        remember("bmesh_quad", data);
    }

    @Test
    void buildMetaballsSlowlyWithSparseProgress() throws Exception {
        JsonObject done = runExample("metaballs.py", Json.of("passedDataBlocks", passedBlocks("Tetra"),
                "passedData", Json.of("delay", 0.25)));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        String id = done.get("jobId").getAsString();
        JsonObject data = server.callObject("getPythonData", Json.jobId(id));
        assertEquals(4, data.get("elements").getAsInt());
        assertTrue(data.get("vertices").getAsInt() > 0, data.toString());
        long progressCount = server.notificationsFor(id).stream().filter(n -> n.method().equals("job/progress")).count();
        assertTrue(progressCount >= 2 && progressCount <= 6, "sparse progress, one per vertex: " + progressCount);
        JsonObject blocks = server.callObject("getDataBlocks", Json.jobId(id));
        assertTrue(blocks.getAsJsonObject("blocks").get("objects").toString().contains("metaballs"), blocks.toString());
        remember("metaballs", data);
    }

    @Test
    void aLongLoopHitsItsTimeoutAndIsKilled() throws Exception {
        String id = server.addJob(Json.of("script", ServerProcess.fixture("jobs/timeout_loop.py").toString(),
                "timeout", 2));
        server.awaitNotification(n -> n.method().equals("job/progress") && n.params().get("jobId").getAsString().equals(id),
                HANG_GUARD);
        long pid = server.callObject("getJob", Json.jobId(id)).get("workerPid").getAsLong();
        JsonObject done = server.awaitFinal(id, HANG_GUARD);
        assertEquals("FAILED", done.get("state").getAsString());
        JsonObject error = done.getAsJsonObject("error");
        assertEquals("TIMED_OUT", error.get("kind").getAsString());
        assertTrue(error.get("message").getAsString().contains("2 s"), error.toString());
        JsonObject progress = server.callObject("getProgress", Json.jobId(id));
        double reached = progress.get("progress").getAsDouble();
        // About 20 of 200 steps in 2 s: started (a progress was awaited above), stopped long before the end.
        assertTrue(reached > 0 && reached < 0.5, "about 20 of 200 steps in 2 s, got " + reached);
        ProtocolIT.assertNoneAliveWithin(ProcessHandle.of(pid).stream().toList(), Duration.ofSeconds(10));
    }
}
