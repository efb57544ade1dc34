package dev.blenderjobs.it;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What an editor gets from the server (issue 12), on the real server jar with real Blender:
 * LSP work-done progress on tokens the server creates (and a client's token only while its
 * request is pending), live logs (followLog, job/log, unfollowLog), and diagnostics of failed
 * scripts (textDocument/publishDiagnostics). The client here declares what an LSP client such as
 * vscode-languageclient declares.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class EditorIT {
    static final Duration WAIT = Duration.ofSeconds(60);
    static ServerProcess server;

    @TempDir
    Path tmp;

    @BeforeAll
    static void start() throws Exception {
        server = ServerProcess.start(java.util.Map.of(), Json.obj("{'capabilities': {"
                + "'window': {'workDoneProgress': true},"
                + "'textDocument': {'publishDiagnostics': {'relatedInformation': true}}}}"), "--workers", "1");
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    // ------------------------------------------------------------------ helpers

    private static String steps(int n, double sleep) {
        return "import time\nfor i in range(" + n + "):\n    update_job_progress((i + 1) / " + n + ", 'step %d' % (i + 1))\n"
                + "    time.sleep(" + sleep + ")\n";
    }

    /** Index in the raw stdout of the first message matching, or -1. */
    private static int indexOf(List<JsonObject> messages, Predicate<JsonObject> match) {
        for (int i = 0; i < messages.size(); i++) if (match.test(messages.get(i))) return i;
        return -1;
    }

    private static Predicate<JsonObject> resultFor(String jobId) {
        return m -> m.has("result") && m.get("result").isJsonObject()
                && m.getAsJsonObject("result").has("jobId")
                && m.getAsJsonObject("result").get("jobId").getAsString().equals(jobId);
    }

    private static Predicate<JsonObject> method(String name, String key, String value) {
        return m -> m.has("method") && m.get("method").getAsString().equals(name) && m.has("params")
                && m.getAsJsonObject("params").has(key) && m.getAsJsonObject("params").get(key).getAsString().equals(value);
    }

    private static String kindOf(JsonObject value) {
        return value.get("kind").getAsString();
    }

    private static List<String> logTexts(ServerProcess s, String jobId) {
        return s.allNotifications().stream().filter(n -> n.method().equals("job/log")
                && n.params().get("jobId").getAsString().equals(jobId)).map(n -> n.params().get("text").getAsString()).toList();
    }

    private static String logFileText(ServerProcess s, String jobId) throws Exception {
        Path file = Path.of(s.callObject("getJob", Json.jobId(jobId)).get("logFile").getAsString());
        return new String(Files.readAllBytes(file), StandardCharsets.UTF_8); // invalid bytes become U+FFFD
    }

    private static void awaitProgress(ServerProcess s, String jobId) throws InterruptedException {
        s.awaitNotification(n -> n.method().equals("job/progress") && n.params().get("jobId").getAsString().equals(jobId), WAIT);
    }

    // ------------------------------------------------------------------ work-done progress

    @Test
    void theServerCreatesATokenAfterAnsweringAddJobAndReportsTheJobOnIt() throws Exception {
        String id = server.addJob(Json.of("scriptText", steps(5, 0.1), "name", "five steps", "workDoneProgress", true));
        assertEquals("COMPLETED", server.awaitFinal(id, WAIT).get("state").getAsString());
        String token = "blender-jobs/" + id;
        server.awaitNotification(n -> n.method().equals("$/progress") && n.params().get("token").getAsString().equals(token)
                && kindOf(n.params().getAsJsonObject("value")).equals("end"), WAIT);

        List<JsonObject> raw = server.rawMessages();
        int answer = indexOf(raw, resultFor(id));
        int create = indexOf(raw, method("window/workDoneProgress/create", "token", token));
        int begin = indexOf(raw, method("$/progress", "token", token));
        assertTrue(answer >= 0 && create > answer, "create is sent after the addJob answer: answer " + answer + ", create " + create);
        assertTrue(raw.get(create).has("id"), "window/workDoneProgress/create is a request: " + raw.get(create));
        assertTrue(begin > create, "progress only after the create request");

        List<JsonObject> values = server.workDoneProgress(token);
        JsonObject first = values.get(0);
        assertEquals("begin", kindOf(first), values.toString());
        assertEquals("Blender job five steps", first.get("title").getAsString());
        assertTrue(first.get("cancellable").getAsBoolean());
        assertEquals(0, first.get("percentage").getAsInt());
        List<JsonObject> reports = values.subList(1, values.size() - 1);
        assertFalse(reports.isEmpty(), values.toString());
        int last = -1;
        for (JsonObject r : reports) {
            assertEquals("report", kindOf(r), values.toString());
            assertTrue(r.get("percentage").getAsInt() >= last, "percentages never go back: " + values);
            last = r.get("percentage").getAsInt();
        }
        assertEquals(100, last, values.toString());
        assertEquals("step 5", reports.get(reports.size() - 1).get("message").getAsString());
        JsonObject end = values.get(values.size() - 1);
        assertEquals("end", kindOf(end));
        assertEquals("completed", end.get("message").getAsString());
    }

    @Test
    void cancellingTheProgressCancelsTheJob() throws Exception {
        String id = server.addJob(Json.of("scriptText", "import time\nupdate_job_progress(0.1, 'waiting')\ntime.sleep(60)",
                "workDoneProgress", true));
        String token = "blender-jobs/" + id;
        server.awaitNotification(n -> n.method().equals("$/progress") && n.params().get("token").getAsString().equals(token)
                && kindOf(n.params().getAsJsonObject("value")).equals("report"), WAIT);
        server.remote.notify("window/workDoneProgress/cancel", Json.of("token", token));
        assertEquals("CANCELED", server.awaitFinal(id, Duration.ofSeconds(30)).get("state").getAsString());
        server.awaitNotification(n -> n.method().equals("$/progress") && n.params().get("token").getAsString().equals(token)
                && kindOf(n.params().getAsJsonObject("value")).equals("end"), WAIT);
        List<JsonObject> values = server.workDoneProgress(token);
        assertEquals("canceled", values.get(values.size() - 1).get("message").getAsString());
    }

    @Test
    void aJobThatRestedBeforeTheClientAnsweredGetsBeginAndEndAtOnce() throws Exception {
        CompletableFuture<Object> answer = new CompletableFuture<>();
        server.onCreate = params -> answer;
        try {
            String id = server.addJob(Json.of("scriptText", "raise RuntimeError('quick failure')", "workDoneProgress", true));
            String token = "blender-jobs/" + id;
            server.awaitNotification(n -> n.method().equals("window/workDoneProgress/create")
                    && n.params().get("token").getAsString().equals(token), WAIT);
            assertEquals("FAILED", server.awaitFinal(id, WAIT).get("state").getAsString());
            assertTrue(server.workDoneProgress(token).isEmpty(), "nothing before the client answered");
            answer.complete(null);
            server.awaitNotification(n -> n.method().equals("$/progress") && n.params().get("token").getAsString().equals(token)
                    && kindOf(n.params().getAsJsonObject("value")).equals("end"), WAIT);
            List<JsonObject> values = server.workDoneProgress(token);
            assertEquals(List.of("begin", "end"), values.stream().map(EditorIT::kindOf).toList(), values.toString());
            assertTrue(values.get(1).get("message").getAsString().startsWith("failed: the script raised RuntimeError: quick failure"),
                    values.toString());
        } finally {
            server.onCreate = params -> CompletableFuture.completedFuture(null);
        }
    }

    @Test
    void aClientThatRefusesTheTokenGetsNoProgressOnIt() throws Exception {
        server.onCreate = params -> CompletableFuture.failedFuture(new org.eclipse.lsp4j.jsonrpc.ResponseErrorException(
                new ResponseError(-32603, "no progress UI here", null)));
        try {
            String id = server.addJob(Json.of("scriptText", steps(3, 0.1), "workDoneProgress", true));
            String token = "blender-jobs/" + id;
            server.awaitNotification(n -> n.method().equals("window/workDoneProgress/create")
                    && n.params().get("token").getAsString().equals(token), WAIT);
            assertEquals("COMPLETED", server.awaitFinal(id, WAIT).get("state").getAsString());
            // Everything of this job has been sent by now (one thread, in order); one more job to be sure.
            server.runToEnd(Json.of("scriptText", "pass"), WAIT);
            assertTrue(server.workDoneProgress(token).isEmpty(), server.workDoneProgress(token).toString());
            assertTrue(server.notificationsFor(id).stream().anyMatch(n -> n.method().equals("job/progress")),
                    "the job's own progress notifications go on");
        } finally {
            server.onCreate = params -> CompletableFuture.completedFuture(null);
        }
    }

    @Test
    void aClientTokenIsReportedOnOnlyWhileAddJobIsPending() throws Exception {
        String id = server.addJob(Json.of("scriptText", steps(4, 0.1), "name", "with a client token",
                "workDoneToken", "client-tok-1"));
        assertEquals("COMPLETED", server.awaitFinal(id, WAIT).get("state").getAsString());
        server.runToEnd(Json.of("scriptText", "pass"), WAIT); // anything late would have come by now

        List<JsonObject> raw = server.rawMessages();
        int answer = indexOf(raw, resultFor(id));
        List<Integer> onToken = new ArrayList<>();
        for (int i = 0; i < raw.size(); i++) if (method("$/progress", "token", "client-tok-1").test(raw.get(i))) onToken.add(i);
        assertEquals(2, onToken.size(), "begin and end, nothing else: " + server.workDoneProgress("client-tok-1"));
        assertTrue(onToken.get(1) < answer, "both before the addJob answer (positions " + onToken + ", answer " + answer + ")");
        List<JsonObject> values = server.workDoneProgress("client-tok-1");
        assertEquals("begin", kindOf(values.get(0)));
        assertEquals("Adding Blender job with a client token", values.get(0).get("title").getAsString());
        assertEquals("end", kindOf(values.get(1)));
        assertTrue(values.get(1).get("message").getAsString().matches("(queued|started) as " + id), values.toString());
        assertEquals(-1, indexOf(raw, method("window/workDoneProgress/create", "token", "blender-jobs/" + id)),
                "no token of the server's own without workDoneProgress: true");

        // The same token again: it was done with the first request, so it is fine.
        String again = server.addJob(Json.of("scriptText", "pass", "workDoneToken", "client-tok-1"));
        assertEquals("COMPLETED", server.awaitFinal(again, WAIT).get("state").getAsString());
    }

    @Test
    void withoutTheClientCapabilityNothingIsCreatedOrReported() throws Exception {
        try (ServerProcess plain = ServerProcess.start("--workers", "1", "--stdio")) {
            // --stdio (added by vscode-languageclient) is accepted and changes nothing.
            String id = plain.addJob(Json.of("scriptText", steps(2, 0.05), "workDoneProgress", true, "workDoneToken", "t"));
            assertEquals("COMPLETED", plain.awaitFinal(id, WAIT).get("state").getAsString());
            plain.runToEnd(Json.of("scriptText", "raise ValueError('x')", "name", "failing"), WAIT);
            plain.runToEnd(Json.of("scriptText", "pass"), WAIT);
            List<String> methods = plain.rawMessages().stream().filter(m -> m.has("method"))
                    .map(m -> m.get("method").getAsString()).distinct().toList();
            assertFalse(methods.contains("$/progress"), methods.toString());
            assertFalse(methods.contains("window/workDoneProgress/create"), methods.toString());
            assertFalse(methods.contains("textDocument/publishDiagnostics"), methods.toString());
            plain.assertProtocolStreamClean();
        }
    }

    // ------------------------------------------------------------------ live logs

    @Test
    void followLogGivesTheConsoleSoFarThenEveryPrintAsItHappensUntilTheJobRests() throws Exception {
        String script = """
                import os, sys, time
                print("start")
                for i in range(5):
                    print("line %d of 5" % (i + 1))
                    update_job_progress((i + 1) / 5)
                    time.sleep(0.3)
                sys.stdout.write("no newline, then UTF-8: h\\u00e9llo \\u20ac ")
                sys.stdout.flush()
                os.write(1, b"and a raw invalid byte: \\xff!\\n")
                print("done")
                """;
        String id = server.addJob(Json.of("scriptText", script, "name", "printer"));
        awaitProgress(server, id);
        JsonObject followed = server.callObject("followLog", Json.jobId(id));
        assertEquals(id, followed.get("jobId").getAsString());
        assertTrue(followed.get("following").getAsBoolean(), followed.toString());
        String soFar = followed.get("text").getAsString();
        assertTrue(soFar.startsWith("start\nline 1 of 5\n"), soFar);
        assertFalse(soFar.contains("done"), soFar);

        JsonObject rest = server.awaitFinal(id, WAIT);
        assertEquals("COMPLETED", rest.get("state").getAsString());
        List<String> live = logTexts(server, id);
        assertTrue(live.size() >= 2, "several job/log notifications while it ran: " + live);
        String whole = soFar + String.join("", live);
        assertEquals(logFileText(server, id), whole, "the answer and the notifications are the log, exactly");
        assertTrue(whole.contains("h\u00e9llo \u20ac and a raw invalid byte: \uFFFD!\n"), whole);

        // Order: no job/log before the followLog answer, all of them before the COMPLETED notification.
        List<JsonObject> raw = server.rawMessages();
        int answer = indexOf(raw, m -> m.has("result") && m.get("result").isJsonObject()
                && m.getAsJsonObject("result").has("following"));
        int firstLog = indexOf(raw, method("job/log", "jobId", id));
        int completed = indexOf(raw, m -> method("job/stateChanged", "jobId", id).test(m)
                && m.getAsJsonObject("params").get("state").getAsString().equals("COMPLETED"));
        int lastLog = -1;
        for (int i = 0; i < raw.size(); i++) if (method("job/log", "jobId", id).test(raw.get(i))) lastLog = i;
        assertTrue(answer < firstLog, "answer " + answer + " before the first job/log " + firstLog);
        assertTrue(lastLog < completed, "the last job/log " + lastLog + " before COMPLETED " + completed);

        // A resting job: its whole log, and no following.
        JsonObject again = server.callObject("followLog", Json.jobId(id));
        assertFalse(again.get("following").getAsBoolean());
        assertEquals(whole, again.get("text").getAsString());
    }

    @Test
    void aFloodIsBoundedAndSaysExactlyHowMuchWasSkipped() throws Exception {
        String script = """
                import sys, time
                print("ready")
                update_job_progress(0.01)
                time.sleep(1.0)
                line = "x" * 99 + "\\n"
                for i in range(50000):
                    sys.stdout.write(line)
                print("END")
                """;
        String id = server.addJob(Json.of("scriptText", script, "name", "flood"));
        awaitProgress(server, id);
        JsonObject followed = server.callObject("followLog", Json.jobId(id));
        assertTrue(followed.get("following").getAsBoolean());
        long start = System.nanoTime();
        assertEquals("COMPLETED", server.awaitFinal(id, WAIT).get("state").getAsString());
        double seconds = (System.nanoTime() - start) / 1e9;
        // The server answered requests all along; it still does.
        assertEquals(1, server.callObject("getJob", Json.jobId(id)).get("attempt").getAsInt());

        String delivered = followed.get("text").getAsString() + String.join("", logTexts(server, id));
        Matcher marker = Pattern.compile("\\[blender-jobs: (\\d+) bytes of output skipped here[^\\n]*\\]\\n").matcher(delivered);
        long skipped = 0;
        int markers = 0;
        while (marker.find()) {
            skipped += Long.parseLong(marker.group(1));
            markers++;
        }
        assertTrue(markers >= 1, "a marker says output was skipped");
        String text = marker.replaceAll("");
        long fileBytes = Files.size(Path.of(server.callObject("getJob", Json.jobId(id)).get("logFile").getAsString()));
        assertEquals(5_000_000 + "ready\nEND\n".length(), fileBytes, "the log file has everything");
        assertEquals(fileBytes, text.length() + skipped, "delivered + skipped = the log, to the byte");
        assertTrue(text.length() < 256 * 1024 * (seconds + 2), "bounded per second: " + text.length() + " bytes in "
                + seconds + " s");
        assertTrue(text.endsWith("END\n"), "the end of the output is not lost");
    }

    @Test
    void unfollowLogStopsTheNotificationsAndUnknownJobsAreRefused() throws Exception {
        String id = server.addJob(Json.of("scriptText", "import time\nfor i in range(40):\n    print('tick', i)\n"
                + "    update_job_progress(i / 40)\n    time.sleep(0.1)"));
        awaitProgress(server, id);
        server.callObject("followLog", Json.jobId(id));
        server.awaitNotification(n -> n.method().equals("job/log") && n.params().get("jobId").getAsString().equals(id), WAIT);
        JsonObject stopped = server.callObject("unfollowLog", Json.jobId(id));
        assertEquals(Json.of("jobId", id, "following", false), stopped);
        assertEquals("COMPLETED", server.awaitFinal(id, WAIT).get("state").getAsString());
        List<JsonObject> raw = server.rawMessages();
        int answer = indexOf(raw, m -> m.has("result") && m.get("result").isJsonObject()
                && m.getAsJsonObject("result").has("following")
                && !m.getAsJsonObject("result").get("following").getAsBoolean()
                && m.getAsJsonObject("result").get("jobId").getAsString().equals(id));
        for (int i = answer + 1; i < raw.size(); i++) {
            assertFalse(method("job/log", "jobId", id).test(raw.get(i)), "a job/log after the unfollowLog answer: " + raw.get(i));
        }
        ResponseError unknown = server.callError("followLog", Json.jobId("job-000000000000"));
        assertEquals(1001, unknown.getCode());
        assertEquals(1001, server.callError("unfollowLog", Json.jobId("job-000000000000")).getCode());
        assertEquals(-32602, server.callError("followLog", new JsonObject()).getCode());
    }

    // ------------------------------------------------------------------ diagnostics

    @Test
    void aFailingScriptGetsAnErrorOnItsFailingLineAndTheNextSuccessClearsIt() throws Exception {
        Path script = tmp.resolve("failing job.py");
        Files.writeString(script, """
                import helper_mod
                
                
                def check(value):
                    raise ValueError("value %r is not allowed" % value)
                
                
                helper_mod.call(check, 42)
                """);
        Files.writeString(tmp.resolve("helper_mod.py"), "def call(f, v):\n    f(v)\n");
        String uri = script.toUri().toString();
        JsonObject failed = server.runToEnd(Json.of("script", script.toString()), WAIT);
        assertEquals("FAILED", failed.get("state").getAsString());
        ServerProcess.Notification published = server.awaitNotification(n -> n.method().equals("textDocument/publishDiagnostics")
                && n.params().get("uri").getAsString().equals(uri), WAIT);
        JsonArray diagnostics = published.params().getAsJsonArray("diagnostics");
        assertEquals(1, diagnostics.size(), published.params().toString());
        JsonObject d = diagnostics.get(0).getAsJsonObject();
        assertEquals(Json.obj("{'line': 4, 'character': 0}"), d.getAsJsonObject("range").getAsJsonObject("start"));
        assertEquals(4, d.getAsJsonObject("range").getAsJsonObject("end").get("line").getAsInt());
        assertEquals(1, d.get("severity").getAsInt());
        assertEquals("blender-jobs", d.get("source").getAsString());
        assertEquals("ValueError: value 42 is not allowed", d.get("message").getAsString());
        JsonArray related = d.getAsJsonArray("relatedInformation");
        assertEquals(2, related.size(), related.toString());
        JsonObject caller = related.get(0).getAsJsonObject();
        assertEquals(uri, caller.getAsJsonObject("location").get("uri").getAsString());
        assertEquals(7, caller.getAsJsonObject("location").getAsJsonObject("range").getAsJsonObject("start").get("line").getAsInt());
        assertEquals("in <module>: helper_mod.call(check, 42)", caller.get("message").getAsString());
        JsonObject helper = related.get(1).getAsJsonObject();
        assertEquals(tmp.resolve("helper_mod.py").toUri().toString(), helper.getAsJsonObject("location").get("uri").getAsString());
        assertEquals(1, helper.getAsJsonObject("location").getAsJsonObject("range").getAsJsonObject("start").get("line").getAsInt());

        // Fixed: the next completed job of the script clears them.
        Files.writeString(script, "python_data = {'fixed': True}\n");
        JsonObject fixed = server.runToEnd(Json.of("script", script.toString()), WAIT);
        assertEquals("COMPLETED", fixed.get("state").getAsString());
        ServerProcess.Notification cleared = server.awaitNotification(n -> n.method().equals("textDocument/publishDiagnostics")
                && n.params().get("uri").getAsString().equals(uri) && n.params().getAsJsonArray("diagnostics").isEmpty(), WAIT);
        assertNotNull(cleared);
    }

    @Test
    void aSyntaxErrorIsMarkedOnItsLine() throws Exception {
        Path script = tmp.resolve("syntax.py");
        Files.writeString(script, "x = 1\ny = (\n");
        assertEquals("FAILED", server.runToEnd(Json.of("script", script.toString()), WAIT).get("state").getAsString());
        JsonObject params = server.awaitNotification(n -> n.method().equals("textDocument/publishDiagnostics")
                && n.params().get("uri").getAsString().equals(script.toUri().toString()), WAIT).params();
        JsonObject d = params.getAsJsonArray("diagnostics").get(0).getAsJsonObject();
        assertEquals(1, d.getAsJsonObject("range").getAsJsonObject("start").get("line").getAsInt(), d.toString());
        assertTrue(d.get("message").getAsString().startsWith("SyntaxError: "), d.toString());
    }

    @Test
    void aFailureThatDoesNotPassThroughTheScriptPublishesNothing() throws Exception {
        Path script = tmp.resolve("times_out.py");
        Files.writeString(script, "import time\ntime.sleep(30)\n");
        JsonObject rest = server.runToEnd(Json.of("script", script.toString(), "timeout", 0.5), WAIT);
        assertEquals("FAILED", rest.get("state").getAsString());
        server.runToEnd(Json.of("scriptText", "pass"), WAIT);
        for (JsonElement e : server.rawMessages().stream().filter(method("textDocument/publishDiagnostics", "uri",
                script.toUri().toString())).map(JsonElement.class::cast).toList()) {
            throw new AssertionError("diagnostics for a timeout: " + e);
        }
    }
}
