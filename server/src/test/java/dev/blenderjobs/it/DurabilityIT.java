package dev.blenderjobs.it;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Results survive restarts: a server started again on the same state directory lists the jobs
 * of the one before, serves their results, and reports the jobs it left unfinished as
 * INTERRUPTED, to be resumed on request or with --resume. Real server jar, real Blender.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class DurabilityIT {
    static final Duration HANG_GUARD = Duration.ofSeconds(120);

    /** First run: marks itself and hangs (to be interrupted); a run after that finishes at once. */
    static final String RUNS_TWICE = String.join("\n",
            "import os, time",
            "if not os.path.exists(marker):",
            "    open(marker, 'w').close()",
            "    print('printed by the first run', flush=True)",
            "    update_job_progress(0.1)",
            "    time.sleep(120)",
            "python_data = {'run': 'after the restart'}");

    @Test
    void finishedJobsAndTheirResultsSurviveARestart(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        String ok;
        String bad;
        String okDir;
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            assertFalse(a.initializeResult.get("stateDirTemporary").getAsBoolean());
            assertEquals(0, a.initializeResult.getAsJsonObject("recoveredJobs").get("jobs").getAsInt());
            ok = a.runToEnd(Json.of("name", "keeps", "passedData", Json.of("text", "quotes ' \" and \\ survive"),
                    "scriptText", String.join("\n",
                            "import bpy",
                            "print('hello from the first server')",
                            "mesh = bpy.data.meshes.new('Kept')",
                            "data_blocks = [mesh]",
                            "python_data = {'answer': 42, 'text': text}")), HANG_GUARD).get("jobId").getAsString();
            bad = a.runToEnd(Json.of("scriptText", "raise ValueError('broken on purpose')"), HANG_GUARD)
                    .get("jobId").getAsString();
            okDir = a.callObject("getJob", Json.jobId(ok)).get("directory").getAsString();
            assertEquals(0, a.shutdownAndExit());
        }

        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            JsonObject recovered = b.initializeResult.getAsJsonObject("recoveredJobs");
            assertEquals(2, recovered.get("jobs").getAsInt(), b.initializeResult.toString());
            assertEquals(0, recovered.get("interrupted").getAsInt());

            JsonObject list = b.callObject("listJobs", new JsonObject());
            assertEquals(List.of(ok, bad), ids(list.getAsJsonArray("jobs")));
            assertEquals("keeps", list.getAsJsonArray("jobs").get(0).getAsJsonObject().get("name").getAsString());

            JsonElement data = b.call("getPythonData", Json.jobId(ok));
            assertEquals(JsonParser.parseString("{\"answer\": 42, \"text\": \"quotes ' \\\" and \\\\ survive\"}"), data);
            JsonObject blocks = b.callObject("getDataBlocks", Json.jobId(ok));
            assertEquals("Kept", blocks.getAsJsonObject("blocks").getAsJsonArray("meshes").get(0).getAsString());
            assertTrue(Files.isRegularFile(Path.of(blocks.get("library").getAsString())), blocks.toString());

            JsonObject okJob = b.callObject("getJob", Json.jobId(ok));
            assertEquals("COMPLETED", okJob.get("state").getAsString());
            assertEquals(okDir, okJob.get("directory").getAsString());
            assertTrue(okJob.getAsJsonArray("logTail").toString().contains("hello from the first server"),
                    okJob.toString());
            JsonObject badJob = b.callObject("getJob", Json.jobId(bad));
            assertEquals("SCRIPT_ERROR", badJob.getAsJsonObject("error").get("kind").getAsString());
            assertTrue(badJob.getAsJsonObject("error").get("traceback").getAsString()
                    .contains("ValueError: broken on purpose"), badJob.toString());
            assertEquals(1003, b.callError("getPythonData", Json.jobId(bad)).getCode());

            // The restarted server runs new jobs beside the old ones, and removes old ones for good.
            assertEquals("COMPLETED", b.runToEnd(Json.of("scriptText", "python_data = 1"), HANG_GUARD)
                    .get("state").getAsString());
            b.callObject("removeJob", Json.jobId(ok));
            awaitGone(Path.of(okDir));
            assertEquals(0, b.shutdownAndExit());
        }

        try (ServerProcess c = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            List<String> left = ids(c.callObject("listJobs", new JsonObject()).getAsJsonArray("jobs"));
            assertEquals(2, left.size(), left.toString());
            assertFalse(left.contains(ok), "a removed job stays removed");
            assertTrue(left.contains(bad));
        }
    }

    @Test
    void jobsLeftUnfinishedByAKilledServerAreInterruptedAndResumedOnRequest(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        String running;
        String waiting;
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            String[] ids = oneRunningOneWaiting(a, tmp);
            running = ids[0];
            waiting = ids[1];
            // A running job's log grows under log.txt.part; log.txt only ever holds a whole log.
            Path part = Path.of(a.callObject("getJob", Json.jobId(running)).get("logFile").getAsString());
            assertEquals("log.txt.part", part.getFileName().toString());
            awaitFileContains(part, "printed by the first run");
            List<ProcessHandle> blenders = a.blenderProcesses();
            a.process.toHandle().destroyForcibly(); // SIGKILL: no hook runs, no record is written
            assertTrue(a.process.waitFor(30, TimeUnit.SECONDS));
            ProtocolIT.assertNoneAliveWithin(blenders, Duration.ofSeconds(5));
        }

        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            JsonObject recovered = b.initializeResult.getAsJsonObject("recoveredJobs");
            assertEquals(2, recovered.get("interrupted").getAsInt(), b.initializeResult.toString());
            assertEquals(0, recovered.get("resumed").getAsInt());

            // Each is reported, after the answer to initialize (LSP: nothing before it).
            JsonObject told = b.awaitState(running, List.of("INTERRUPTED"), HANG_GUARD);
            assertEquals("ACTIVE", told.get("previousState").getAsString());
            assertEquals("INTERRUPTED", told.getAsJsonObject("error").get("kind").getAsString());
            assertEquals("QUEUED", b.awaitState(waiting, List.of("INTERRUPTED"), HANG_GUARD)
                    .get("previousState").getAsString());
            assertInitializeAnsweredBeforeAnyNotification(b);

            JsonObject job = b.callObject("getJob", Json.jobId(running));
            assertEquals("INTERRUPTED", job.get("state").getAsString());
            // What the job printed before the kill is kept, now under the final name.
            Path log = Path.of(job.get("logFile").getAsString());
            assertEquals("log.txt", log.getFileName().toString());
            assertTrue(Files.readString(log).contains("printed by the first run"), Files.readString(log));
            assertTrue(job.getAsJsonArray("logTail").toString().contains("printed by the first run"), job.toString());
            assertTrue(job.getAsJsonObject("error").get("message").getAsString().contains("stopped unexpectedly"),
                    job.toString());
            assertEquals(2, b.callObject("listJobs", Json.of("state", "INTERRUPTED")).get("count").getAsInt());
            assertEquals(1006, b.callError("getPythonData", Json.jobId(running)).getCode());
            assertEquals(2, b.callObject("getStats", new JsonObject()).get("interrupted").getAsInt());

            JsonObject resumed = b.callObject("resumeJob", Json.jobId(running));
            assertEquals("INTERRUPTED", resumed.get("previousState").getAsString());
            JsonObject all = b.callObject("resumeAll", new JsonObject());
            assertEquals(1, all.get("resumed").getAsInt(), all.toString());
            assertEquals(waiting, all.getAsJsonArray("jobIds").get(0).getAsString());

            assertEquals("COMPLETED", b.awaitFinal(running, HANG_GUARD).get("state").getAsString());
            assertEquals("COMPLETED", b.awaitFinal(waiting, HANG_GUARD).get("state").getAsString());
            assertEquals(JsonParser.parseString("{\"run\": \"after the restart\"}"),
                    b.call("getPythonData", Json.jobId(running)));
            JsonObject after = b.callObject("getJob", Json.jobId(running));
            String whole = Files.readString(Path.of(after.get("logFile").getAsString()));
            assertTrue(whole.indexOf("printed by the first run") < whole.indexOf("resumed after an interruption"),
                    "the resumed run's log goes on from the first one: " + whole);
            assertFalse(Files.exists(log.resolveSibling("log.txt.part")));
            assertEquals("INTERRUPTED", after.getAsJsonArray("earlierErrors").get(0).getAsJsonObject()
                    .get("kind").getAsString());
            assertEquals(1007, b.callError("resumeJob", Json.jobId(running)).getCode());
        }
    }

    @Test
    void aGracefulStopInterruptsUnfinishedJobsAndResumeRunsThemByItself(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        String running;
        String waiting;
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            String[] ids = oneRunningOneWaiting(a, tmp);
            running = ids[0];
            waiting = ids[1];
            a.call("shutdown", null);
            // The client still listening is told (this one before exit; one that closed stdin would be too).
            assertTrue(a.awaitState(running, List.of("INTERRUPTED"), HANG_GUARD).getAsJsonObject("error")
                    .get("message").getAsString().contains("the client sent shutdown"));
            a.awaitState(waiting, List.of("INTERRUPTED"), HANG_GUARD);
            a.remote.notify("exit", null);
            assertTrue(a.process.waitFor(30, TimeUnit.SECONDS));
            assertEquals(0, a.process.exitValue());
        }

        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state, "--resume")) {
            assertEquals(2, b.initializeResult.getAsJsonObject("recoveredJobs").get("resumed").getAsInt(),
                    b.initializeResult.toString());
            assertEquals("COMPLETED", b.awaitFinal(running, HANG_GUARD).get("state").getAsString());
            assertEquals("COMPLETED", b.awaitFinal(waiting, HANG_GUARD).get("state").getAsString());
            assertInitializeAnsweredBeforeAnyNotification(b);
            // Resumed in the order they were added.
            List<String> starts = b.allNotifications().stream()
                    .filter(n -> n.method().equals("job/stateChanged") && n.params().get("state").getAsString().equals("ACTIVE"))
                    .map(n -> n.params().get("jobId").getAsString()).toList();
            assertEquals(List.of(running, waiting), starts);
        }
    }

    @Test
    void exitAndEndOfInputRightAfterShutdownLoseNoNotificationAndNoRecord(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        List<String> ids = new java.util.ArrayList<>();
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            String[] two = oneRunningOneWaiting(a, tmp);
            ids.addAll(List.of(two));
            for (int i = 0; i < 3; i++) ids.add(a.addJob(Json.of("scriptText", "python_data = " + i)));
            a.call("shutdown", null);
            // exit, then stdin closed at once: the two ways out race inside the server.
            a.remote.notify("exit", null);
            a.process.getOutputStream().close();
            assertTrue(a.process.waitFor(30, TimeUnit.SECONDS));
            for (String id : ids) {
                assertEquals("INTERRUPTED", a.awaitState(id, List.of("INTERRUPTED"), Duration.ofSeconds(5))
                        .get("state").getAsString());
            }
        }
        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            assertEquals(ids.size(), b.callObject("listJobs", Json.of("state", "INTERRUPTED")).get("count").getAsInt());
        }
    }

    @Test
    void eachWorkspaceHasItsOwnDefaultStateDirectoryHeldByOneServerAtATime(@TempDir Path tmp) throws Exception {
        Map<String, String> env = Map.of("XDG_DATA_HOME", tmp.resolve("data").toString());
        String projectA = tmp.resolve("project-a").toUri().toString();
        String projectB = tmp.resolve("project-b").toUri().toString();
        Path workspaces = tmp.resolve("data/blender-jobs/workspaces");
        String kept;
        String dirA;
        try (ServerProcess a = ServerProcess.start(env, Json.of("rootUri", projectA), "--workers", "1");
             ServerProcess sameProject = ServerProcess.start(env, Json.obj("{'workspaceFolders': [{'uri': '"
                     + projectA + "', 'name': 'a'}]}"), "--workers", "1");
             ServerProcess b = ServerProcess.start(env, Json.of("rootUri", projectB), "--workers", "1");
             ServerProcess none = ServerProcess.start(env, new JsonObject(), "--workers", "1")) {
            dirA = a.initializeResult.get("stateDir").getAsString();
            assertTrue(Path.of(dirA).startsWith(workspaces), dirA);
            assertFalse(a.initializeResult.get("stateDirTemporary").getAsBoolean());

            // A second editor window on the same project: a fresh directory, and why.
            JsonObject second = sameProject.initializeResult;
            assertTrue(second.get("stateDirTemporary").getAsBoolean(), second.toString());
            assertNotEquals(dirA, second.get("stateDir").getAsString());
            assertTrue(second.get("stateDirNote").getAsString().contains("in use by another blender-jobs server (pid "
                    + a.process.pid() + ")"), second.toString());
            assertTrue(sameProject.stderr().contains("in use by another blender-jobs server"), sameProject.stderr());

            String dirB = b.initializeResult.get("stateDir").getAsString();
            assertTrue(Path.of(dirB).startsWith(workspaces), dirB);
            assertNotEquals(dirA, dirB);

            assertTrue(none.initializeResult.get("stateDirTemporary").getAsBoolean());
            assertFalse(none.initializeResult.has("stateDirNote"), none.initializeResult.toString());

            kept = a.runToEnd(Json.of("scriptText", "python_data = {'project': 'a'}"), HANG_GUARD).get("jobId").getAsString();
            assertTrue(Files.isDirectory(Path.of(dirA, "jobs", kept)));
        }
        try (ServerProcess again = ServerProcess.start(env, Json.of("rootUri", projectA), "--workers", "1")) {
            assertEquals(dirA, again.initializeResult.get("stateDir").getAsString());
            assertEquals(1, again.initializeResult.getAsJsonObject("recoveredJobs").get("jobs").getAsInt());
            assertEquals(JsonParser.parseString("{\"project\": \"a\"}"), again.call("getPythonData", Json.jobId(kept)));
        }
    }

    @Test
    void retentionPrunesTheOldestFinishedJobsByCountAndByAge(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        List<String> ids = new java.util.ArrayList<>();
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state, "--retain-jobs", "2")) {
            for (int i = 0; i < 4; i++) {
                ids.add(a.runToEnd(Json.of("scriptText", "python_data = " + i), HANG_GUARD).get("jobId").getAsString());
            }
            assertEquals(ids.subList(2, 4), ids(a.callObject("listJobs", new JsonObject()).getAsJsonArray("jobs")));
            awaitGone(Path.of(state, "jobs", ids.get(0)));
            awaitGone(Path.of(state, "jobs", ids.get(1)));
            assertEquals(1001, a.callError("getJob", Json.jobId(ids.get(0))).getCode());
            for (String pruned : ids.subList(0, 2)) {
                assertEquals("RETENTION", a.awaitNotification(n -> n.method().equals("job/removed")
                        && n.params().get("jobId").getAsString().equals(pruned), HANG_GUARD).params().get("reason").getAsString());
            }
        }
        // Make one of the two look three days old, as a long-running project's would.
        Path record = Path.of(state, "jobs", ids.get(2), "job.json");
        JsonObject r = JsonParser.parseString(Files.readString(record)).getAsJsonObject();
        r.getAsJsonObject("job").addProperty("finishedAt", System.currentTimeMillis() - Duration.ofDays(3).toMillis());
        Files.writeString(record, r.toString());
        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state, "--retain-days", "2")) {
            assertEquals(1, b.initializeResult.getAsJsonObject("recoveredJobs").get("pruned").getAsInt());
            assertEquals(List.of(ids.get(3)), ids(b.callObject("listJobs", new JsonObject()).getAsJsonArray("jobs")));
            awaitGone(record.getParent());
            // A client that kept the id from the earlier session hears of it too, after initialize.
            assertEquals("RETENTION", b.awaitNotification(n -> n.method().equals("job/removed")
                    && n.params().get("jobId").getAsString().equals(ids.get(2)), HANG_GUARD).params().get("reason").getAsString());
            assertInitializeAnsweredBeforeAnyNotification(b);
        }
    }

    @Test
    void aDamagedRecordIsSkippedWithAReasonAndTheOtherJobsAreServed(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        String good;
        String damaged;
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            good = a.runToEnd(Json.of("scriptText", "python_data = 'fine'"), HANG_GUARD).get("jobId").getAsString();
            damaged = a.runToEnd(Json.of("scriptText", "python_data = 'lost'"), HANG_GUARD).get("jobId").getAsString();
        }
        Files.writeString(Path.of(state, "jobs", damaged, "job.json"), "{\"format\": 1, \"id\": \"jo");
        // No record before it either (aTornRecordIsServedAsTheRecordBeforeIt has one).
        Files.deleteIfExists(Path.of(state, "jobs", damaged, "job.json.spare"));
        Files.writeString(Path.of(state, "jobs", good, "job.json.tmp"), "{\"half a rec");
        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            assertEquals(List.of(good), ids(b.callObject("listJobs", new JsonObject()).getAsJsonArray("jobs")));
            assertEquals("\"fine\"", b.call("getPythonData", Json.jobId(good)).toString());
            assertTrue(b.stderr().contains("skipping " + Path.of(state, "jobs", damaged).toAbsolutePath()
                    + ": its record cannot be read"), b.stderr());
            assertTrue(Files.exists(Path.of(state, "jobs", damaged)), "left for a person to look at");
        }
    }

    @Test
    void aTornRecordIsServedAsTheRecordBeforeIt(@TempDir Path tmp) throws Exception {
        // Records are not fsynced and are written over an earlier record's bytes: after a power
        // cut job.json may be a mix of two. The record before it (job.json.spare) is used: the job
        // lost its last state change, as RELIABILITY.md says a power cut may, and runs again.
        String state = tmp.resolve("state").toString();
        String id;
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            id = a.runToEnd(Json.of("scriptText", "python_data = 'again'"), HANG_GUARD).get("jobId").getAsString();
        }
        Path record = Path.of(state, "jobs", id, "job.json");
        String whole = Files.readString(record);
        Files.writeString(record, whole.substring(0, whole.length() / 2));
        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state, "--resume")) {
            assertEquals(List.of(id), ids(b.callObject("listJobs", new JsonObject()).getAsJsonArray("jobs")));
            JsonObject done = b.awaitFinal(id, HANG_GUARD);
            assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
            assertEquals("\"again\"", b.call("getPythonData", Json.jobId(id)).toString());
            assertTrue(b.stderr().contains("so the record before it is used"), b.stderr());
        }
    }

    // ------------------------------------------------------------------ helpers

    /** Adds a job that runs (until interrupted) and one that waits behind it; returns their ids. */
    static String[] oneRunningOneWaiting(ServerProcess s, Path tmp) throws Exception {
        String running = s.addJob(Json.of("scriptText", RUNS_TWICE, "passedData",
                Json.of("marker", tmp.resolve("marker").toString())));
        String waiting = s.addJob(Json.of("scriptText", "python_data = {'waited': True}"));
        s.awaitNotification(n -> n.method().equals("job/progress")
                && n.params().get("jobId").getAsString().equals(running), HANG_GUARD);
        return new String[]{running, waiting};
    }

    static List<String> ids(JsonArray jobs) {
        List<String> out = new java.util.ArrayList<>();
        for (JsonElement j : jobs) out.add(j.getAsJsonObject().get("jobId").getAsString());
        return out;
    }

    static void awaitGone(Path path) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 10_000;
        while (Files.exists(path)) {
            if (System.currentTimeMillis() > deadline) throw new AssertionError(path + " still exists after 10 s");
            Thread.sleep(20);
        }
    }

    /** The console reaches the log on the server's drainer thread, beside the progress channel. */
    static void awaitFileContains(Path file, String text) throws Exception {
        long deadline = System.currentTimeMillis() + HANG_GUARD.toMillis();
        while (!Files.exists(file) || !Files.readString(file).contains(text)) {
            if (System.currentTimeMillis() > deadline) throw new AssertionError(file + " never held " + text);
            Thread.sleep(20);
        }
    }

    /** The raw stream: the initialize answer comes before the first notification. */
    static void assertInitializeAnsweredBeforeAnyNotification(ServerProcess s) {
        String out = s.rawStdout();
        int answer = out.indexOf("\"serverInfo\"");
        int firstNotification = out.indexOf("\"method\":\"job/");
        assertTrue(answer >= 0, out);
        assertTrue(firstNotification < 0 || answer < firstNotification,
                "a notification came before the initialize answer: " + out.substring(0, Math.min(2000, out.length())));
    }
}
