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

/** The example jobs on warm workers, plus what warm reuse must not leak. */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WarmWorkersExamplesIT extends ExampleJobs {
    @Override
    String mode() {
        return "warm";
    }

    @Override
    String[] serverArgs() {
        return new String[]{"--workers", "2"};
    }

    @Test
    void stateLeftByOneJobIsNotSeenByTheNext() throws Exception {
        try (ServerProcess single = ServerProcess.start("--workers", "1")) {
            String left = single.addJob(Json.of("script", ServerProcess.fixture("jobs/leave_state.py").toString()));
            assertEquals("COMPLETED", single.awaitFinal(left, HANG_GUARD).get("state").getAsString());
            String probe = single.addJob(Json.of("script", ServerProcess.fixture("jobs/probe_state.py").toString()));
            assertEquals("COMPLETED", single.awaitFinal(probe, HANG_GUARD).get("state").getAsString());
            long pidLeft = single.callObject("getJob", Json.jobId(left)).get("workerPid").getAsLong();
            long pidProbe = single.callObject("getJob", Json.jobId(probe)).get("workerPid").getAsLong();
            assertEquals(pidLeft, pidProbe, "both jobs must run in the same warm Blender for this test to mean anything");
            JsonObject seen = single.callObject("getPythonData", Json.jobId(probe));
            assertEquals(com.google.gson.JsonParser.parseString("{\"objects\":[],\"texts\":[],\"frame_end\":250,"
                    + "\"has_leftover_global\":false,\"leftover_in_path\":false,\"env\":null}"), seen);
        }
    }

    @Test
    void cwdArgvPathAndModulesAreRestoredBetweenJobs(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Files.writeString(tmp.resolve("helper_mod.py"), "VALUE = 'first'\n");
        Path first = tmp.resolve("first.py");
        Files.writeString(first, String.join("\n",
                "import os, sys, helper_mod",
                "os.chdir('/')",
                "sys.argv.append('--leftover')",
                "python_data = {'cwd': os.getcwd(), 'helper': helper_mod.VALUE}"));
        Path second = tmp.resolve("second.py");
        Files.writeString(second, String.join("\n",
                "import os, sys, helper_mod",
                "python_data = {'cwd': os.getcwd(), 'argv': sys.argv, 'helper': helper_mod.VALUE}"));
        try (ServerProcess single = ServerProcess.start("--workers", "1")) {
            String a = single.addJob(Json.of("script", first.toString()));
            assertEquals("COMPLETED", single.awaitFinal(a, HANG_GUARD).get("state").getAsString());
            Files.writeString(tmp.resolve("helper_mod.py"), "VALUE = 'second'\n");
            String b = single.addJob(Json.of("script", second.toString()));
            assertEquals("COMPLETED", single.awaitFinal(b, HANG_GUARD).get("state").getAsString());
            JsonObject seen = single.callObject("getPythonData", Json.jobId(b));
            assertTrue(seen.get("cwd").getAsString().endsWith("/work"), "cwd is the job's work dir: " + seen);
            assertTrue(seen.get("cwd").getAsString().contains(b), "and it is this job's: " + seen);
            assertEquals("[\"" + second + "\"]", seen.get("argv").toString());
            assertEquals("second", seen.get("helper").getAsString(), "a module next to the script is re-imported");
        }
    }

    @Test
    void isolationProcessGetsAFreshBlender() throws Exception {
        try (ServerProcess single = ServerProcess.start("--workers", "1")) {
            String first = single.addJob(Json.of("scriptText", "python_data = {}"));
            single.awaitFinal(first, HANG_GUARD);
            String fresh = single.addJob(Json.of("scriptText", "python_data = {}", "isolation", "process"));
            assertEquals("COMPLETED", single.awaitFinal(fresh, HANG_GUARD).get("state").getAsString());
            String after = single.addJob(Json.of("scriptText", "python_data = {}"));
            single.awaitFinal(after, HANG_GUARD);
            long a = single.callObject("getJob", Json.jobId(first)).get("workerPid").getAsLong();
            long b = single.callObject("getJob", Json.jobId(fresh)).get("workerPid").getAsLong();
            long c = single.callObject("getJob", Json.jobId(after)).get("workerPid").getAsLong();
            assertTrue(a != b && b != c, "pids " + a + ", " + b + ", " + c);
        }
    }
}
