package dev.blenderjobs.it;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The server-side holes of issue 10, each against the real server jar over stdio and real
 * Blender: the heap (inputs on disk, a loud end on OutOfMemoryError), lone surrogates in a
 * request, removal that can be believed, oversized records, unsaved-record warnings that do
 * not go silent, size caps on logs and input copies, damaged results and forged worker
 * messages. Most cases share one server; those that restart or starve a server start their own.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class ServerHardeningIT {
    static final Duration HANG_GUARD = Duration.ofSeconds(120);
    /** The exit code protocol.md gives a server that ran out of memory. */
    static final int EXIT_OUT_OF_MEMORY = dev.blenderjobs.concurrent.Fatal.EXIT_OUT_OF_MEMORY;

    /** --max-log-size 1 and --max-input-size 1: the caps are small enough to hit cheaply. */
    static ServerProcess server;
    static Path sharedTmp;

    @BeforeAll
    static void start() throws Exception {
        sharedTmp = Files.createTempDirectory("hardening-it");
        server = ServerProcess.start("--workers", "1", "--state-dir", sharedTmp.resolve("state").toString(),
                "--max-log-size", "1", "--max-input-size", "1");
    }

    @AfterAll
    static void stop() throws Exception {
        if (server != null) server.close();
        deleteTree(sharedTmp);
    }

    static JsonObject run(JsonObject params) throws Exception {
        return server.runToEnd(params, HANG_GUARD);
    }

    // ------------------------------------------------------------------ item 10: lone surrogates

    @Test
    void loneSurrogatesInARequestAreInvalidParamsNamingTheField() throws Exception {
        int before = server.callObject("getStats", new JsonObject()).get("total").getAsInt();
        String library = ServerProcess.fixture("blend/library.blend").toString();
        // JSON escapes, written raw: a Java client would turn a lone surrogate into '?' itself.
        assertSurrogateRefused("{\"scriptText\":\"x = '\\ud800'\"}", "scriptText", "scriptText");
        assertSurrogateRefused("{\"scriptText\":\"pass\",\"name\":\"a\\udfff\"}", "name", "name");
        assertSurrogateRefused("{\"scriptText\":\"pass\",\"passedData\":{\"k\":\"v\\ud800\"}}", "passedData",
                "passedData['k']");
        assertSurrogateRefused("{\"scriptText\":\"pass\",\"passedData\":{\"\\ud800k\":1}}", "passedData",
                "a key of passedData");
        assertSurrogateRefused("{\"scriptText\":\"pass\",\"passedData\":{\"a\":[1,{\"b\":\"\\udc00\"}]}}",
                "passedData", "passedData['a'][1]['b']");
        assertSurrogateRefused("{\"scriptText\":\"pass\",\"passedDataBlocks\":{\"library\":\"" + library
                + "\",\"names\":{\"objects\":[\"Cube\\ud800\"]}}}", "passedDataBlocks", "names.objects[0]");
        assertSurrogateRefused("{\"script\":\"/tmp/a\\ud800.py\"}", "script", "script");
        assertEquals(before, server.callObject("getStats", new JsonObject()).get("total").getAsInt(),
                "a refused request creates no job");
        // A surrogate pair is proper Unicode and arrives intact.
        JsonObject pair = rawCall(server, "pair-1", "addJob",
                "{\"scriptText\":\"python_data = {'s': s, 'n': len(s)}\",\"passedData\":{\"s\":\"\\ud83d\\ude00\"}}");
        String id = pair.getAsJsonObject("result").get("jobId").getAsString();
        assertEquals("COMPLETED", server.awaitFinal(id, HANG_GUARD).get("state").getAsString());
        JsonObject data = server.call("getPythonData", Json.jobId(id)).getAsJsonObject();
        assertEquals("\uD83D\uDE00", data.get("s").getAsString());
        assertEquals(1, data.get("n").getAsInt());
        server.assertProtocolStreamClean();
    }

    private static void assertSurrogateRefused(String params, String field, String where) throws Exception {
        String id = "surrogate-" + Integer.toHexString(params.hashCode());
        JsonObject answer = rawCall(server, id, "addJob", params);
        JsonObject error = answer.getAsJsonObject("error");
        assertTrue(error != null, params + " was accepted: " + answer);
        assertEquals(-32602, error.get("code").getAsInt(), answer.toString());
        assertEquals(field, error.getAsJsonObject("data").get("field").getAsString(), answer.toString());
        String reason = error.getAsJsonObject("data").get("reason").getAsString();
        assertTrue(reason.contains("lone surrogate"), reason);
        assertTrue(error.get("message").getAsString().contains(where), error.toString());
    }

    // ------------------------------------------------------------------ item 15: caps

    @Test
    void aLogOverTheCapKeepsItsHeadAMarkerAndItsTail() throws Exception {
        // 4 MB of numbered lines against --max-log-size 1 (MB).
        JsonObject done = run(Json.of("scriptText", String.join("\n",
                "import sys",
                "for i in range(40000):",
                "    sys.stdout.write('line %06d ' % i + 'x' * 88 + '\\n')",
                "print('THE END')",
                "python_data = {}")));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        JsonObject job = server.callObject("getJob", Json.jobId(done.get("jobId").getAsString()));
        Path log = Path.of(job.get("logFile").getAsString());
        long size = Files.size(log);
        String text = Files.readString(log, StandardCharsets.UTF_8);
        assertTrue(size < 1024 * 1024 + 64 * 1024, "the log is " + size + " bytes");
        assertTrue(text.contains("line 000000 "), "the head is kept");
        assertTrue(text.contains("--max-log-size"), "a marker says where and why the log was cut");
        assertTrue(text.contains("line 039999 ") && text.strip().endsWith("THE END"), "the tail is kept: "
                + text.substring(Math.max(0, text.length() - 500)));
        assertTrue(job.getAsJsonArray("logTail").toString().contains("THE END"), job.toString());
    }

    @Test
    void inputCopiesOverTheCapAreRefusedNamingTheFieldAndTheLimit(@TempDir Path tmp) throws Exception {
        // A sparse 2 MB "blend" (a real header, then a hole) against --max-input-size 1 (MB).
        Path big = tmp.resolve("big.blend");
        try (RandomAccessFile f = new RandomAccessFile(big.toFile(), "rw")) {
            f.write("BLENDER-v304".getBytes(StandardCharsets.US_ASCII));
            f.setLength(2L * 1024 * 1024);
        }
        ResponseError blend = server.callError("addJob", Json.of("scriptText", "pass", "blendFile", big.toString()));
        assertEquals(-32602, blend.getCode());
        JsonObject data = (JsonObject) JsonParser.parseString(blend.getData().toString());
        assertEquals("blendFile", data.get("field").getAsString(), blend.getMessage());
        assertTrue(blend.getMessage().contains("--max-input-size") && blend.getMessage().contains("1 MB"),
                blend.getMessage());
        ResponseError library = server.callError("addJob", Json.of("scriptText", "pass",
                "passedDataBlocks", Json.of("library", big.toString())));
        assertEquals(-32602, library.getCode());
        assertEquals("passedDataBlocks", ((JsonObject) JsonParser.parseString(library.getData().toString()))
                .get("field").getAsString());
        // Under the cap, the copy is made as before.
        assertEquals("COMPLETED", run(Json.of("scriptText", "python_data = {}",
                "blendFile", ServerProcess.fixture("blend/scene.blend").toString())).get("state").getAsString());
    }

    // ------------------------------------------------------------------ items 4 and 6: damaged results, forged messages

    @Test
    void aResultEmptiedByAThreadTheJobLeftRunningIsRefusedNotSent() throws Exception {
        JsonObject done = run(Json.of("scriptText", String.join("\n",
                "import json, os, threading, time",
                "job_dir = os.path.dirname(os.getcwd())",
                "def empty_once_completed():",
                "    deadline = time.time() + 60",
                "    while time.time() < deadline:",
                "        try:",
                "            with open(os.path.join(job_dir, 'job.json')) as f:",
                "                if json.load(f)['job']['state'] == 'COMPLETED':",
                "                    break",
                "        except (OSError, ValueError):",
                "            pass",
                "        time.sleep(0.02)",
                "    open(os.path.join(job_dir, 'result', 'python_data.json'), 'w').close()",
                "threading.Thread(target=empty_once_completed, daemon=True).start()",
                "python_data = {'value': 'x' * 1000}")));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        String id = done.get("jobId").getAsString();
        Path result = Path.of(server.callObject("getJob", Json.jobId(id)).get("directory").getAsString(),
                "result", "python_data.json");
        awaitSize(result, 0);
        ResponseError e = server.callError("getPythonData", Json.jobId(id));
        assertEquals(1013, e.getCode(), e.getMessage());
        assertTrue(e.getMessage().contains("0 bytes"), e.getMessage());
        server.assertProtocolStreamClean();
    }

    @Test
    void aResultReplacedByALinkIsNeverFollowed() throws Exception {
        JsonObject done = run(Json.of("scriptText", "python_data = {'mine': True}"));
        String id = done.get("jobId").getAsString();
        Path result = Path.of(server.callObject("getJob", Json.jobId(id)).get("directory").getAsString(),
                "result", "python_data.json");
        // A link to a copy with the very same bytes: the size and hash match, the link is still refused.
        Path copy = sharedTmp.resolve("same-bytes.json");
        Files.copy(result, copy);
        Files.delete(result);
        Files.createSymbolicLink(result, copy);
        ResponseError same = server.callError("getPythonData", Json.jobId(id));
        assertEquals(1012, same.getCode(), same.getMessage());
        assertTrue(same.getMessage().contains("symbolic link"), same.getMessage());
        Files.delete(result);
        Files.createSymbolicLink(result, Path.of("/etc/passwd"));
        ResponseError passwd = server.callError("getPythonData", Json.jobId(id));
        assertEquals(1012, passwd.getCode(), passwd.getMessage());
        assertFalse(server.rawStdout().contains("root:"), "nothing of /etc/passwd reached the client");
        server.assertProtocolStreamClean();
    }

    @Test
    void aResultTruncatedWhileTheServerWasDownIsRefusedAfterTheRestart(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        String id;
        Path result;
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            id = a.runToEnd(Json.of("scriptText", "python_data = {'text': 'y' * 5000}"), HANG_GUARD)
                    .get("jobId").getAsString();
            result = Path.of(a.callObject("getJob", Json.jobId(id)).get("directory").getAsString(), "result",
                    "python_data.json");
            assertEquals(0, a.shutdownAndExit());
        }
        try (RandomAccessFile f = new RandomAccessFile(result.toFile(), "rw")) {
            f.setLength(f.length() / 2); // "result":{"text":"yyy... with no end
        }
        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            ResponseError e = b.callError("getPythonData", Json.jobId(id));
            assertEquals(1013, e.getCode(), e.getMessage());
            assertTrue(e.getMessage().contains("was changed or damaged"), e.getMessage());
            b.assertProtocolStreamClean();
        }
    }

    /** Finds the worker's channel socket and sends {@code forged} (with its own job id) over it. */
    static final String FORGER = String.join("\n",
            "import gc, json, os, socket, struct, time",
            "job_id = os.path.basename(os.path.dirname(os.getcwd()))",
            "def loopback(s):",
            "    try:",
            "        return s.getpeername()[0] == '127.0.0.1'",
            "    except (OSError, IndexError, TypeError):",
            "        return False",
            "channel = next((o for o in gc.get_objects() if isinstance(o, socket.socket) and loopback(o)), None)",
            "if channel is None:",
            "    for fd in os.listdir('/proc/self/fd'):",
            "        try:",
            "            if not os.readlink('/proc/self/fd/' + fd).startswith('socket:'):",
            "                continue",
            "            s = socket.socket(fileno=os.dup(int(fd)))",
            "        except OSError:",
            "            continue",
            "        if s.family == socket.AF_INET and loopback(s):",
            "            channel = s",
            "            break",
            "if channel is None:",
            "    raise RuntimeError('the channel socket was not found')",
            "message = dict(forged, jobId=job_id)",
            "body = json.dumps(message).encode('utf-8')",
            "channel.sendall(struct.pack('>I', len(body)) + body)",
            "print('forged', message['type'], flush=True)",
            "time.sleep(60)");

    @Test
    void forgedWorkerMessagesFailTheJobReplaceTheWorkerAndReadNothing(@TempDir Path tmp) throws Exception {
        // A named pipe: anyone opening it to read would unblock the writer below, so it tells
        // whether the server ever opened the path the forged message named.
        Path fifo = tmp.resolve("bait");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        assertEquals(0, mkfifo.waitFor());
        CompletableFuture<Void> opened = CompletableFuture.runAsync(() -> {
            try (FileOutputStream out = new FileOutputStream(fifo.toFile())) {
                out.write('x');
            } catch (IOException ignored) {
                // The reader went away: it was opened all the same.
            }
        });
        List<JsonObject> forgeries = List.of(
                Json.of("type", "completed"),
                Json.of("type", "result", "ok", true, "pythonDataFile", fifo.toString()),
                Json.of("type", "completed", "pythonDataBytes", 2, "pythonDataSha256",
                        "0".repeat(64), "timing", new JsonObject()),
                Json.of("type", "completed", "pythonDataBytes", 2, "pythonDataSha256", "0".repeat(64),
                        "timing", new JsonObject(), "pythonDataFile", fifo.toString()));
        for (JsonObject forged : forgeries) {
            JsonObject done = run(Json.of("scriptText", FORGER, "passedData", Json.of("forged", forged)));
            assertEquals("FAILED", done.get("state").getAsString(), forged + " -> " + done);
            assertEquals("PROTOCOL_VIOLATION", done.getAsJsonObject("error").get("kind").getAsString(),
                    forged + " -> " + done);
            // The slot is not leaked: the next job runs, on a new Blender.
            JsonObject next = run(Json.of("scriptText", "python_data = {}"));
            assertEquals("COMPLETED", next.get("state").getAsString(), next.toString());
            assertNotEquals(workerPidOf(done), workerPidOf(next), "the worker that broke the protocol was replaced");
        }
        Thread.sleep(500);
        assertFalse(opened.isDone(), "the server opened " + fifo + ", a path named by a worker message");
        try (FileInputStream unblock = new FileInputStream(fifo.toFile())) {
            unblock.read();
        }
        opened.get(10, TimeUnit.SECONDS);
        assertEquals(1, server.callObject("getStats", new JsonObject()).get("freeWorkers").getAsInt());
    }

    private static long workerPidOf(JsonObject done) throws Exception {
        return server.callObject("getJob", Json.jobId(done.get("jobId").getAsString())).get("workerPid").getAsLong();
    }

    // ------------------------------------------------------------------ items 8 and 14: a job's directory gone; warnings that stay loud

    @Test
    void aJobThatDeletesItsDirectoryIsToldSoAndLaterUnsavedRecordsAreStillWarned(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        String gone;
        String unsaved;
        try (ServerProcess s = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            JsonObject done = s.runToEnd(Json.of("scriptText", String.join("\n",
                    "import os, shutil",
                    "shutil.rmtree(os.path.dirname(os.getcwd()))",
                    "python_data = {'lost': True}")), HANG_GUARD);
            gone = done.get("jobId").getAsString();
            assertEquals("FAILED", done.get("state").getAsString(), done.toString());
            JsonObject error = done.getAsJsonObject("error");
            assertEquals("RESULT_WRITE_FAILED", error.get("kind").getAsString(), error.toString());
            String message = error.get("message").getAsString();
            assertTrue(message.contains("directory") && message.contains("deleted"), message);
            assertFalse(message.contains("Free disk space"), message);
            JsonObject filesGone = s.awaitNotification(n -> n.method().equals("window/showMessage")
                    && n.params().get("message").getAsString().contains(gone), HANG_GUARD).params();
            assertEquals("JOB_FILES_GONE", filesGone.get("kind").getAsString(), filesGone.toString());
            assertEquals(2, filesGone.get("type").getAsInt());

            // A later job whose record cannot be written is warned about, by name, before its state.
            JsonObject later = s.runToEnd(Json.of("script", ServerProcess.fixture("jobs/unsaved_record.py").toString()),
                    HANG_GUARD);
            unsaved = later.get("jobId").getAsString();
            assertEquals("COMPLETED", later.get("state").getAsString(), later.toString());
            List<ServerProcess.Notification> all = s.allNotifications();
            int warned = indexOf(all, n -> n.method().equals("window/showMessage")
                    && n.params().get("kind").getAsString().equals("RECORDS_NOT_SAVED")
                    && n.params().get("message").getAsString().contains(unsaved));
            int completed = indexOf(all, n -> n.method().equals("job/stateChanged")
                    && n.params().get("jobId").getAsString().equals(unsaved)
                    && n.params().get("state").getAsString().equals("COMPLETED"));
            assertTrue(warned >= 0 && warned < completed, all.toString());
            s.awaitNotification(n -> n.method().equals("window/showMessage")
                    && n.params().get("kind").getAsString().equals("RECORDS_SAVED_AGAIN"), HANG_GUARD);
            assertEquals(0, s.shutdownAndExit());
        }
        try (ServerProcess again = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            JsonObject list = again.callObject("listJobs", new JsonObject());
            assertEquals(1, list.get("count").getAsInt(), list.toString());
            JsonObject kept = list.getAsJsonArray("jobs").get(0).getAsJsonObject();
            assertEquals(unsaved, kept.get("jobId").getAsString());
            assertEquals("COMPLETED", kept.get("state").getAsString(), "the state the client was told survived");
        }
    }

    private static int indexOf(List<ServerProcess.Notification> all,
                               java.util.function.Predicate<ServerProcess.Notification> p) {
        for (int i = 0; i < all.size(); i++) if (p.test(all.get(i))) return i;
        return -1;
    }

    // ------------------------------------------------------------------ item 12: removal

    @Test
    void removeJobIsReportedOnlyWhenTheJobCannotComeBack(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        Path stuck = null;
        try {
            String id;
            Path dir;
            try (ServerProcess s = ServerProcess.start("--workers", "1", "--state-dir", state)) {
                JsonObject done = s.runToEnd(Json.of("scriptText", String.join("\n",
                        "import os",
                        "os.makedirs('sub', exist_ok=True)",
                        "with open(os.path.join('sub', 'kept.txt'), 'w') as f:",
                        "    f.write('x')",
                        "os.chmod('sub', 0)",
                        "python_data = {}")), HANG_GUARD);
                id = done.get("jobId").getAsString();
                dir = Path.of(s.callObject("getJob", Json.jobId(id)).get("directory").getAsString());
                // Root ignores mode 000, so the test makes the file undeletable for root too.
                stuck = dir.resolve("work/sub/kept.txt");
                chattr("+i", stuck);
                JsonObject removed = s.callObject("removeJob", Json.jobId(id));
                assertTrue(removed.get("removed").getAsBoolean(), removed.toString());
                assertFalse(Files.exists(dir), "the job's directory left the jobs folder when removeJob answered");
                assertTrue(removed.has("leftBehind") && removed.get("leftBehind").getAsString().contains("kept.txt"),
                        "the client is told what could not be deleted: " + removed);
                stuck = findUnder(tmp.resolve("state/jobs"), "kept.txt");
                assertEquals(1001, s.callError("getJob", Json.jobId(id)).getCode());
                assertEquals(0, s.shutdownAndExit());
            }
            try (ServerProcess again = ServerProcess.start("--workers", "1", "--state-dir", state)) {
                assertEquals(0, again.initializeResult.getAsJsonObject("recoveredJobs").get("jobs").getAsInt(),
                        again.initializeResult.toString());
                assertEquals(1001, again.callError("getJob", Json.jobId(id)).getCode());
                assertTrue(again.stderr().contains("could not delete"), again.stderr());
                assertEquals(0, again.shutdownAndExit());
            }
            chattr("-i", stuck);
            stuck = null;
            try (ServerProcess third = ServerProcess.start("--workers", "1", "--state-dir", state)) {
                assertEquals(0, third.initializeResult.getAsJsonObject("recoveredJobs").get("jobs").getAsInt());
                try (var left = Files.list(tmp.resolve("state/jobs"))) {
                    assertEquals(List.of(), left.toList(), "what was left of the removed job is deleted at the next start");
                }
            }
        } finally {
            if (stuck != null) chattr("-i", stuck);
        }
    }

    private static void chattr(String flag, Path file) throws Exception {
        Process p = new ProcessBuilder("chattr", flag, file.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), "chattr " + flag + " " + file + ": " + out);
    }

    private static Path findUnder(Path root, String name) throws IOException {
        try (var all = Files.walk(root)) {
            return all.filter(p -> p.getFileName().toString().equals(name)).findFirst()
                    .orElseThrow(() -> new AssertionError(name + " not found under " + root));
        }
    }

    // ------------------------------------------------------------------ item 13: an oversized record

    @Test
    void anOversizedRecordIsSkippedAndReportedAndTheOtherJobsAreServed(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        String ok;
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            ok = a.runToEnd(Json.of("scriptText", "python_data = {'ok': 1}"), HANG_GUARD).get("jobId").getAsString();
            assertEquals(0, a.shutdownAndExit());
        }
        // A 1 GB record (sparse: no disk is used), where a record is a few KB.
        String bad = "job-00000000bad1";
        Path badDir = tmp.resolve("state/jobs").resolve(bad);
        Files.createDirectories(badDir);
        try (RandomAccessFile f = new RandomAccessFile(badDir.resolve("job.json").toFile(), "rw")) {
            f.setLength(1L << 30);
        }
        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            JsonObject recovered = b.initializeResult.getAsJsonObject("recoveredJobs");
            assertEquals(1, recovered.get("jobs").getAsInt(), recovered.toString());
            assertEquals(1, recovered.get("unreadable").getAsInt(), recovered.toString());
            JsonObject warning = b.awaitNotification(n -> n.method().equals("window/showMessage")
                    && n.params().get("kind").getAsString().equals("RECORDS_UNREADABLE"), HANG_GUARD).params();
            assertTrue(warning.get("message").getAsString().contains(bad), warning.toString());
            assertEquals(JsonParser.parseString("{\"ok\": 1}"), b.call("getPythonData", Json.jobId(ok)));
            assertTrue(Files.exists(badDir.resolve("job.json")), "the unreadable record is left for a person");
            assertEquals("COMPLETED", b.runToEnd(Json.of("scriptText", "python_data = {}"), HANG_GUARD)
                    .get("state").getAsString());
        }
    }

    // ------------------------------------------------------------------ item 1: the heap

    @Test
    void threeHundredJobsWithLargePassedDataRunOnA64MegabyteHeap() throws Exception {
        int jobs = 300;
        try (ServerProcess s = ServerProcess.startWithJvm(List.of("-Xmx64m", "-XX:+UseSerialGC"), "--workers", "2")) {
            Random random = new Random(10);
            JsonArray values = new JsonArray();
            for (int i = 0; i < 50_000; i++) values.add(Math.round(random.nextDouble() * 1e5) / 1e5);
            JsonObject params = Json.of("scriptText", "python_data = {'n': len(values), 'first': values[0]}",
                    "passedData", Json.of("values", values));
            int bytes = params.toString().getBytes(StandardCharsets.UTF_8).length;
            long started = System.nanoTime();
            long heapAfterTwenty = 0;
            List<String> ids = new ArrayList<>();
            Semaphore inFlight = new Semaphore(8);
            List<CompletableFuture<Object>> answers = new ArrayList<>();
            for (int i = 0; i < jobs; i++) {
                inFlight.acquire();
                CompletableFuture<Object> answer = s.remote.request("addJob", params);
                answer.whenComplete((r, e) -> inFlight.release());
                answers.add(answer);
                if (i == 19) {
                    for (CompletableFuture<Object> a : answers) a.get(60, TimeUnit.SECONDS);
                    heapAfterTwenty = usedHeapAfterGc(s);
                }
            }
            for (CompletableFuture<Object> a : answers) {
                ids.add(((JsonObject) a.get(60, TimeUnit.SECONDS)).get("jobId").getAsString());
            }
            for (String id : ids) assertEquals("COMPLETED", s.awaitFinal(id, HANG_GUARD).get("state").getAsString());
            double seconds = (System.nanoTime() - started) / 1e9;
            JsonObject last = s.call("getPythonData", Json.jobId(ids.get(ids.size() - 1))).getAsJsonObject();
            assertEquals(50_000, last.get("n").getAsInt());
            long heapAfterAll = usedHeapAfterGc(s);
            System.out.printf(Locale.ROOT, "[heap] %d jobs of %d bytes each on -Xmx64m: %.1f s; heap used after GC: "
                    + "%.1f MB after 20 jobs, %.1f MB after %d%n", jobs, bytes, seconds, heapAfterTwenty / 1e6,
                    heapAfterAll / 1e6, jobs);
            assertTrue(s.process.isAlive());
            assertTrue(heapAfterAll - heapAfterTwenty < 8_000_000, "the table grew by "
                    + (heapAfterAll - heapAfterTwenty) + " bytes for " + (jobs - 20) + " finished jobs");
            assertEquals(jobs, s.callObject("getStats", new JsonObject()).get("completed").getAsInt());

            // Failures are the other thing a finished job keeps: 300 with 50 KB messages and
            // tracebacks. The table keeps whole failures for the latest finished jobs only.
            String raise = "raise ValueError('x' * 50000)";
            List<String> failed = new ArrayList<>();
            List<CompletableFuture<Object>> failing = new ArrayList<>();
            for (int i = 0; i < jobs; i++) {
                inFlight.acquire();
                CompletableFuture<Object> answer = s.remote.request("addJob", Json.of("scriptText", raise));
                answer.whenComplete((r, e) -> inFlight.release());
                failing.add(answer);
            }
            for (CompletableFuture<Object> a : failing) {
                failed.add(((JsonObject) a.get(60, TimeUnit.SECONDS)).get("jobId").getAsString());
            }
            for (String id : failed) assertEquals("FAILED", s.awaitFinal(id, HANG_GUARD).get("state").getAsString());
            long heapAfterFailures = usedHeapAfterGc(s);
            System.out.printf(Locale.ROOT, "[heap] then %d jobs failing with 50 KB messages: heap used after GC %.1f MB%n",
                    jobs, heapAfterFailures / 1e6);
            JsonObject first = s.callObject("getJob", Json.jobId(failed.get(0)));
            assertTrue(first.getAsJsonObject("error").get("traceback").getAsString().contains("x".repeat(50_000)),
                    "getJob reads an old failure whole from its record");
            assertTrue(heapAfterFailures < 48_000_000, heapAfterFailures + " bytes");
        }
    }

    @Test
    void aThirtyEightMegabyteAddJobSucceedsAndLeavesTheHeapAsItWas() throws Exception {
        try (ServerProcess s = ServerProcess.startWithJvm(List.of("-Xmx256m", "-XX:+UseSerialGC"), "--workers", "1")) {
            long before = usedHeapAfterGc(s);
            Random random = new Random(38);
            JsonArray values = new JsonArray();
            for (int i = 0; i < 4_400_000; i++) values.add(Math.round(random.nextDouble() * 1e6) / 1e6);
            JsonObject params = Json.of("scriptText", "python_data = {'n': len(values)}",
                    "passedData", Json.of("values", values));
            int bytes = params.toString().getBytes(StandardCharsets.UTF_8).length;
            assertTrue(bytes > 38_000_000 && bytes < 64 * 1024 * 1024, bytes + " bytes");
            long started = System.nanoTime();
            JsonObject done = s.runToEnd(params, HANG_GUARD);
            double seconds = (System.nanoTime() - started) / 1e9;
            assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
            JsonObject data = s.call("getPythonData", Json.jobId(done.get("jobId").getAsString())).getAsJsonObject();
            assertEquals(4_400_000, data.get("n").getAsInt());
            long after = usedHeapAfterGc(s);
            System.out.printf(Locale.ROOT, "[heap] one addJob of %.1f MB on -Xmx256m: %.1f s to COMPLETED; heap used "
                    + "after GC: %.1f MB before, %.1f MB after%n", bytes / 1e6, seconds, before / 1e6, after / 1e6);
            assertTrue(after - before < 8_000_000, "the server kept " + (after - before) + " bytes of the job");
        }
    }

    @Test
    void runningOutOfMemoryIsLoudAndEndsTheServerWithItsOwnExitCode() throws Exception {
        try (ServerProcess s = ServerProcess.startWithJvm(List.of("-Xmx32m", "-XX:+UseSerialGC"), "--workers", "1")) {
            // 40 MB in one message: under the 64 MB message cap, over the whole heap.
            JsonObject params = Json.of("scriptText", "pass", "passedData", Json.of("blob", "z".repeat(40_000_000)));
            s.remote.request("addJob", params);
            assertTrue(s.process.waitFor(60, TimeUnit.SECONDS), "the server did not end");
            String stderr = s.stderr();
            assertEquals(EXIT_OUT_OF_MEMORY, s.process.exitValue(), stderr);
            assertTrue(stderr.contains("SEVERE") && stderr.contains("OutOfMemoryError"), stderr);
            assertTrue(stderr.contains("-Xmx"), "the log says what to do: " + stderr);
            // The client is told too, if the server could still write (it may not have been).
            s.allNotifications().stream().filter(n -> n.method().equals("window/showMessage")).forEach(n -> {
                assertEquals(1, n.params().get("type").getAsInt(), n.params().toString());
                assertEquals("SERVER_OUT_OF_MEMORY", n.params().get("kind").getAsString());
            });
            System.out.println("[oom] showMessage arrived: " + s.allNotifications().stream()
                    .anyMatch(n -> n.method().equals("window/showMessage")));
        }
    }

    @Test
    void onlyAddJobMayBeALargeMessage() throws Exception {
        // Other requests are parsed into a tree; a large one is refused before it is read.
        JsonObject answer = rawCall(server, "big-get", "getJob",
                "{\"jobId\":\"job-000000000000\",\"pad\":[" + "1,".repeat(1_000_000) + "1]}");
        assertEquals(-32600, answer.getAsJsonObject("error").get("code").getAsInt(), answer.toString());
        assertTrue(answer.getAsJsonObject("error").get("message").getAsString().contains("only addJob's"), answer.toString());
        assertEquals("COMPLETED", run(Json.of("scriptText", "python_data = {}")).get("state").getAsString());
    }

    /** Heap in use after a full GC, from jcmd (the JDK's own tool), in bytes. */
    static long usedHeapAfterGc(ServerProcess s) throws Exception {
        Path jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd");
        String pid = Long.toString(s.process.pid());
        jcmdOutput(jcmd, pid, "GC.run");
        String info = jcmdOutput(jcmd, pid, "GC.heap_info");
        Matcher m = Pattern.compile("(?m)^\\s*(def new generation|tenured generation)\\s+total \\d+K, used (\\d+)K")
                .matcher(info);
        long used = 0;
        int found = 0;
        while (m.find()) {
            used += Long.parseLong(m.group(2)) * 1024;
            found++;
        }
        if (found != 2) fail("could not read the heap from jcmd GC.heap_info:\n" + info);
        return used;
    }

    private static String jcmdOutput(Path jcmd, String pid, String command) throws Exception {
        Process p = new ProcessBuilder(jcmd.toString(), pid, command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) fail("jcmd " + command + " failed:\n" + out);
        return out;
    }

    // ------------------------------------------------------------------ helpers

    /** Sends a request as raw bytes (for JSON escapes a Java client cannot produce) and waits for its answer. */
    static JsonObject rawCall(ServerProcess s, String id, String method, String paramsJson) throws Exception {
        OutputStream out = s.process.getOutputStream();
        BadInputIT.frame(out, "{\"jsonrpc\":\"2.0\",\"id\":\"" + id + "\",\"method\":\"" + method + "\",\"params\":"
                + paramsJson + "}");
        long deadline = System.currentTimeMillis() + ServerProcess.REQUEST_TIMEOUT.toMillis();
        while (System.currentTimeMillis() < deadline) {
            for (String body : s.rawStdout().split("Content-Length: \\d+\r\n\r\n")) {
                if (body.isBlank()) continue;
                JsonElement message;
                try {
                    message = JsonParser.parseString(body);
                } catch (RuntimeException stillArriving) {
                    continue;
                }
                JsonElement got = message.getAsJsonObject().get("id");
                if (got != null && got.isJsonPrimitive() && got.getAsString().equals(id)) return message.getAsJsonObject();
            }
            Thread.sleep(20);
        }
        throw new AssertionError("no answer to " + id + "; stderr:\n" + s.stderr());
    }

    private static void awaitSize(Path file, long size) throws Exception {
        long deadline = System.currentTimeMillis() + 60_000;
        while (Files.size(file) != size) {
            if (System.currentTimeMillis() > deadline) fail(file + " never became " + size + " bytes");
            Thread.sleep(20);
        }
    }

    private static void deleteTree(Path root) throws IOException {
        if (root == null || !Files.exists(root)) return;
        try (var all = Files.walk(root)) {
            for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }
}
