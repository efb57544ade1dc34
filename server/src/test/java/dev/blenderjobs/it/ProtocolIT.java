package dev.blenderjobs.it;

import com.google.gson.JsonObject;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The wire itself: lifecycle, errors for bad requests, and a protocol stream nothing can corrupt. */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class ProtocolIT {
    static ServerProcess server;

    @BeforeAll
    static void start() throws Exception {
        server = ServerProcess.start("--workers", "1");
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    @Test
    void initializeDescribesServerBlenderAndCapabilities() throws Exception {
        JsonObject init = server.callObject("initialize", new JsonObject());
        assertEquals("blender-jobs", init.getAsJsonObject("serverInfo").get("name").getAsString());
        JsonObject blender = init.getAsJsonObject("blender");
        assertTrue(blender.get("available").getAsBoolean(), init.toString());
        assertTrue(blender.get("version").getAsString().matches("\\d+\\.\\d+.*"), init.toString());
        assertEquals(1, init.get("workers").getAsInt());
        String requests = init.getAsJsonObject("capabilities").get("requests").toString();
        for (String m : new String[]{"addJob", "getProgress", "getPythonData", "getDataBlocks", "cancelJob", "getJob",
                "listJobs", "removeJob", "getStats"}) {
            assertTrue(requests.contains("\"" + m + "\""), m + " missing from " + requests);
        }
    }

    @Test
    void scriptPrintingToStdoutDoesNotCorruptTheProtocol() throws Exception {
        String id = server.addJob(Json.of("script", ServerProcess.fixture("jobs/print_stdout.py").toString()));
        JsonObject done = server.awaitFinal(id, Duration.ofSeconds(60));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        assertEquals("{\"ok\":true}", server.call("getPythonData", Json.jobId(id)).toString());
        // The script's output went to the job's log instead.
        JsonObject job = server.callObject("getJob", Json.jobId(id));
        assertTrue(Files.readString(Path.of(job.get("logFile").getAsString())).contains("Content-Length"),
                "the script's fake framing should be in its log");
        server.assertProtocolStreamClean();
    }

    @Test
    void aMessageOverTheSizeCapIsSkippedAndAnsweredAndTheServerGoesOn() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1", "--max-message-size", "1")) {
            byte[] body = ("{\"jsonrpc\":\"2.0\",\"id\":999,\"method\":\"addJob\",\"params\":{\"scriptText\":\""
                    + "x".repeat(2 * 1024 * 1024) + "\"}}").getBytes(java.nio.charset.StandardCharsets.UTF_8);
            var out = s.process.getOutputStream();
            synchronized (out) {
                out.write(("Content-Length: " + body.length + "\r\n\r\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
                out.write(body);
                out.flush();
            }
            // The server is still there and answers the next request...
            JsonObject stats = s.callObject("getStats", new JsonObject());
            assertEquals(0, stats.get("total").getAsInt(), "the oversized addJob must not have been queued");
            // ...and it answered the oversized one with an error whose id is null.
            String raw = s.rawStdout();
            assertTrue(raw.contains("\"id\":null") && raw.contains("exceeds the server"), raw);
            assertTrue(s.process.isAlive());
        }
    }

    /**
     * LSP work-done progress as the spec has it: a client's workDoneToken is valid only until
     * its request is answered (begin and end within addJob, nothing after); a job is reported
     * for its whole life on a token the server creates with window/workDoneProgress/create once
     * addJob has answered, and window/workDoneProgress/cancel with that token cancels the job.
     * (EditorIT has the edge cases: a late or refused create answer, ordering, no capability.)
     */
    @Test
    void lspWorkDoneProgressFollowsTheSpec() throws Exception {
        try (ServerProcess s = ServerProcess.startRaw("--workers", "1")) {
            s.call("initialize", Json.obj("{'capabilities': {'window': {'workDoneProgress': true}}}"));
            String done = s.addJob(Json.of("scriptText", "import time\nfor i in range(5):\n    update_job_progress((i + 1) / 5, 'step')\n    time.sleep(0.05)",
                    "workDoneToken", "tok-done", "name", "five steps", "workDoneProgress", true));
            // Within the request: begin and end on the client's token, both already here with the answer.
            var request = s.workDoneProgress("tok-done");
            assertEquals(2, request.size(), request.toString());
            assertEquals("begin", request.get(0).get("kind").getAsString());
            assertEquals("end", request.get(1).get("kind").getAsString());
            assertTrue(request.get(1).get("message").getAsString().endsWith(" as " + done), request.toString());

            assertEquals("COMPLETED", s.awaitFinal(done, Duration.ofSeconds(60)).get("state").getAsString());
            String token = "blender-jobs/" + done;
            s.awaitNotification(n -> n.method().equals("$/progress") && n.params().get("token").getAsString().equals(token)
                    && n.params().getAsJsonObject("value").get("kind").getAsString().equals("end"), Duration.ofSeconds(10));
            var values = s.workDoneProgress(token);
            assertEquals("begin", values.get(0).get("kind").getAsString(), values.toString());
            assertTrue(values.get(0).get("title").getAsString().contains("five steps"));
            assertTrue(values.get(0).get("cancellable").getAsBoolean());
            assertEquals("report", values.get(1).get("kind").getAsString(), values.toString());
            assertEquals("end", values.get(values.size() - 1).get("kind").getAsString());
            assertEquals(100, values.get(values.size() - 2).get("percentage").getAsInt(), values.toString());
            assertEquals(2, s.workDoneProgress("tok-done").size(), "nothing on the client's token after the answer");

            String slow = s.addJob(Json.of("scriptText", "import time\nupdate_job_progress(0.1)\ntime.sleep(60)",
                    "workDoneToken", 42, "workDoneProgress", true));
            s.awaitNotification(n -> n.method().equals("job/progress") && n.params().get("jobId").getAsString().equals(slow),
                    Duration.ofSeconds(60));
            s.remote.notify("window/workDoneProgress/cancel", Json.obj("{'token': 42}"));
            s.remote.notify("window/workDoneProgress/cancel", Json.of("token", "blender-jobs/job-000000000000"));
            s.callObject("getStats", new JsonObject());
            assertEquals("ACTIVE", s.callObject("getProgress", Json.jobId(slow)).get("state").getAsString(),
                    "the client's token is no longer tied to the job; an unknown token cancels nothing");
            s.remote.notify("window/workDoneProgress/cancel", Json.of("token", "blender-jobs/" + slow));
            assertEquals("CANCELED", s.awaitFinal(slow, Duration.ofSeconds(30)).get("state").getAsString());
        }
    }

    @Test
    void unknownMethodIsMethodNotFound() throws Exception {
        ResponseError e = server.callError("noSuchMethod", new JsonObject());
        assertEquals(-32601, e.getCode());
    }

    /** LSP base protocol: "$/" requests the server does not know are MethodNotFound; such notifications are ignored. */
    @Test
    void anUnknownDollarRequestIsMethodNotFoundAndAnUnknownDollarNotificationIsIgnored() throws Exception {
        ResponseError e = server.callError("$/unknownThing", new JsonObject());
        assertEquals(-32601, e.getCode());
        assertTrue(e.getMessage().contains("$/unknownThing"), e.getMessage());
        server.remote.notify("$/unknownThing", new JsonObject());
        assertNotNull(server.call("getStats", new JsonObject()), "the server goes on");
    }

    /**
     * Methods without parameters take params absent, null, {}, [] and [null]: what stock clients
     * send (vscode-jsonrpc's sendRequest('shutdown', undefined) sends [null]), ending with a
     * clean shutdown and exit.
     */
    @Test
    void noParameterMethodsAcceptWhatStockClientsSendForNothing() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            var out = s.process.getOutputStream();
            List<String> variants = List.of("", ",\"params\":null", ",\"params\":{}", ",\"params\":[]", ",\"params\":[null]");
            List<Integer> ids = new java.util.ArrayList<>();
            int id = 500;
            for (String method : List.of("cancelAll", "resumeAll", "getStats", "shutdown")) {
                for (String params : variants) {
                    ids.add(id);
                    BadInputIT.frame(out, "{\"jsonrpc\":\"2.0\",\"id\":" + id++ + ",\"method\":\"" + method + "\"" + params + "}");
                }
            }
            assertEquals(List.of(), BadInputIT.awaitAnswers(s, ids, Duration.ofSeconds(30)), s.stderr());
            String stdout = s.rawStdout();
            for (int i : ids) {
                assertTrue(stdout.contains("\"id\":" + i + ",\"result\""), "request " + i + " failed:\n" + stdout);
            }
            BadInputIT.frame(out, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\",\"params\":[null]}");
            assertTrue(s.process.waitFor(30, TimeUnit.SECONDS), "exit with [null] params must end the server");
            assertEquals(0, s.process.exitValue(), "exit after a shutdown that was answered is code 0");
        }
    }

    /** --help and --version do not start the server, so they print to stdout (not the protocol then) and exit 0. */
    @Test
    void helpAndVersionPrintToStdoutAndExitZero() throws Exception {
        for (String flag : List.of("--help", "--version")) {
            Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-jar",
                    ServerProcess.jar().toString(), flag).redirectError(ProcessBuilder.Redirect.PIPE).start();
            p.getOutputStream().close();
            String stdout = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            String stderr = new String(p.getErrorStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            assertEquals(0, p.exitValue(), flag + ": " + stderr);
            assertTrue(stdout.contains(flag.equals("--help") ? "--state-dir" : dev.blenderjobs.BlenderJobsServer.VERSION), flag + " stdout: " + stdout
                    + "\nstderr: " + stderr);
            assertEquals("", stderr, flag);
        }
    }

    @Test
    void badAddJobParamsAreRejectedWithTheFieldNamedAndNothingQueued() throws Exception {
        int before = server.callObject("listJobs", new JsonObject()).get("count").getAsInt();
        Path script = ServerProcess.fixture("jobs/echo.py");
        Object[][] cases = {
                {Json.of("script", script.toString(), "scriptText", "x = 1"), "script"},
                {Json.of("name", "nothing to run"), "script"},
                {Json.of("script", "/definitely/not/here.py"), "script"},
                {Json.of("scriptText", "x = 1", "timeout", -1), "timeout"},
                {Json.of("scriptText", "x = 1", "timeout", "soon"), "timeout"},
                {Json.of("scriptText", "x = 1", "passedData", "[1, 2]"), "passedData"},
                {Json.obj("{'scriptText': 'x = 1', 'passedData': [1, 2]}"), "passedData"},
                {Json.obj("{'scriptText': 'x = 1', 'passedData': {'python_data': 1}}"), "passedData"},
                {Json.of("scriptText", "x = 1", "maxAttempts", 0), "maxAttempts"},
                {Json.of("scriptText", "x = 1", "timout", 5), "timout"},
                {Json.of("scriptText", "x = 1", "blendFile", script.toString()), "blendFile"},
                {Json.obj("{'scriptText': 'x = 1', 'passedDataBlocks': {'names': {'objects': ['Cube']}}}"), "passedDataBlocks"},
                {Json.of("scriptText", "x = 1", "isolation", "thread"), "isolation"},
        };
        for (Object[] c : cases) {
            ResponseError e = server.callError("addJob", c[0]);
            assertEquals(-32602, e.getCode(), c[0] + " -> " + e.getMessage());
            JsonObject data = (JsonObject) com.google.gson.JsonParser.parseString(e.getData().toString());
            assertEquals(c[1], data.get("field").getAsString(), c[0] + " -> " + e.getMessage());
            assertTrue(e.getMessage().contains((String) c[1]), e.getMessage());
        }
        assertEquals(before, server.callObject("listJobs", new JsonObject()).get("count").getAsInt());
    }

    @Test
    void dataOfUnknownUnfinishedFailedAndCanceledJobsHaveDistinctErrors() throws Exception {
        assertEquals(1001, server.callError("getPythonData", Json.jobId("job-000000000000")).getCode());
        assertEquals(1001, server.callError("getDataBlocks", Json.jobId("job-000000000000")).getCode());
        assertEquals(1001, server.callError("getProgress", Json.jobId("nope")).getCode());

        String slow = server.addJob(Json.of("scriptText", "import time\ntime.sleep(30)"));
        ResponseError notFinished = server.callError("getPythonData", Json.jobId(slow));
        assertEquals(1002, notFinished.getCode());
        assertEquals(1002, server.callError("getDataBlocks", Json.jobId(slow)).getCode());
        assertEquals(1005, server.callError("removeJob", Json.jobId(slow)).getCode());
        JsonObject canceled = server.callObject("cancelJob", Json.jobId(slow));
        assertEquals("CANCELED", canceled.get("state").getAsString());
        assertTrue(canceled.get("canceled").getAsBoolean());
        assertEquals(1004, server.callError("getPythonData", Json.jobId(slow)).getCode());

        String failing = server.addJob(Json.of("scriptText", "raise RuntimeError('boom')"));
        assertEquals("FAILED", server.awaitFinal(failing, Duration.ofSeconds(60)).get("state").getAsString());
        ResponseError failed = server.callError("getPythonData", Json.jobId(failing));
        assertEquals(1003, failed.getCode());
        assertTrue(failed.getData().toString().contains("SCRIPT_ERROR"), failed.getData().toString());

        JsonObject removed = server.callObject("removeJob", Json.jobId(failing));
        assertTrue(removed.get("removed").getAsBoolean());
        assertEquals(1001, server.callError("getJob", Json.jobId(failing)).getCode());
        assertEquals("REMOVED", server.awaitNotification(n -> n.method().equals("job/removed")
                && n.params().get("jobId").getAsString().equals(failing), Duration.ofSeconds(10)).params()
                .get("reason").getAsString());
    }

    @Test
    void replaceExistingCancelsAndRemovesTheJobOfTheSameNameAndSaysSo() throws Exception {
        String old = server.addJob(Json.of("name", "preview", "scriptText", "import time\ntime.sleep(30)"));
        String other = server.addJob(Json.of("name", "other", "scriptText", "python_data = 1"));
        assertEquals("COMPLETED", server.runToEnd(Json.of("name", "preview", "replaceExisting", true,
                "scriptText", "python_data = 2"), Duration.ofSeconds(60)).get("state").getAsString());
        assertEquals("COMPLETED", server.awaitFinal(other, Duration.ofSeconds(60)).get("state").getAsString());
        assertEquals(1001, server.callError("getJob", Json.jobId(old)).getCode());
        // The replaced job's end, then its removal, in that order.
        List<String> told = server.notificationsFor(old).stream()
                .filter(n -> !n.method().equals("job/progress"))
                .map(n -> n.method().equals("job/removed") ? "removed:" + n.params().get("reason").getAsString()
                        : n.params().get("state").getAsString())
                .toList();
        assertEquals("CANCELED", told.get(told.size() - 2), told.toString());
        assertEquals("removed:REPLACED", told.get(told.size() - 1), told.toString());
    }

    @Test
    void requestsBeforeInitializeAreRefusedAndExitWithoutShutdownIsCodeOne() throws Exception {
        try (ServerProcess raw = ServerProcess.startRaw("--workers", "1")) {
            ResponseError e = raw.callError("listJobs", new JsonObject());
            assertEquals(-32002, e.getCode());
            raw.call("initialize", new JsonObject());
            assertNotNull(raw.call("getStats", new JsonObject()));
            raw.remote.notify("exit", null);
            assertTrue(raw.process.waitFor(30, TimeUnit.SECONDS), "server did not exit");
            assertEquals(1, raw.process.exitValue());
        }
    }

    @Test
    void shutdownThenExitIsCodeZeroAndLeavesNoBlender() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "2")) {
            String id = s.addJob(Json.of("scriptText", "python_data = {'ok': True}"));
            s.awaitFinal(id, Duration.ofSeconds(60));
            var blenders = s.blenderProcesses();
            assertFalse(blenders.isEmpty(), "workers should be running");
            assertEquals(0, s.shutdownAndExit());
            assertNoneAliveWithin(blenders, Duration.ofSeconds(5));
        }
    }

    @Test
    void closingStdinShutsTheServerDownAndReportsUnfinishedJobsInterrupted() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            String id = s.addJob(Json.of("scriptText", "python_data = {'ok': True}"));
            s.awaitFinal(id, Duration.ofSeconds(60));
            String running = s.addJob(Json.of("scriptText", "import time\nupdate_job_progress(0.1)\ntime.sleep(60)"));
            s.awaitNotification(n -> n.method().equals("job/progress")
                    && n.params().get("jobId").getAsString().equals(running), Duration.ofSeconds(60));
            var blenders = s.blenderProcesses();
            Path stateDir = Path.of(s.initializeResult.get("stateDir").getAsString());
            s.process.getOutputStream().close();
            assertTrue(s.process.waitFor(30, TimeUnit.SECONDS), "server did not exit after stdin closed");
            assertEquals(0, s.process.exitValue());
            JsonObject told = s.awaitState(running, java.util.List.of("INTERRUPTED"), Duration.ofSeconds(5));
            assertTrue(told.getAsJsonObject("error").get("message").getAsString()
                    .contains("the client closed the server's input"), told.toString());
            assertNoneAliveWithin(blenders, Duration.ofSeconds(5));
            assertFalse(Files.exists(stateDir), "a temporary state directory is deleted at exit");
        }
    }

    @Test
    void withoutBlenderInitializeAnswersAndAddJobSaysHowToInstall() throws Exception {
        try (ServerProcess s = ServerProcess.start("--blender", "/nonexistent/blender")) {
            JsonObject init = s.callObject("initialize", new JsonObject());
            JsonObject blender = init.getAsJsonObject("blender");
            assertFalse(blender.get("available").getAsBoolean());
            assertTrue(blender.get("problem").getAsString().contains("/nonexistent/blender"), blender.toString());
            ResponseError e = s.callError("addJob", Json.of("scriptText", "x = 1"));
            assertEquals(1010, e.getCode());
            assertTrue(e.getMessage().contains("apt-get install blender"), e.getMessage());
            assertTrue(e.getMessage().contains("--blender"), e.getMessage());
            assertEquals(0, s.callObject("getStats", new JsonObject()).get("total").getAsInt());
        }
    }

    static void assertNoneAliveWithin(java.util.List<ProcessHandle> processes, Duration within) throws InterruptedException {
        long deadline = System.currentTimeMillis() + within.toMillis();
        while (System.currentTimeMillis() < deadline && processes.stream().anyMatch(ProtocolIT::running)) {
            Thread.sleep(100);
        }
        assertTrue(processes.stream().noneMatch(ProtocolIT::running),
                "still alive: " + processes.stream().filter(ProtocolIT::running).map(ProcessHandle::pid).toList());
    }

    /**
     * Alive and not a zombie. A Blender orphaned by a SIGKILLed server is re-parented to PID 1,
     * which in some containers never reaps it: it has exited, but isAlive() stays true.
     */
    static boolean running(ProcessHandle p) {
        if (!p.isAlive()) return false;
        try {
            String stat = java.nio.file.Files.readString(java.nio.file.Path.of("/proc", Long.toString(p.pid()), "stat"));
            // "pid (comm) S ...": the state follows the last ')' (comm may hold spaces and parens).
            return stat.charAt(stat.lastIndexOf(')') + 2) != 'Z';
        } catch (java.io.IOException | RuntimeException gone) {
            return p.isAlive();
        }
    }
}
