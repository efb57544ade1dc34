package dev.blenderjobs.it;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@code --executor slurm} on a real two-node Slurm cluster (test-fixtures/slurm/cluster.sh, one
 * cluster for the whole class), through the real stdio wire: pilots are real sbatch jobs whose
 * Blender runs on node1/node2 (their own network namespaces and addresses) and connects back to
 * the server bound on the cluster's bridge address. Files travel over the channel: no test
 * relies on the nodes seeing the server's disk (they do here, which is why the runtime resolves a
 * remote job's paths only inside a folder of its own).
 */
@Timeout(value = 4, unit = TimeUnit.MINUTES)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SlurmExecutorIT {
    @RegisterExtension
    static final SlurmCluster cluster = new SlurmCluster();

    static final Duration GUARD = Duration.ofSeconds(120);
    /** Bound for pilots to leave Slurm's queue after their server stopped or died. */
    static final Duration PILOTS_GONE = Duration.ofSeconds(20);
    private static final Pattern HEX64 = Pattern.compile("[0-9a-f]{64}");

    private final List<ServerProcess> servers = new ArrayList<>();
    /** Pilot folders that existed before this class: the ones it leaves (a killed node's) are deleted after it. */
    private static final Set<Path> PILOT_DIRS_BEFORE = new HashSet<>();

    @org.junit.jupiter.api.BeforeAll
    static void notePilotDirs() throws IOException {
        PILOT_DIRS_BEFORE.addAll(pilotDirs());
    }

    @org.junit.jupiter.api.AfterAll
    static void deletePilotDirsOfKilledNodes() throws IOException {
        for (Path p : pilotDirs()) {
            if (!PILOT_DIRS_BEFORE.contains(p)) deleteTree(p);
        }
    }

    static List<Path> pilotDirs() throws IOException {
        try (var dirs = Files.list(Path.of(System.getenv().getOrDefault("TMPDIR", "/tmp")))) {
            return dirs.filter(p -> p.getFileName().toString().startsWith("blender-jobs-pilot.")).toList();
        }
    }

    @AfterEach
    void stopServers() throws Exception {
        for (ServerProcess s : servers) s.close();
        servers.clear();
        // Whatever a test did, its server's pilots are gone once the server stopped.
        awaitNoPilots(PILOTS_GONE);
    }

    /** A server with --executor slurm on the test cluster, its pilots on the default partition. */
    private ServerProcess slurmServer(String... extra) throws Exception {
        List<String> args = new ArrayList<>(List.of("--executor", "slurm", "--slurm-partition", cluster.partition()));
        if (!List.of(extra).contains("--listen")) args.addAll(List.of("--listen", cluster.hostAddress()));
        args.addAll(List.of(extra));
        return start(cluster.env(), args);
    }

    private ServerProcess start(Map<String, String> env, List<String> args) throws Exception {
        ServerProcess s = ServerProcess.start(env, new JsonObject(), args.toArray(String[]::new));
        servers.add(s);
        return s;
    }

    // ------------------------------------------------------------------ the example jobs

    @Test
    @Order(1)
    void theExampleJobsGiveTheLocalExecutorsResultsByteForByteAndProgressArrives() throws Exception {
        ServerProcess local = start(Map.of(), List.of("--workers", "1"));
        ServerProcess slurm = slurmServer("--workers", "2", "--slurm-min-pilots", "2");
        JsonObject stats = awaitPilots(slurm, 2);
        assertEquals("slurm", stats.get("executor").getAsString());
        Set<String> nodes = new HashSet<>();
        for (JsonElement e : stats.getAsJsonArray("workerDetails")) {
            JsonObject batch = e.getAsJsonObject().getAsJsonObject("batchJob");
            assertEquals("slurm", batch.get("system").getAsString(), e.toString());
            assertEquals("RUNNING", batch.get("state").getAsString(), e.toString());
            assertTrue(batch.get("id").getAsString().matches("\\d+"), e.toString());
            nodes.add(batch.get("node").getAsString());
            long left = e.getAsJsonObject().get("timeLeftSeconds").getAsLong();
            assertTrue(left > 3000 && left <= 3600, "a one-hour pilot: " + e);
        }
        assertEquals(Set.of("node1", "node2"), nodes, "one pilot per node (one CPU each)");

        Map<String, JsonObject> examples = new java.util.LinkedHashMap<>();
        examples.put("remesh.py", Json.of("passedDataBlocks", passedBlocks("Cube"), "passedData", Json.of("duration", 0.5)));
        examples.put("bmesh_quad.py", Json.of("passedDataBlocks", passedBlocks("Cube")));
        examples.put("metaballs.py", Json.of("passedDataBlocks", passedBlocks("Tetra"), "passedData", Json.of("delay", 0.25)));
        examples.put("echo.py", Json.of("passedData", Json.of("text", "h\u00e9llo \u2713", "n", 3)));
        for (Map.Entry<String, JsonObject> ex : examples.entrySet()) {
            JsonObject params = Json.of("script", ServerProcess.fixture("jobs/" + ex.getKey()).toString());
            ex.getValue().entrySet().forEach(e -> params.add(e.getKey(), e.getValue()));
            JsonObject onLocal = local.runToEnd(params.deepCopy(), GUARD);
            JsonObject onSlurm = slurm.runToEnd(params.deepCopy(), GUARD);
            assertEquals("COMPLETED", onLocal.get("state").getAsString(), ex.getKey() + " locally: " + onLocal);
            assertEquals("COMPLETED", onSlurm.get("state").getAsString(), ex.getKey() + " on Slurm: " + onSlurm
                    + "\n" + slurm.stderr());
            String l = onLocal.get("jobId").getAsString();
            String s = onSlurm.get("jobId").getAsString();
            assertArrayEquals(Files.readAllBytes(resultFile(local, l, "python_data.json")),
                    Files.readAllBytes(resultFile(slurm, s, "python_data.json")),
                    ex.getKey() + ": python_data.json differs between the local and the Slurm executor");
            JsonObject blocksLocal = local.callObject("getDataBlocks", Json.jobId(l));
            JsonObject blocksSlurm = slurm.callObject("getDataBlocks", Json.jobId(s));
            assertEquals(blocksLocal.get("blocks"), blocksSlurm.get("blocks"), ex.getKey());
            assertEquals(blocksLocal.get("count"), blocksSlurm.get("count"), ex.getKey());
            if (blocksSlurm.has("library") && !blocksSlurm.get("library").isJsonNull()) {
                assertTrue(Files.size(Path.of(blocksSlurm.get("library").getAsString())) > 0);
            }
            assertEquals(progressValues(local, l).isEmpty(), progressValues(slurm, s).isEmpty(), ex.getKey());
        }
        // A blendFile travels to the node too; the job sees the same scene (only the path of its
        // private copy differs: it is on the node).
        JsonObject scene = Json.of("script", ServerProcess.fixture("jobs/scene_info.py").toString(),
                "blendFile", ServerProcess.fixture("blend/scene.blend").toString());
        String sceneLocal = local.runToEnd(scene.deepCopy(), GUARD).get("jobId").getAsString();
        String sceneSlurm = slurm.runToEnd(scene.deepCopy(), GUARD).get("jobId").getAsString();
        JsonObject dataLocal = local.callObject("getPythonData", Json.jobId(sceneLocal));
        JsonObject dataSlurm = slurm.callObject("getPythonData", Json.jobId(sceneSlurm));
        String copy = dataSlurm.get("filepath").getAsString();
        assertTrue(copy.contains("blender-jobs-pilot.") && copy.endsWith(sceneSlurm + ".scene.blend"),
                "the job's private copy, in the pilot's own folder on the node: " + dataSlurm);
        dataLocal.remove("filepath");
        dataSlurm.remove("filepath");
        assertEquals(dataLocal, dataSlurm);
        assertTrue(dataSlurm.get("saved").getAsBoolean());
        // bmesh_quad reports 100 steps: the last one, 1.0, arrives (coalesced on the way).
        String quad = slurm.runToEnd(Json.of("script", ServerProcess.fixture("jobs/bmesh_quad.py").toString(),
                "passedDataBlocks", passedBlocks("Cube")), GUARD).get("jobId").getAsString();
        List<Double> progress = progressValues(slurm, quad);
        assertFalse(progress.isEmpty(), "progress notifications arrive from a pilot");
        assertEquals(1.0, progress.get(progress.size() - 1));
        // What the script printed on the node is in the job's log.
        String printed = slurm.runToEnd(Json.of("scriptText", "import socket\nprint('printed on', socket.gethostname())"),
                GUARD).get("jobId").getAsString();
        JsonArray tail = slurm.callObject("getJob", Json.jobId(printed)).getAsJsonArray("logTail");
        assertTrue(tail.toString().matches(".*printed on node[12].*"), tail.toString());
        // 2 MB of output on the node all arrive in the job's log, in order, over the channel.
        JsonObject loud = slurm.runToEnd(Json.of("script", ServerProcess.fixture("jobs/print_2mb.py").toString()), GUARD);
        assertEquals("COMPLETED", loud.get("state").getAsString(), loud.toString());
        Path log = Path.of(slurm.callObject("getJob", Json.jobId(loud.get("jobId").getAsString())).get("logFile").getAsString());
        JsonObject loudLocal = local.runToEnd(Json.of("script", ServerProcess.fixture("jobs/print_2mb.py").toString()), GUARD);
        Path logLocal = Path.of(local.callObject("getJob", Json.jobId(loudLocal.get("jobId").getAsString())).get("logFile").getAsString());
        assertTrue(Files.size(log) >= 2_000_000, "log of " + Files.size(log) + " bytes");
        assertArrayEquals(Files.readAllBytes(logLocal), Files.readAllBytes(log), "the same log as a local worker's");
        slurm.assertProtocolStreamClean();
    }

    @Test
    @Order(2)
    void jobsSpreadOverBothNodes() throws Exception {
        ServerProcess s = slurmServer("--workers", "2", "--slurm-min-pilots", "2");
        awaitPilots(s, 2);
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            ids.add(s.addJob(Json.of("scriptText", "import socket, time, os\ntime.sleep(0.3)\n"
                    + "python_data = {'host': socket.gethostname(), 'slurmJob': os.environ.get('SLURM_JOB_ID')}")));
        }
        Set<String> hosts = new HashSet<>();
        Set<String> slurmJobs = new HashSet<>();
        for (String id : ids) {
            assertEquals("COMPLETED", s.awaitFinal(id, GUARD).get("state").getAsString());
            JsonObject data = s.callObject("getPythonData", Json.jobId(id));
            hosts.add(data.get("host").getAsString());
            slurmJobs.add(data.get("slurmJob").getAsString());
        }
        assertEquals(Set.of("node1", "node2"), hosts);
        assertEquals(2, slurmJobs.size(), "two warm pilots ran all eight jobs: " + slurmJobs);
        // isolation "process" still means a fresh Blender: here a pilot that has run no job.
        JsonObject fresh = s.runToEnd(Json.of("scriptText", "import os\npython_data = {'slurmJob': os.environ['SLURM_JOB_ID']}",
                "isolation", "process"), GUARD);
        assertEquals("COMPLETED", fresh.get("state").getAsString(), fresh.toString());
        String freshPilot = s.callObject("getPythonData", Json.jobId(fresh.get("jobId").getAsString()))
                .get("slurmJob").getAsString();
        assertFalse(slurmJobs.contains(freshPilot), "a new pilot ran the isolated job");
    }

    @Test
    @Order(2)
    void withASharedStateDirectoryJobFilesAreUsedInPlace() throws Exception {
        Path stateDir = Files.createTempDirectory("bj-slurm-shared-");
        try {
            ServerProcess s = slurmServer("--workers", "1", "--slurm-min-pilots", "1", "--slurm-shared-fs",
                    "--state-dir", stateDir.toString());
            JsonObject done = s.runToEnd(Json.of("script", ServerProcess.fixture("jobs/remesh.py").toString(),
                    "passedDataBlocks", passedBlocks("Cube"), "passedData", Json.of("duration", 0.1)), GUARD);
            assertEquals("COMPLETED", done.get("state").getAsString(), done + "\n" + s.stderr());
            String id = done.get("jobId").getAsString();
            assertEquals(3.14159, s.callObject("getPythonData", Json.jobId(id)).get("pi").getAsDouble());
            assertEquals("[\"Cube_remeshed\"]", s.callObject("getDataBlocks", Json.jobId(id)).getAsJsonObject("blocks")
                    .get("objects").toString());
            // The runtime was staged in the state directory, privately, and the job ran there.
            Path runtime = stateDir.resolve("pilot-runtime/worker_runtime.py");
            assertTrue(Files.isRegularFile(runtime));
            assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(runtime.getParent())));
            JsonObject cwd = s.runToEnd(Json.of("scriptText", "import os\npython_data = {'cwd': os.getcwd()}"), GUARD);
            String workDir = s.callObject("getPythonData", Json.jobId(cwd.get("jobId").getAsString())).get("cwd").getAsString();
            assertTrue(workDir.startsWith(stateDir.toRealPath().toString()) || workDir.startsWith(stateDir.toString()),
                    "the job's work folder is the one in the shared state directory: " + workDir);
        } finally {
            for (ServerProcess s : servers) s.close();
            servers.clear();
            deleteTree(stateDir);
        }
    }

    // ------------------------------------------------------------------ cancel, timeout

    /** A job that starts a child process on its node and reports both pids, then runs until stopped. */
    private static final String STUBBORN = String.join("\n",
            "import os, subprocess, time",
            "child = subprocess.Popen(['sleep', '600'])",
            "update_job_progress(0.1, '%d %d' % (os.getpid(), child.pid))",
            "while True:",
            "    time.sleep(0.05)");

    @Test
    @Order(3)
    void cancelAndTimeoutKillTheJobsProcessesOnItsNode() throws Exception {
        ServerProcess s = slurmServer("--workers", "2", "--slurm-min-pilots", "2");
        awaitPilots(s, 2);
        String canceled = s.addJob(Json.of("scriptText", STUBBORN));
        List<ProcessHandle> procs = pidsOf(s, canceled);
        s.callObject("cancelJob", Json.jobId(canceled));
        assertEquals("CANCELED", s.awaitFinal(canceled, GUARD).get("state").getAsString());
        ProtocolIT.assertNoneAliveWithin(procs, Duration.ofSeconds(15));

        String timedOut = s.addJob(Json.of("scriptText", STUBBORN, "timeout", 3));
        List<ProcessHandle> procs2 = pidsOf(s, timedOut);
        JsonObject done = s.awaitFinal(timedOut, GUARD);
        assertEquals("FAILED", done.get("state").getAsString());
        assertEquals("TIMED_OUT", done.getAsJsonObject("error").get("kind").getAsString(), done.toString());
        ProtocolIT.assertNoneAliveWithin(procs2, Duration.ofSeconds(15));

        // A pilot that does not answer (its Blender stopped, so closing its channel does nothing):
        // the server cancels it with scancel, and Slurm's signals end it.
        String frozen = s.addJob(Json.of("scriptText", String.join("\n",
                "import os, signal",
                "update_job_progress(0.1, '%d %d' % (os.getpid(), os.getpid()))",
                "os.kill(os.getpid(), signal.SIGSTOP)")));
        List<ProcessHandle> stopped = pidsOf(s, frozen);
        s.callObject("cancelJob", Json.jobId(frozen));
        assertEquals("CANCELED", s.awaitFinal(frozen, GUARD).get("state").getAsString());
        ProtocolIT.assertNoneAliveWithin(stopped, Duration.ofSeconds(30));

        // A script that crashes Blender on its node: the pilot's exit code says so, as on one machine.
        JsonObject crashed = s.runToEnd(Json.of("scriptText", "import ctypes\nctypes.string_at(0)"), GUARD);
        assertEquals("FAILED", crashed.get("state").getAsString());
        assertEquals("BLENDER_CRASHED", crashed.getAsJsonObject("error").get("kind").getAsString(), crashed.toString());
        assertTrue(crashed.getAsJsonObject("error").get("message").getAsString().contains("signal 11"), crashed.toString());

        // The pool replaced the pilots it stopped: jobs run again.
        assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {'after': True}"), GUARD)
                .get("state").getAsString());
    }

    /**
     * A pilot keeps a local worker's hygiene between jobs (runtime hardening, issue 10): the next
     * job on the same pilot finds its working folder and its temp folder empty and the
     * interpreter as it was, and a job that leaves a thread running gets its pilot replaced (the
     * runtime's idle says recycle) instead of passing it on.
     */
    @Test
    @Order(3)
    void aPilotCleansUpBetweenJobsAndIsReplacedWhenAJobLeavesWhatCannotBeUndone() throws Exception {
        ServerProcess s = slurmServer("--workers", "1", "--slurm-min-pilots", "1");
        awaitPilots(s, 1);
        JsonObject first = s.runToEnd(Json.of("scriptText", String.join("\n",
                "import os, tempfile, builtins",
                "open('left.txt', 'w').write('x')",
                "os.makedirs('sub/deeper')",
                "open(os.path.join(tempfile.gettempdir(), 'left-in-tmp.txt'), 'w').write('x')",
                "os.makedirs(os.path.join(tempfile.gettempdir(), 'dir-in-tmp'))",
                "os.environ['LEFT_BY_JOB'] = '1'",
                "builtins.left_by_job = True",
                "python_data = {'slurmJob': os.environ['SLURM_JOB_ID'], 'tmp': tempfile.gettempdir()}")), GUARD);
        assertEquals("COMPLETED", first.get("state").getAsString(), first + "\n" + s.stderr());
        JsonObject a = s.callObject("getPythonData", Json.jobId(first.get("jobId").getAsString()));
        assertTrue(a.get("tmp").getAsString().contains("blender-jobs-pilot."), "the pilot's own temp folder: " + a);

        JsonObject second = s.runToEnd(Json.of("scriptText", String.join("\n",
                "import os, tempfile, builtins, bpy",
                "own = os.path.basename(bpy.app.tempdir.rstrip(os.sep)) if bpy.app.tempdir else None",
                "python_data = {'slurmJob': os.environ['SLURM_JOB_ID'], 'cwd': sorted(os.listdir('.')),",
                "    'tmp': sorted(e for e in os.listdir(tempfile.gettempdir()) if e != own),",
                "    'env': 'LEFT_BY_JOB' in os.environ, 'builtin': hasattr(builtins, 'left_by_job')}")), GUARD);
        assertEquals("COMPLETED", second.get("state").getAsString(), second + "\n" + s.stderr());
        JsonObject b = s.callObject("getPythonData", Json.jobId(second.get("jobId").getAsString()));
        assertEquals(a.get("slurmJob"), b.get("slurmJob"), "the same warm pilot ran both jobs");
        assertEquals("[]", b.get("cwd").toString(), "the work folder the pilot reuses was emptied");
        assertEquals("[]", b.get("tmp").toString(), "the pilot's temp folder was emptied (BLENDER_JOBS_TMPDIR)");
        assertFalse(b.get("env").getAsBoolean());
        assertFalse(b.get("builtin").getAsBoolean());

        JsonObject threaded = s.runToEnd(Json.of("scriptText", String.join("\n",
                "import os, threading, time",
                "threading.Thread(target=time.sleep, args=(600,), name='left-behind', daemon=True).start()",
                "python_data = {'slurmJob': os.environ['SLURM_JOB_ID']}")), GUARD);
        assertEquals("COMPLETED", threaded.get("state").getAsString(), "the job itself is fine: " + threaded);
        JsonObject c = s.callObject("getPythonData", Json.jobId(threaded.get("jobId").getAsString()));
        assertEquals(a.get("slurmJob"), c.get("slurmJob"));
        JsonObject after = s.runToEnd(Json.of("scriptText",
                "import os\npython_data = {'slurmJob': os.environ['SLURM_JOB_ID']}"), GUARD);
        assertEquals("COMPLETED", after.get("state").getAsString(), after + "\n" + s.stderr());
        JsonObject d = s.callObject("getPythonData", Json.jobId(after.get("jobId").getAsString()));
        assertNotEquals(a.get("slurmJob"), d.get("slurmJob"), "a new pilot: the old one said idle with recycle");
        assertTrue(s.stderr().contains("left 1 thread running (left-behind)"), s.stderr());
        s.assertProtocolStreamClean();
    }

    // ------------------------------------------------------------------ lost pilots

    @Test
    @Order(4)
    void aPilotScancelledMidJobFailsTheAttemptWithWorkerLostAndTheJobIsRetriedOnAnotherPilot() throws Exception {
        ServerProcess s = slurmServer("--workers", "2", "--slurm-min-pilots", "2");
        awaitPilots(s, 2);
        // Each attempt reports its pilot's Slurm job id, then works for 5 s; the test cancels the
        // pilot of the first attempt meanwhile.
        String id = s.addJob(Json.of("scriptText", String.join("\n",
                "import os, time",
                "update_job_progress(0.1, os.environ['SLURM_JOB_ID'])",
                "time.sleep(5)",
                "python_data = {'slurmJob': os.environ['SLURM_JOB_ID']}"),
                "maxAttempts", 2));
        String pilot = awaitProgressMessage(s, id);
        cluster.scancel(pilot);
        JsonObject retry = awaitRetry(s, id);
        assertEquals("WORKER_LOST", retry.getAsJsonObject("error").get("kind").getAsString(), retry.toString());
        String message = retry.getAsJsonObject("error").get("message").getAsString();
        assertTrue(message.contains(pilot) && message.contains("CANCELLED"), message);
        JsonObject done = s.awaitFinal(id, GUARD);
        assertEquals("COMPLETED", done.get("state").getAsString(), done + "\n" + s.stderr());
        assertEquals(2, done.get("attempt").getAsInt());
        String second = s.callObject("getPythonData", Json.jobId(id)).get("slurmJob").getAsString();
        assertNotEquals(pilot, second, "retried on another pilot");
        JsonObject job = s.callObject("getJob", Json.jobId(id));
        assertEquals("WORKER_LOST", job.getAsJsonArray("earlierErrors").get(0).getAsJsonObject().get("kind").getAsString());
    }

    @Test
    @Order(5)
    void aKilledNodeLosesItsPilotAndTheJobIsRetriedOnTheOtherNode() throws Exception {
        ServerProcess s = slurmServer("--workers", "2", "--slurm-min-pilots", "2");
        awaitPilots(s, 2);
        String id = s.addJob(Json.of("scriptText", String.join("\n",
                "import socket, time",
                "update_job_progress(0.1, socket.gethostname())",
                "time.sleep(4)",
                "python_data = {'host': socket.gethostname()}"),
                "maxAttempts", 2));
        String node = awaitProgressMessage(s, id);
        String other = node.equals("node1") ? "node2" : "node1";
        try {
            cluster.killNode(node);
            JsonObject retry = awaitRetry(s, id);
            JsonObject error = retry.getAsJsonObject("error");
            assertEquals("WORKER_LOST", error.get("kind").getAsString(), retry.toString());
            assertTrue(error.get("message").getAsString().contains(node), error.toString());
            JsonObject done = s.awaitFinal(id, GUARD);
            assertEquals("COMPLETED", done.get("state").getAsString(), done + "\n" + s.stderr());
            assertEquals(other, s.callObject("getPythonData", Json.jobId(id)).get("host").getAsString());
        } finally {
            cluster.startNode(node);
        }
    }

    // ------------------------------------------------------------------ pilots that cannot start

    @Test
    @Order(6)
    void anUnknownPartitionFailsWaitingJobsWithSlurmsMessageAndNothingHangs() throws Exception {
        // No --listen: the server finds its address itself, falling back to all nodes' routes.
        ServerProcess s = start(cluster.env(), List.of("--executor", "slurm", "--workers", "2",
                "--slurm-partition", "no-such-partition"));
        String id = s.addJob(Json.of("scriptText", "python_data = {}"));
        JsonObject done = s.awaitFinal(id, Duration.ofSeconds(60));
        assertEquals("FAILED", done.get("state").getAsString());
        JsonObject error = done.getAsJsonObject("error");
        assertEquals("WORKER_START_FAILED", error.get("kind").getAsString());
        assertTrue(error.get("message").getAsString().contains("sbatch refused the pilot job")
                && error.get("message").getAsString().toLowerCase().contains("invalid partition"), error.toString());
    }

    @Test
    @Order(7)
    void aPilotPendingInADownPartitionShowsSlurmsReasonThenWaitingJobsFail() throws Exception {
        ServerProcess s = start(cluster.env(), List.of("--executor", "slurm", "--listen", cluster.hostAddress(),
                "--workers", "1", "--slurm-partition", cluster.downPartition(), "--worker-start-timeout", "3"));
        String id = s.addJob(Json.of("scriptText", "python_data = {}"));
        boolean sawReason = false;
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!sawReason && System.nanoTime() < deadline) {
            for (JsonElement e : s.callObject("getStats", new JsonObject()).getAsJsonArray("workerDetails")) {
                JsonObject batch = e.getAsJsonObject().getAsJsonObject("batchJob");
                if (batch != null && batch.has("reason") && batch.get("reason").getAsString().equals("PartitionDown")) {
                    assertEquals("PENDING", batch.get("state").getAsString());
                    assertEquals("STARTING", e.getAsJsonObject().get("state").getAsString());
                    sawReason = true;
                }
            }
            Thread.sleep(200);
        }
        assertTrue(sawReason, "getStats shows Slurm's reason PartitionDown");
        JsonObject done = s.awaitFinal(id, Duration.ofSeconds(90));
        assertEquals("FAILED", done.get("state").getAsString());
        JsonObject error = done.getAsJsonObject("error");
        assertEquals("WORKER_START_FAILED", error.get("kind").getAsString());
        assertTrue(error.get("message").getAsString().contains("PartitionDown"), error.toString());
        // The pilots that could not start were cancelled, not left waiting in the partition.
        awaitNoPilots(Duration.ofSeconds(10));
    }

    // ------------------------------------------------------------------ walltime

    @Test
    @Order(8)
    void aJobNeverGoesToAPilotWithLessWalltimeLeftThanItsTimeout() throws Exception {
        ServerProcess s = slurmServer("--workers", "2", "--slurm-min-pilots", "1", "--slurm-time", "1",
                "--slurm-drain-margin", "30");
        // 100 s can never fit in a 60 s pilot (of which the last 30 s take no new job): refused now.
        JsonObject never = s.runToEnd(Json.of("scriptText", "python_data = {}", "timeout", 100), Duration.ofSeconds(30));
        assertEquals("FAILED", never.get("state").getAsString());
        JsonObject error = never.getAsJsonObject("error");
        assertEquals("WORKER_START_FAILED", error.get("kind").getAsString());
        assertTrue(error.get("message").getAsString().contains("--slurm-time"), error.toString());

        JsonObject pilot = awaitPilots(s, 1).getAsJsonArray("workerDetails").get(0).getAsJsonObject();
        String old = pilot.getAsJsonObject("batchJob").get("id").getAsString();
        // Wait until the warm pilot has less than 42 s left (but more than the 30 s drain margin),
        // then add a job with a 38 s timeout (it needs 38 + 5 s): it must go to a new pilot, which
        // the pool submits for it.
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (timeLeftOf(s, old) >= 42) {
            if (System.nanoTime() > deadline) fail("the pilot's time left never dropped below 42 s");
            Thread.sleep(200);
        }
        JsonObject done = s.runToEnd(Json.of("scriptText", "import os\npython_data = {'slurmJob': os.environ['SLURM_JOB_ID']}",
                "timeout", 38), GUARD);
        assertEquals("COMPLETED", done.get("state").getAsString(), done + "\n" + s.stderr());
        String ranOn = s.callObject("getPythonData", Json.jobId(done.get("jobId").getAsString())).get("slurmJob").getAsString();
        assertNotEquals(old, ranOn, "the job waited for a pilot with enough walltime left");
        // Near its end the old pilot drains (takes no job, is released) and is gone before its walltime.
        deadline = System.nanoTime() + Duration.ofSeconds(70).toNanos();
        while (!cluster.squeueState(old).isEmpty()) {
            if (System.nanoTime() > deadline) fail("the old pilot " + old + " was not released");
            Thread.sleep(500);
        }
        String state = cluster.finalState(old);
        assertNotEquals("TIMEOUT", state, "a pilot is released before its walltime ends, not killed by it");
    }

    // ------------------------------------------------------------------ nothing left behind

    @Test
    @Order(9)
    void sigtermCancelsThePilotsASigkilledServersPilotsGoAndTheNextServerCancelsOnesThatNeverConnected()
            throws Exception {
        Path stateDir = Files.createTempDirectory("bj-slurm-state-");
        try {
            // SIGTERM: the server interrupts its jobs and cancels its pilots before it exits.
            ServerProcess t = slurmServer("--workers", "2", "--slurm-min-pilots", "2");
            awaitPilots(t, 2);
            t.process.destroy();
            assertTrue(t.process.waitFor(30, TimeUnit.SECONDS));
            awaitNoPilots(Duration.ofSeconds(5));

            // Two connected pilots: they exit by themselves once their channel is gone.
            ServerProcess a = slurmServer("--workers", "2", "--slurm-min-pilots", "2", "--state-dir", stateDir.toString());
            awaitPilots(a, 2);
            a.process.destroyForcibly();
            assertTrue(a.process.waitFor(10, TimeUnit.SECONDS));
            awaitNoPilots(Duration.ofSeconds(15));

            // A pilot that never connects (its partition is down) outlives its killed server...
            ServerProcess b = start(cluster.env(), List.of("--executor", "slurm", "--listen", cluster.hostAddress(),
                    "--workers", "1", "--slurm-min-pilots", "1", "--slurm-partition", cluster.downPartition(),
                    "--worker-start-timeout", "600", "--state-dir", stateDir.toString()));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (pilotIds().isEmpty()) {
                if (System.nanoTime() > deadline) fail("no pilot was submitted");
                Thread.sleep(200);
            }
            List<String> left = pilotIds();
            b.process.destroyForcibly();
            assertTrue(b.process.waitFor(10, TimeUnit.SECONDS));
            Thread.sleep(1000);
            assertEquals(left, pilotIds(), "a pending pilot stays in the queue after its server was killed");
            // ...until a server starts on the same state directory: it cancels it at initialize.
            ServerProcess c = slurmServer("--workers", "1", "--state-dir", stateDir.toString());
            awaitNoPilots(Duration.ofSeconds(10));
            assertTrue(c.stderr().contains("earlier server"), c.stderr());
        } finally {
            deleteTree(stateDir);
        }
    }

    // ------------------------------------------------------------------ authentication

    @Test
    @Order(10)
    void aConnectionWithAWrongSecretIsRefusedAndTheSecretAppearsNowhere() throws Exception {
        int port = freePort();
        ServerProcess s = slurmServer("--workers", "1", "--slurm-min-pilots", "1",
                "--listen", cluster.hostAddress() + ":" + port);
        JsonObject stats = awaitPilots(s, 1);
        String pilotJob = stats.getAsJsonArray("workerDetails").get(0).getAsJsonObject().getAsJsonObject("batchJob")
                .get("id").getAsString();
        String worker = stats.getAsJsonArray("workerDetails").get(0).getAsJsonObject().get("worker").getAsString() + ".1";

        // A peer that does not hold the pilot's secret (it even names the right worker id).
        try (Socket sock = new Socket()) {
            sock.connect(new InetSocketAddress(InetAddress.getByName(cluster.hostAddress()), port), 5000);
            sock.setSoTimeout(15_000);
            DataInputStream in = new DataInputStream(sock.getInputStream());
            JsonObject challenge = readFrame(in);
            assertEquals("challenge", challenge.get("type").getAsString());
            writeFrame(new DataOutputStream(sock.getOutputStream()), Json.of("type", "hello",
                    "protocol", dev.blenderjobs.channel.ChannelCodec.PROTOCOL,
                    "runtimeVersion", "0.2.0", "worker", worker, "pid", 1, "blenderVersion", "3.4.1",
                    "pythonVersion", "3.10.8", "proof", "0".repeat(64)));
            JsonObject answer = readFrame(in);
            assertEquals("refused", answer.get("type").getAsString(), answer.toString());
            assertTrue(answer.get("reason").getAsString().contains("did not prove"), answer.toString());
            assertEquals(-1, in.read(), "the connection is closed after the refusal");
        }
        assertTrue(s.stderr().contains("refused a connection to the pilot channel"), s.stderr());
        // The real pilot is unaffected.
        assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {}"), GUARD).get("state").getAsString());

        // The secret is a 64-hex-digit string: none is on a command line, in squeue or scontrol.
        String scontrol = cluster.run(Map.of(), List.of("scontrol", "-d", "show", "job", pilotJob)).stdout();
        assertTrue(scontrol.contains("JobId=" + pilotJob), scontrol);
        assertFalse(HEX64.matcher(scontrol).find(), scontrol);
        String squeue = cluster.squeue("-h", "-o", "%all");
        assertFalse(HEX64.matcher(squeue).find(), squeue);
        int looked = 0;
        for (ProcessHandle p : ProcessHandle.allProcesses().toList()) {
            String cmd = p.info().commandLine().orElse("");
            if (!(cmd.contains("blender-jobs-pilot") || cmd.contains("slurm") || p.pid() == s.process.pid())) continue;
            looked++;
            assertFalse(HEX64.matcher(cmd).find() || cmd.contains("BLENDER_JOBS_SECRET"), "a command line: " + cmd);
        }
        assertTrue(looked >= 3, "the server, the pilot's Blender and Slurm's daemons were looked at");
        // The pilot's folder on the node is private: 0700, its files (the runtime) 0600.
        List<Path> pilotDirs = pilotDirs();
        assertFalse(pilotDirs.isEmpty(), "the pilot's folder on the node");
        for (Path dir : pilotDirs) {
            assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir)), dir.toString());
            Path runtime = dir.resolve("worker_runtime.py");
            if (Files.exists(runtime)) {
                assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(runtime)));
            }
        }
    }

    // ------------------------------------------------------------------ many jobs

    @Test
    @Order(11)
    void aThousandTrivialJobsNoneLostOrDuplicated() throws Exception {
        ServerProcess s = slurmServer("--workers", "2", "--slurm-min-pilots", "2", "--max-jobs-per-worker", "100000");
        awaitPilots(s, 2);
        Map<String, Integer> byId = new HashMap<>();
        for (int i = 0; i < 1000; i++) {
            byId.put(s.addJob(Json.of("scriptText", "python_data = {'i': passed_data['i']}", "passedData", Json.of("i", i))), i);
        }
        for (String id : byId.keySet()) assertEquals("COMPLETED", s.awaitFinal(id, GUARD).get("state").getAsString());
        Map<String, Integer> finals = new HashMap<>();
        for (ServerProcess.Notification n : s.allNotifications()) {
            if (n.method().equals("job/stateChanged") && n.params().get("state").getAsString().equals("COMPLETED")) {
                finals.merge(n.params().get("jobId").getAsString(), 1, Integer::sum);
            }
        }
        assertEquals(byId.keySet(), finals.keySet(), "every job completed");
        assertTrue(finals.values().stream().allMatch(c -> c == 1), "each exactly once");
        for (Map.Entry<String, Integer> e : byId.entrySet()) {
            assertEquals(e.getValue().intValue(), s.callObject("getPythonData", Json.jobId(e.getKey())).get("i").getAsInt());
        }
        JsonObject stats = s.callObject("getStats", new JsonObject());
        assertEquals(1000, stats.get("completed").getAsInt());
        int run = 0;
        for (JsonElement e : stats.getAsJsonArray("workerDetails")) run += e.getAsJsonObject().get("jobsRun").getAsInt();
        assertEquals(1000, run, "the two warm pilots ran them all: " + stats);
    }

    // ------------------------------------------------------------------ helpers

    private JsonObject passedBlocks(String object) {
        JsonArray list = new JsonArray();
        list.add(object);
        return Json.of("library", ServerProcess.fixture("blend/library.blend").toString(), "names", Json.of("objects", list));
    }

    private static Path resultFile(ServerProcess s, String jobId, String name) throws Exception {
        return Path.of(s.callObject("getJob", Json.jobId(jobId)).get("directory").getAsString(), "result", name);
    }

    private static List<Double> progressValues(ServerProcess s, String jobId) {
        return s.notificationsFor(jobId).stream().filter(n -> n.method().equals("job/progress"))
                .map(n -> n.params().get("progress").getAsDouble()).toList();
    }

    /** Waits until {@code n} pilots are connected (idle or busy); returns getStats. */
    private static JsonObject awaitPilots(ServerProcess s, int n) throws Exception {
        long deadline = System.nanoTime() + GUARD.toNanos();
        while (true) {
            JsonObject stats = s.callObject("getStats", new JsonObject());
            if (stats.get("freeWorkers").getAsInt() + stats.get("busyWorkers").getAsInt() >= n) return stats;
            if (System.nanoTime() > deadline) fail(n + " pilots never connected: " + stats + "\n" + s.stderr());
            Thread.sleep(100);
        }
    }

    private static long timeLeftOf(ServerProcess s, String slurmJob) throws Exception {
        for (JsonElement e : s.callObject("getStats", new JsonObject()).getAsJsonArray("workerDetails")) {
            JsonObject o = e.getAsJsonObject();
            if (o.has("batchJob") && slurmJob.equals(o.getAsJsonObject("batchJob").get("id").getAsString())) {
                return o.get("timeLeftSeconds").getAsLong();
            }
        }
        return -1;
    }

    /** The job's ACTIVE -> QUEUED notification: an attempt failed and the job waits for its retry. */
    private static JsonObject awaitRetry(ServerProcess s, String jobId) throws Exception {
        return s.awaitNotification(n -> n.method().equals("job/stateChanged") && n.params().get("jobId").getAsString()
                .equals(jobId) && n.params().get("state").getAsString().equals("QUEUED")
                && n.params().has("previousState") && n.params().get("previousState").getAsString().equals("ACTIVE"),
                GUARD).params();
    }

    /** The message of the job's first progress notification. */
    private static String awaitProgressMessage(ServerProcess s, String jobId) throws Exception {
        return s.awaitNotification(n -> n.method().equals("job/progress") && n.params().get("jobId").getAsString()
                .equals(jobId) && n.params().has("message"), GUARD).params().get("message").getAsString();
    }

    /** The Blender and child process of a {@link #STUBBORN} job, once it reported them. */
    private static List<ProcessHandle> pidsOf(ServerProcess s, String jobId) throws Exception {
        String[] pids = awaitProgressMessage(s, jobId).split(" ");
        List<ProcessHandle> out = new ArrayList<>();
        for (String p : pids) ProcessHandle.of(Long.parseLong(p)).ifPresent(out::add);
        assertEquals(2, out.size(), "the job's processes run (the nodes share this machine's pids)");
        return out;
    }

    /** Slurm job ids of blender-jobs pilots in the queue. */
    private static List<String> pilotIds() throws Exception {
        List<String> ids = new ArrayList<>();
        for (String line : cluster.squeue("-h", "-o", "%i %j").split("\n")) {
            String[] f = line.strip().split(" ");
            if (f.length == 2 && f[1].startsWith("bj-") && !f[1].equals("bj-warm-up")) ids.add(f[0]);
        }
        return ids;
    }

    private static void awaitNoPilots(Duration within) throws Exception {
        long deadline = System.nanoTime() + within.toNanos();
        while (!pilotIds().isEmpty()) {
            if (System.nanoTime() > deadline) fail("pilots still in Slurm's queue after " + within + ": " + pilotIds()
                    + "\n" + cluster.squeue("-o", "%i %j %T %r %N"));
            Thread.sleep(200);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName(cluster.hostAddress()))) {
            return s.getLocalPort();
        }
    }

    private static JsonObject readFrame(DataInputStream in) throws IOException {
        int length = in.readInt();
        byte[] body = new byte[length];
        in.readFully(body);
        return JsonParser.parseString(new String(body, StandardCharsets.UTF_8)).getAsJsonObject();
    }

    private static void writeFrame(DataOutputStream out, JsonObject message) throws IOException {
        byte[] body = message.toString().getBytes(StandardCharsets.UTF_8);
        out.writeInt(body.length);
        out.write(body);
        out.flush();
    }

    private static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) return;
        try (var walk = Files.walk(root)) {
            for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }
}
