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
