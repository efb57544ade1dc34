package dev.blenderjobs.it;

import com.google.gson.JsonObject;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Faults in the work and in the environment: each ends in a definite state and the server keeps serving. */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class FaultsIT {
    static final Duration HANG_GUARD = Duration.ofSeconds(120);
    static ServerProcess server;

    @BeforeAll
    static void start() throws Exception {
        server = ServerProcess.start("--workers", "1");
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    static JsonObject run(JsonObject params) throws Exception {
        return server.runToEnd(params, HANG_GUARD);
    }

    @Test
    void twentyMegabytesOnStdoutAndStderrComplete() throws Exception {
        JsonObject done = run(Json.of("scriptText", String.join("\n",
                "import sys",
                "line = 'x' * 99 + '\\n'",
                "for i in range(100000):",
                "    sys.stdout.write(line)",
                "    sys.stderr.write(line)",
                "print('flood done')",
                "python_data = {'lines': 200000}")));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        JsonObject job = server.callObject("getJob", Json.jobId(done.get("jobId").getAsString()));
        assertTrue(job.getAsJsonArray("logTail").toString().contains("flood done"));
        assertTrue(Files.size(Path.of(job.get("logFile").getAsString())) >= 20_000_000);
    }

    @Test
    void aScriptThatClosesItsStdoutAndStderrDoesNotBreakTheWorker() throws Exception {
        JsonObject closed = run(Json.of("scriptText", String.join("\n",
                "import os, sys",
                "print('before closing')",
                "sys.stdout.close()",
                "sys.stderr.close()",
                "os.close(1)",
                "os.close(2)",
                "python_data = {'closed': True}")));
        assertEquals("COMPLETED", closed.get("state").getAsString(), closed.toString());
        JsonObject next = run(Json.of("scriptText", "print('next job prints')\npython_data = {}"));
        assertEquals("COMPLETED", next.get("state").getAsString(), next.toString());
        JsonObject job = server.callObject("getJob", Json.jobId(next.get("jobId").getAsString()));
        assertTrue(job.getAsJsonArray("logTail").toString().contains("next job prints"), job.toString());
    }

    @Test
    void aWorkerThatHangsWithoutOutputIsKilledAtTheTimeout() throws Exception {
        // SIGSTOP: the process can neither print nor handle TERM; only the KILL after the grace period works.
        JsonObject hung = run(Json.of("scriptText", "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)",
                "timeout", 2));
        assertEquals("FAILED", hung.get("state").getAsString());
        assertEquals("TIMED_OUT", hung.getAsJsonObject("error").get("kind").getAsString());
        assertEquals("COMPLETED", run(Json.of("scriptText", "python_data = {}")).get("state").getAsString());
    }

    @Test
    void anUnusableStateDirectoryFailsAddJobClearlyAndTheServerKeepsAnswering(@TempDir Path tmp) throws Exception {
        Path state = tmp.resolve("state");
        Files.createDirectories(state);
        Files.writeString(state.resolve("jobs"), "a file where the jobs folder should be");
        try (ServerProcess s = ServerProcess.start("--workers", "1", "--state-dir", state.toString())) {
            ResponseError e = s.callError("addJob", Json.of("scriptText", "python_data = {}"));
            assertEquals(1012, e.getCode());
            assertTrue(e.getMessage().contains("state directory is writable"), e.getMessage());
            assertEquals(0, s.callObject("getStats", new JsonObject()).get("total").getAsInt());
        }
    }

    @Test
    void resultsThatCannotBeWrittenFailTheJobWithTheReasonAndTheWorkerGoesOn() throws Exception {
        // The result file's temporary name points at /dev/full: writing it fails with ENOSPC,
        // exactly as on a full disk.
        JsonObject done = run(Json.of("scriptText", String.join("\n",
                "import os",
                "result_dir = os.path.join(os.path.dirname(os.getcwd()), 'result')",
                "tmp = os.path.join(result_dir, 'python_data.json.tmp')",
                "if os.path.lexists(tmp): os.remove(tmp)  # the server makes it ahead",
                "os.symlink('/dev/full', tmp)",
                "python_data = {'big': 'x' * 100000}")));
        assertEquals("FAILED", done.get("state").getAsString(), done.toString());
        JsonObject error = done.getAsJsonObject("error");
        assertEquals("RESULT_WRITE_FAILED", error.get("kind").getAsString(), error.toString());
        assertTrue(error.get("message").getAsString().contains("No space left on device"), error.toString());
        assertTrue(error.get("message").getAsString().contains("Free disk space"), error.toString());
        assertEquals("COMPLETED", run(Json.of("scriptText", "python_data = {}")).get("state").getAsString());
    }

    @Test
    void aJobRecordThatCannotBeWrittenIsLoggedAndTheServerKeepsServing() throws Exception {
        // The record's temporary name points at /dev/full, as on a full disk: the COMPLETED
        // record cannot be written. The client is still told, the server says why in its log.
        JsonObject done = run(Json.of("script", ServerProcess.fixture("jobs/unsaved_record.py").toString()));
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        String id = done.get("jobId").getAsString();
        assertEquals("{\"still\":\"served\"}", server.call("getPythonData", Json.jobId(id)).toString());
        assertTrue(server.stderr().contains("could not write the record of job " + id), server.stderr());
        assertTrue(server.stderr().contains("No space left on device"), server.stderr());
        // The user is told, before the state that was not saved (LSP window/showMessage, a warning).
        List<ServerProcess.Notification> all = server.allNotifications();
        int warned = indexOf(all, n -> n.method().equals("window/showMessage"));
        int completed = indexOf(all, n -> n.method().equals("job/stateChanged")
                && n.params().get("jobId").getAsString().equals(id) && n.params().get("state").getAsString().equals("COMPLETED"));
        assertTrue(warned >= 0 && warned < completed, all.toString());
        JsonObject warning = all.get(warned).params();
        assertEquals(2, warning.get("type").getAsInt());
        assertEquals("RECORDS_NOT_SAVED", warning.get("kind").getAsString());
        assertTrue(warning.get("message").getAsString().contains("No space left on device")
                && warning.get("message").getAsString().contains(id), warning.toString());
        // The failed write removed its temporary file (the link): the retry writes the record,
        // the user hears that states are saved again, and the record on disk says COMPLETED.
        JsonObject savedAgain = server.awaitNotification(n -> n.method().equals("window/showMessage")
                && n.params().get("kind").getAsString().equals("RECORDS_SAVED_AGAIN"), Duration.ofSeconds(60)).params();
        assertEquals(3, savedAgain.get("type").getAsInt());
        Path record = Path.of(server.callObject("getJob", Json.jobId(id)).get("directory").getAsString(), "job.json");
        assertTrue(Files.readString(record).contains("\"state\":\"COMPLETED\""), Files.readString(record));
        assertEquals("COMPLETED", run(Json.of("scriptText", "python_data = {}")).get("state").getAsString());
    }

    private static int indexOf(List<ServerProcess.Notification> all, java.util.function.Predicate<ServerProcess.Notification> p) {
        for (int i = 0; i < all.size(); i++) if (p.test(all.get(i))) return i;
        return -1;
    }

    @Test
    void aBlenderTooOldIsNamedWithTheVersionNeeded(@TempDir Path tmp) throws Exception {
        Path old = tmp.resolve("blender");
        Files.writeString(old, "#!/bin/sh\necho 'Blender 2.80 (sub 75)'\n");
        old.toFile().setExecutable(true);
        try (ServerProcess s = ServerProcess.start("--blender", old.toString())) {
            String problem = s.initializeResult.getAsJsonObject("blender").get("problem").getAsString();
            assertTrue(problem.contains("is Blender 2.80") && problem.contains("needs Blender 2.93 or newer"), problem);
            ResponseError e = s.callError("addJob", Json.of("scriptText", "python_data = {}"));
            assertEquals(1010, e.getCode());
            assertTrue(e.getMessage().contains("is Blender 2.80"), e.getMessage());
            assertEquals(0, s.callObject("getStats", new JsonObject()).get("total").getAsInt());
        }
    }

    @Test
    void aBlenderThatIsNotExecutableIsNamed(@TempDir Path tmp) throws Exception {
        Path notExecutable = tmp.resolve("blender");
        Files.writeString(notExecutable, "not a program");
        try (ServerProcess s = ServerProcess.start("--blender", notExecutable.toString())) {
            String problem = s.initializeResult.getAsJsonObject("blender").get("problem").getAsString();
            assertTrue(problem.contains(notExecutable + " (from --blender) is not an executable file"), problem);
            assertEquals(1010, s.callError("addJob", Json.of("scriptText", "python_data = {}")).getCode());
        }
    }

    @Test
    void theWrongProgramAsBlenderIsNamedAndExplained() throws Exception {
        try (ServerProcess s = ServerProcess.start("--blender", "/bin/true")) {
            JsonObject blender = s.callObject("initialize", new JsonObject()).getAsJsonObject("blender");
            assertFalse(blender.get("available").getAsBoolean());
            String problem = blender.get("problem").getAsString();
            assertTrue(problem.contains("/bin/true") && problem.contains("does not look like Blender"), problem);
            ResponseError e = s.callError("addJob", Json.of("scriptText", "python_data = {}"));
            assertEquals(1010, e.getCode());
            assertTrue(e.getMessage().contains("does not look like Blender"), e.getMessage());
        }
    }
}
