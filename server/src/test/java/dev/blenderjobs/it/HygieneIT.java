package dev.blenderjobs.it;

import com.google.gson.JsonObject;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Process hygiene and load: nothing outlives the server, a killed worker costs one attempt, nothing is lost. */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class HygieneIT {
    static final Duration HANG_GUARD = Duration.ofSeconds(120);

    @Test
    void killingTheServerWithSigkillMidJobLeavesNoBlenderBehind() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "2")) {
            String id = s.addJob(Json.of("scriptText", "import time\nupdate_job_progress(0.1)\ntime.sleep(120)"));
            s.awaitNotification(n -> n.method().equals("job/progress") && n.params().get("jobId").getAsString().equals(id),
                    HANG_GUARD);
            // Both connected: one busy, one idle (a Blender still booting notices only once its
            // Python runs, which a cold machine may take longer than 5 s to reach).
            s.awaitConnectedWorkers(2, HANG_GUARD);
            List<ProcessHandle> blenders = s.blenderProcesses();
            assertFalse(blenders.isEmpty());
            s.process.toHandle().destroyForcibly(); // SIGKILL: no shutdown hook runs
            ProtocolIT.assertNoneAliveWithin(blenders, Duration.ofSeconds(5));
        }
    }

    @Test
    void sigtermStopsEveryBlender() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "2")) {
            String id = s.addJob(Json.of("scriptText", "import time\nupdate_job_progress(0.1)\ntime.sleep(120)"));
            s.awaitNotification(n -> n.method().equals("job/progress") && n.params().get("jobId").getAsString().equals(id),
                    HANG_GUARD);
            s.awaitConnectedWorkers(2, HANG_GUARD);
            List<ProcessHandle> blenders = s.blenderProcesses();
            s.process.toHandle().destroy(); // SIGTERM: the shutdown hook stops the pool
            assertTrue(s.process.waitFor(30, TimeUnit.SECONDS));
            ProtocolIT.assertNoneAliveWithin(blenders, Duration.ofSeconds(5));
        }
    }

    @Test
    void aWorkerKilledMidJobCostsOneAttemptAndItsSlotIsRefilled(@TempDir Path tmp) throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            String script = String.join("\n",
                    "import os, time",
                    "if not os.path.exists(marker):",
                    "    open(marker, 'w').close()",
                    "    update_job_progress(0.1)",
                    "    time.sleep(120)",
                    "python_data = {'survived': True}");
            String id = s.addJob(Json.of("scriptText", script, "maxAttempts", 2,
                    "passedData", Json.of("marker", tmp.resolve("marker").toString())));
            s.awaitNotification(n -> n.method().equals("job/progress") && n.params().get("jobId").getAsString().equals(id),
                    HANG_GUARD);
            long pid = s.callObject("getJob", Json.jobId(id)).get("workerPid").getAsLong();
            ProcessHandle.of(pid).orElseThrow().destroyForcibly();
            JsonObject done = s.awaitFinal(id, HANG_GUARD);
            assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
            assertEquals(2, done.get("attempt").getAsInt());
            JsonObject job = s.callObject("getJob", Json.jobId(id));
            assertEquals("BLENDER_CRASHED", job.getAsJsonArray("earlierErrors").get(0).getAsJsonObject()
                    .get("kind").getAsString(), job.toString());
            assertTrue(job.get("workerPid").getAsLong() != pid);
        }
    }

    @Test
    void twoThousandJobsStartInFifoOrderAndEveryNotificationArrivesOnce() throws Exception {
        int n = 2000;
        try (ServerProcess s = ServerProcess.start("--workers", "2")) {
            List<CompletableFuture<Object>> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                sent.add(s.remote.request("addJob", Json.of("scriptText", "python_data = {}", "name", "load-" + i)));
            }
            List<String> ids = new ArrayList<>();
            for (CompletableFuture<Object> f : sent) {
                ids.add(((com.google.gson.JsonElement) f.get(60, TimeUnit.SECONDS)).getAsJsonObject().get("jobId").getAsString());
            }
            for (String id : ids) assertEquals("COMPLETED", s.awaitFinal(id, HANG_GUARD).get("state").getAsString());

            // 100 requests in flight at once all answer.
            List<CompletableFuture<Object>> inFlight = new ArrayList<>();
            for (int i = 0; i < 100; i++) inFlight.add(s.remote.request("getProgress", Json.jobId(ids.get(i))));
            for (CompletableFuture<Object> f : inFlight) assertTrue(f.get(60, TimeUnit.SECONDS) != null);

            Map<String, Integer> order = new HashMap<>();
            for (int i = 0; i < n; i++) order.put(ids.get(i), i);
            List<Integer> starts = new ArrayList<>();
            Map<String, List<String>> states = new HashMap<>();
            for (String id : ids) {
                for (ServerProcess.Notification note : s.notificationsFor(id)) {
                    if (!note.method().equals("job/stateChanged")) continue;
                    states.computeIfAbsent(id, k -> new ArrayList<>()).add(note.params().get("state").getAsString());
                }
            }
            for (String id : ids) {
                assertEquals(List.of("QUEUED", "ACTIVE", "COMPLETED"), states.get(id), "notifications of " + id);
            }
            {
                for (ServerProcess.Notification note : s.allNotifications()) {
                    if (note.method().equals("job/stateChanged") && note.params().get("state").getAsString().equals("ACTIVE")) {
                        starts.add(order.get(note.params().get("jobId").getAsString()));
                    }
                }
            }
            assertEquals(n, starts.size());
            for (int i = 0; i < n; i++) {
                if (starts.get(i) != i) {
                    throw new AssertionError("jobs must start in the order they were added: start #" + i + " was job #"
                            + starts.get(i) + "; starts around it: " + starts.subList(Math.max(0, i - 3), Math.min(n, i + 4)));
                }
            }
        }
    }

    @Test
    void aStateDirectoryIsHeldByOneServerAtATime(@TempDir Path tmp) throws Exception {
        Path state = tmp.resolve("state");
        try (ServerProcess first = ServerProcess.start("--workers", "1", "--state-dir", state.toString());
             ServerProcess second = ServerProcess.startRaw("--workers", "1", "--state-dir", state.toString())) {
            assertTrue(second.process.waitFor(60, TimeUnit.SECONDS), "the second server must refuse to start");
            assertEquals(2, second.process.exitValue());
            assertTrue(second.stderr().contains("is in use by another blender-jobs server (pid " + first.process.pid() + ")"),
                    second.stderr());
            String id = first.addJob(Json.of("scriptText", "python_data = {}"));
            assertEquals("COMPLETED", first.awaitFinal(id, HANG_GUARD).get("state").getAsString());
            Path dir = Path.of(first.callObject("getJob", Json.jobId(id)).get("directory").getAsString());
            assertTrue(dir.startsWith(state.toAbsolutePath()), dir.toString());
        }
    }

    @Test
    void aJobsFolderAndResultFileAreTheOnesTheServerMadeAhead() throws Exception {
        // No file is created on a trivial job's way (creating one costs ~0.3 ms of CPU on the
        // measured disks): the folder comes from spare-folders/, and the runtime writes the
        // result into the temporary the server made there, then renames it.
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            String script = String.join("\n",
                    "import os",
                    "tmp = os.path.join(os.path.dirname(os.getcwd()), 'result', 'python_data.json.tmp')",
                    "python_data = {'tmp': os.stat(tmp).st_ino if os.path.isfile(tmp) else None,",
                    "               'work': os.stat(os.getcwd()).st_ino}");
            s.runToEnd(Json.of("scriptText", "python_data = {}"), HANG_GUARD); // the spares are made meanwhile
            for (int i = 0; i < 3; i++) {
                JsonObject done = s.runToEnd(Json.of("scriptText", script), HANG_GUARD);
                String id = done.get("jobId").getAsString();
                assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
                JsonObject value = s.call("getPythonData", Json.jobId(id)).getAsJsonObject();
                Path dir = Path.of(s.callObject("getJob", Json.jobId(id)).get("directory").getAsString());
                assertFalse(value.get("tmp").isJsonNull(), "the job's result/ had no temporary made ahead");
                assertEquals(value.get("tmp").getAsLong(),
                        ((Number) Files.getAttribute(dir.resolve("result/python_data.json"), "unix:ino")).longValue(),
                        "the result was written into a new file, not the one made ahead");
                String state = dir.getParent().getParent().toString();
                assertTrue(Files.isDirectory(Path.of(state, "spare-folders")), "no spare folders in " + state);
            }
        }
    }

    /**
     * Runs a job whose first attempt runs {@code firstAttempt} (Python lines; {@code tmp} is the
     * result's temporary, which the runtime keeps across attempts) and fails, and whose second
     * leaves {@code {'second': True}}; checks that it completed so, and returns its directory.
     */
    private static Path completedOnTheSecondAttempt(ServerProcess s, String... firstAttempt) throws Exception {
        StringBuilder script = new StringBuilder(String.join("\n",
                "import os",
                "tmp = os.path.join(os.path.dirname(os.getcwd()), 'result', 'python_data.json.tmp')",
                "if not os.path.exists('first.txt'):",
                "    open('first.txt', 'w').write('ran')"));
        for (String line : firstAttempt) script.append("\n    ").append(line);
        script.append("\n    raise RuntimeError('first attempt')\npython_data = {'second': True}");
        JsonObject done = s.runToEnd(Json.of("scriptText", script.toString(), "maxAttempts", 2), HANG_GUARD);
        String id = done.get("jobId").getAsString();
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        assertEquals(2, done.get("attempt").getAsInt(), done.toString());
        assertEquals("{\"second\":true}", s.call("getPythonData", Json.jobId(id)).toString());
        return Path.of(s.callObject("getJob", Json.jobId(id)).get("directory").getAsString());
    }

    @Test
    void aRetryNeverWritesItsResultThroughALinkAnEarlierAttemptLeft() throws Exception {
        // The runtime keeps result/python_data.json.tmp across attempts (it is made ahead); one
        // that an attempt's script hard-linked to another file is deleted, not written into.
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            Path dir = completedOnTheSecondAttempt(s,
                    "open('victim.txt', 'w').write('mine')",
                    "if os.path.lexists(tmp): os.remove(tmp)",
                    "os.link('victim.txt', tmp)");
            assertEquals("mine", Files.readString(dir.resolve("work/victim.txt")));
        }
    }

    @Test
    void aRetryWritesItsResultOverWhatAnEarlierAttemptLeftInTheTemporaryAndKeepsNothingOfIt() throws Exception {
        // The runtime writes its result over the kept temporary (no O_TRUNC): what an earlier
        // attempt left there, longer than the result, must be cut off (the server checks the
        // size and SHA-256 the runtime reports, so a tail left behind would fail the job).
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            Path dir = completedOnTheSecondAttempt(s, "open(tmp, 'w').write('x' * 100000)");
            assertEquals("{\"second\":true}", Files.readString(dir.resolve("result/python_data.json")));
        }
    }

    @Test
    void namesAreLabelsAndNeverPaths() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            String stateDir = s.callObject("initialize", new JsonObject()).get("stateDir").getAsString();
            for (String name : new String[]{"../../../../tmp/escaped", "/etc/passwd", "a\u0000b", "x".repeat(1000)}) {
                String id = s.addJob(Json.of("scriptText", "open('out.txt', 'w').write('hi')\npython_data = {}", "name", name));
                assertEquals("COMPLETED", s.awaitFinal(id, HANG_GUARD).get("state").getAsString());
                JsonObject job = s.callObject("getJob", Json.jobId(id));
                assertEquals(name, job.get("name").getAsString());
                Path dir = Path.of(job.get("directory").getAsString());
                assertTrue(dir.startsWith(Path.of(stateDir)), dir + " outside " + stateDir);
                assertTrue(Files.exists(dir.resolve("work/out.txt")), "relative files land in the job's work dir");
            }
            assertFalse(Files.exists(Path.of("/tmp/escaped")));
        }
    }
}
