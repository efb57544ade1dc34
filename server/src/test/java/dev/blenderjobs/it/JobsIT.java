package dev.blenderjobs.it;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Jobs through the real wire on real Blender, two warm workers shared by the tests. */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class JobsIT {
    static final Duration HANG_GUARD = Duration.ofSeconds(90);
    static ServerProcess server;

    @BeforeAll
    static void start() throws Exception {
        server = ServerProcess.start("--workers", "2");
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    static JsonObject run(JsonObject params) throws Exception {
        return server.runToEnd(params, HANG_GUARD);
    }

    static JsonElement pythonData(JsonObject finished) throws Exception {
        assertEquals("COMPLETED", finished.get("state").getAsString(), finished.toString());
        return server.call("getPythonData", Json.jobId(finished.get("jobId").getAsString()));
    }

    @Test
    void progressNotificationsArriveInOrderBeforeCompletion() throws Exception {
        JsonObject done = run(Json.of("scriptText", String.join("\n",
                "import time",
                "for i in range(1, 11):",
                "    update_job_progress(i / 10, 'step %d' % i)",
                "    time.sleep(0.05)")));
        String id = done.get("jobId").getAsString();
        List<ServerProcess.Notification> all = server.notificationsFor(id);
        List<String> states = new ArrayList<>();
        List<Double> progress = new ArrayList<>();
        int completedAt = -1;
        for (int i = 0; i < all.size(); i++) {
            ServerProcess.Notification n = all.get(i);
            if (n.method().equals("job/stateChanged")) {
                states.add(n.params().get("state").getAsString());
                if (n.params().get("state").getAsString().equals("COMPLETED")) completedAt = i;
            } else {
                progress.add(n.params().get("progress").getAsDouble());
                assertTrue(completedAt < 0, "progress after COMPLETED");
            }
        }
        assertEquals(List.of("QUEUED", "ACTIVE", "COMPLETED"), states);
        assertTrue(progress.size() >= 5, "expected most of the 10 spaced-out reports, got " + progress);
        for (int i = 1; i < progress.size(); i++) {
            assertTrue(progress.get(i) >= progress.get(i - 1), "out of order: " + progress);
        }
        assertEquals(1.0, progress.get(progress.size() - 1));
        JsonObject p = server.callObject("getProgress", Json.jobId(id));
        assertEquals("COMPLETED", p.get("state").getAsString());
        assertEquals(1.0, p.get("progress").getAsDouble());
        assertEquals(1, p.get("attempt").getAsInt());
    }

    @Test
    void aProgressFloodIsCoalescedButTheLastValueArrives() throws Exception {
        JsonObject done = run(Json.of("scriptText", String.join("\n",
                "n = 100000",
                "for i in range(n):",
                "    update_job_progress(i / n)",
                "update_job_progress(0.999, 'almost')",
                "python_data = {'calls': n + 1}")));
        String id = done.get("jobId").getAsString();
        List<ServerProcess.Notification> progress = server.notificationsFor(id).stream()
                .filter(n -> n.method().equals("job/progress")).toList();
        assertTrue(progress.size() < 2000, "100,001 reports should be coalesced, got " + progress.size());
        // The script's own last value is the last notification, and it comes before COMPLETED.
        JsonObject last = progress.get(progress.size() - 1).params();
        assertEquals(0.999, last.get("progress").getAsDouble(), last.toString());
        assertEquals("almost", last.get("message").getAsString());
        List<ServerProcess.Notification> all = server.notificationsFor(id);
        assertEquals("COMPLETED", all.get(all.size() - 1).params().get("state").getAsString());
        assertEquals(1.0, server.callObject("getProgress", Json.jobId(id)).get("progress").getAsDouble());
    }

    @Test
    void pythonDataRoundTripsUnicodeNestingAndFiveMegabytes() throws Exception {
        StringBuilder big = new StringBuilder();
        while (big.length() < 5 * 1024 * 1024) big.append("blender-jobs 0123456789 ");
        JsonObject passed = new JsonObject();
        passed.addProperty("text", "héllo wörld ✓ 日本語 🐍 \u0000 nul");
        passed.add("nested", JsonParser.parseString("{\"a\": [1, 2.5, {\"b\": [true, false, null]}], \"c\": {\"d\": {\"e\": \"deep\"}}}"));
        passed.addProperty("big", big.toString());
        JsonObject done = run(Json.of("script", ServerProcess.fixture("jobs/echo.py").toString(), "passedData", passed));
        JsonObject data = pythonData(done).getAsJsonObject();
        assertEquals(passed, data.getAsJsonObject("passed"));
        JsonArray seen = data.getAsJsonArray("globals_seen");
        assertEquals(3, seen.size(), "every passedData key is a global: " + seen);
    }

    @Test
    void nullsInPythonDataSurviveTheWire() throws Exception {
        JsonObject done = run(Json.of("scriptText",
                "python_data = {'a': None, 'b': [None, 1], 'c': {'d': None}, 'e': float('1e308')}"));
        assertEquals(JsonParser.parseString("{\"a\":null,\"b\":[null,1],\"c\":{\"d\":null},\"e\":1.0E308}"),
                pythonData(done));
        String raw = server.rawStdout();
        assertTrue(raw.contains("{\"a\":null,\"b\":[null,1],\"c\":{\"d\":null}"), "nulls must be sent, not dropped");
    }

    @Test
    void mathutilsAndTuplesBecomeArraysAndOtherValuesFailNamingTheKey() throws Exception {
        JsonObject ok = run(Json.of("scriptText", String.join("\n",
                "from mathutils import Vector, Color, Matrix",
                "python_data = {'v': Vector((1, 2, 3)), 't': (1, 'a'), 'c': Color((0.5, 0.25, 1)), 'm': Matrix.Identity(2)}")));
        assertEquals(JsonParser.parseString("{\"v\":[1.0,2.0,3.0],\"t\":[1,\"a\"],\"c\":[0.5,0.25,1.0],\"m\":[[1.0,0.0],[0.0,1.0]]}"),
                pythonData(ok));

        JsonObject bad = run(Json.of("scriptText", "import bpy\npython_data = {'fine': 1, 'scene': {'obj': bpy.context.scene}}"));
        assertEquals("FAILED", bad.get("state").getAsString());
        JsonObject error = bad.getAsJsonObject("error");
        assertEquals("RESULT_NOT_SERIALIZABLE", error.get("kind").getAsString());
        assertTrue(error.get("message").getAsString().contains("python_data['scene']['obj']"), error.toString());
    }

    @Test
    void passedStringsWithQuotesBackslashesAndCodeArriveIntactAndAreNeverExecuted() throws Exception {
        String nasty = "he said \"hi\" and 'bye' \\ back\\slash \\n not-newline\nreal newline \"\"\" ''' "
                + "__import__('os').system('touch /tmp/blender-jobs-pwned') \"); import os; #";
        JsonObject passed = Json.of("nasty", nasty, "also", "\\x00\\u0041");
        JsonObject done = run(Json.of("script", ServerProcess.fixture("jobs/echo.py").toString(), "passedData", passed));
        JsonObject back = pythonData(done).getAsJsonObject().getAsJsonObject("passed");
        assertEquals(nasty, back.get("nasty").getAsString());
        assertEquals("\\x00\\u0041", back.get("also").getAsString());
        assertFalse(Files.exists(Path.of("/tmp/blender-jobs-pwned")), "a passed string was executed");
    }

    @Test
    void blendFileRunsOnAPrivateCopyAndTheOriginalIsUntouched(@TempDir Path tmp) throws Exception {
        Path original = tmp.resolve("scene.blend");
        Files.copy(ServerProcess.fixture("blend/scene.blend"), original);
        String before = sha256(original);
        JsonObject done = run(Json.of("script", ServerProcess.fixture("jobs/scene_info.py").toString(),
                "blendFile", original.toString()));
        JsonObject data = pythonData(done).getAsJsonObject();
        assertTrue(data.getAsJsonArray("objects").toString().contains("\"Cube\""), data.toString());
        assertEquals(77, data.get("scene_frame_end").getAsInt());
        assertNotEquals(original.toString(), data.get("filepath").getAsString(), "must run on a private copy");
        assertEquals(before, sha256(original), "the client's .blend was modified");
        // The next job on the same workers starts from empty data again.
        JsonObject empty = run(Json.of("script", ServerProcess.fixture("jobs/probe_state.py").toString()));
        assertEquals("[]", pythonData(empty).getAsJsonObject().get("objects").toString());
    }

    @Test
    void aScriptThatRaisesFailsWithItsTraceback() throws Exception {
        JsonObject done = run(Json.of("script", ServerProcess.fixture("jobs/raises.py").toString()));
        assertEquals("FAILED", done.get("state").getAsString());
        JsonObject error = done.getAsJsonObject("error");
        assertEquals("SCRIPT_ERROR", error.get("kind").getAsString());
        String tb = error.get("traceback").getAsString();
        assertTrue(tb.contains("ValueError: fixture failure: expected"), tb);
        assertTrue(tb.contains("inner") && tb.contains("outer"), tb);
        assertTrue(tb.contains("raises.py"), tb);
        assertFalse(tb.contains("worker_runtime.py"), "runtime frames should be hidden: " + tb);
    }

    @Test
    void cancelKillsTheRunningBlender() throws Exception {
        String id = server.addJob(Json.of("scriptText", "import time\nupdate_job_progress(0.1)\ntime.sleep(60)"));
        server.awaitNotification(n -> n.method().equals("job/progress") && n.params().get("jobId").getAsString().equals(id),
                HANG_GUARD);
        long pid = server.callObject("getJob", Json.jobId(id)).get("workerPid").getAsLong();
        ProcessHandle blender = ProcessHandle.of(pid).orElseThrow();
        JsonObject canceled = server.callObject("cancelJob", Json.jobId(id));
        assertEquals("CANCELED", canceled.get("state").getAsString());
        assertEquals("ACTIVE", canceled.get("previousState").getAsString());
        assertEquals("CANCELED", server.awaitFinal(id, HANG_GUARD).get("state").getAsString());
        ProtocolIT.assertNoneAliveWithin(List.of(blender), Duration.ofSeconds(10));
        // The slot is refilled: a new job still runs.
        assertEquals("COMPLETED", run(Json.of("scriptText", "python_data = {'after': 'cancel'}")).get("state").getAsString());
    }

    @Test
    void twentyJobsOverTwoWorkersAllComplete() throws Exception {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            ids.add(server.addJob(Json.of("scriptText", "import time\ntime.sleep(0.05)\npython_data = {'i': i}",
                    "passedData", Json.of("i", i), "name", "batch-" + i)));
        }
        for (int i = 0; i < 20; i++) {
            JsonObject done = server.awaitFinal(ids.get(i), HANG_GUARD);
            assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
            assertEquals(i, server.callObject("getPythonData", Json.jobId(ids.get(i))).get("i").getAsInt());
        }
        JsonObject listed = server.callObject("listJobs", Json.of("name", "batch-7"));
        assertEquals(1, listed.get("count").getAsInt());
    }

    @Test
    void twoMegabytesOfOutputCompleteAndTheLogKeepsIt() throws Exception {
        JsonObject done = run(Json.of("script", ServerProcess.fixture("jobs/print_2mb.py").toString()));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        JsonObject job = server.callObject("getJob", Json.jobId(done.get("jobId").getAsString()));
        JsonArray tail = job.getAsJsonArray("logTail");
        assertTrue(tail.toString().contains("last line marker"), tail.toString());
        Path log = Path.of(job.get("logFile").getAsString());
        assertTrue(Files.size(log) > 2_000_000, "log holds " + Files.size(log) + " bytes");
        assertTrue(Files.readString(log).contains("line 00000"));
    }

    @Test
    void aFailedAttemptIsRetriedUpToMaxAttempts(@TempDir Path tmp) throws Exception {
        String flaky = String.join("\n",
                "import os",
                "if not os.path.exists(marker):",
                "    open(marker, 'w').close()",
                "    raise RuntimeError('first attempt fails')",
                "python_data = {'attempt': 'second'}");
        JsonObject done = run(Json.of("scriptText", flaky, "maxAttempts", 2,
                "passedData", Json.of("marker", tmp.resolve("marker").toString())));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        assertEquals(2, done.get("attempt").getAsInt());
        JsonObject job = server.callObject("getJob", Json.jobId(done.get("jobId").getAsString()));
        assertEquals(1, job.getAsJsonArray("earlierErrors").size());
        assertEquals("second", server.callObject("getPythonData", Json.jobId(done.get("jobId").getAsString()))
                .get("attempt").getAsString());

        JsonObject gaveUp = run(Json.of("scriptText", "raise RuntimeError('always')", "maxAttempts", 3));
        assertEquals("FAILED", gaveUp.get("state").getAsString());
        assertEquals(3, gaveUp.get("attempt").getAsInt());
    }

    @Test
    void aCrashingOrExitingBlenderFailsTheJobAndTheWorkerIsReplaced() throws Exception {
        JsonObject crashed = run(Json.of("scriptText", "import ctypes\nctypes.string_at(0)"));
        assertEquals("FAILED", crashed.get("state").getAsString());
        assertEquals("BLENDER_CRASHED", crashed.getAsJsonObject("error").get("kind").getAsString(), crashed.toString());
        assertTrue(crashed.getAsJsonObject("error").has("crashReport"), "Blender's crash report: " + crashed);

        JsonObject exited = run(Json.of("scriptText", "import os\nos._exit(0)"));
        assertEquals("BLENDER_EXITED", exited.getAsJsonObject("error").get("kind").getAsString(), exited.toString());

        JsonObject sysExit = run(Json.of("scriptText", "import sys\nsys.exit(3)"));
        assertEquals("SCRIPT_EXITED", sysExit.getAsJsonObject("error").get("kind").getAsString(), sysExit.toString());

        assertEquals("COMPLETED", run(Json.of("scriptText", "python_data = {'alive': True}")).get("state").getAsString());
    }

    @Test
    void processesAScriptStartsDieWithItsJob() throws Exception {
        JsonObject done = run(Json.of("scriptText", String.join("\n",
                "import subprocess",
                "child = subprocess.Popen(['sh', '-c', 'trap \"\" TERM; sleep 300'])",
                "python_data = {'child': child.pid}")));
        long child = pythonData(done).getAsJsonObject().get("child").getAsLong();
        ProtocolIT.assertNoneAliveWithin(ProcessHandle.of(child).stream().toList(), Duration.ofSeconds(5));
        assertEquals("COMPLETED", run(Json.of("scriptText", "python_data = {}")).get("state").getAsString());
    }

    @Test
    void getStatsCountsLikeTheAddOnPanel() throws Exception {
        JsonObject stats = server.callObject("getStats", new JsonObject());
        for (String key : new String[]{"queued", "active", "completed", "failed", "canceled", "workers", "freeWorkers"}) {
            assertNotNull(stats.get(key), key + " missing: " + stats);
        }
        assertEquals(2, stats.get("workers").getAsInt());
    }

    static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }
}
