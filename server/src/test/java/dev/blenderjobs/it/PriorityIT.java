package dev.blenderjobs.it;

import com.google.gson.JsonObject;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * addJob's priority through the real wire on real Blender: waiting jobs start highest priority
 * first and FIFO within one priority; getJob and listJobs show it; it survives a restart.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class PriorityIT {
    static final Duration HANG_GUARD = Duration.ofSeconds(90);

    /** Holds the only worker until the file named by passedData "release" exists. */
    static JsonObject blocker(Path release) {
        return Json.of("name", "blocker", "passedData", Json.of("release", release.toString()), "scriptText",
                String.join("\n", "import os, time",
                        "while not os.path.exists(release):",
                        "    time.sleep(0.02)"));
    }

    static JsonObject quick(String name, int priority) {
        return Json.of("name", name, "priority", priority, "scriptText", "python_data = {'name': '" + name + "'}");
    }

    /** Job names in the order their ACTIVE notification arrived. */
    static List<String> startOrder(ServerProcess s, List<String> ids) {
        List<ServerProcess.Notification> active = new ArrayList<>();
        for (ServerProcess.Notification n : s.allNotifications()) {
            if (n.method().equals("job/stateChanged") && "ACTIVE".equals(n.params().get("state").getAsString())
                    && ids.contains(n.params().get("jobId").getAsString())) {
                active.add(n);
            }
        }
        return active.stream().map(n -> n.params().get("name").getAsString()).toList();
    }

    @Test
    void waitingJobsStartByPriorityThenInTheOrderTheyCame(@TempDir Path tmp) throws Exception {
        Path release = tmp.resolve("release");
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            String block = s.addJob(blocker(release));
            s.awaitState(block, List.of("ACTIVE"), HANG_GUARD);
            List<String> ids = new ArrayList<>();
            for (Object[] job : new Object[][]{{"low-1", 0}, {"high-1", 5}, {"neg", -3}, {"low-2", 0}, {"high-2", 5}}) {
                ids.add(s.addJob(quick((String) job[0], (Integer) job[1])));
            }
            for (String id : ids) {
                assertEquals("QUEUED", s.callObject("getProgress", Json.jobId(id)).get("state").getAsString());
            }
            java.nio.file.Files.createFile(release);
            for (String id : ids) {
                assertEquals("COMPLETED", s.awaitFinal(id, HANG_GUARD).get("state").getAsString());
            }
            assertEquals(List.of("high-1", "high-2", "low-1", "low-2", "neg"), startOrder(s, ids));

            assertEquals(5, s.callObject("getJob", Json.jobId(ids.get(1))).get("priority").getAsInt());
            JsonObject listed = s.callObject("listJobs", Json.of("name", "neg")).getAsJsonArray("jobs").get(0)
                    .getAsJsonObject();
            assertEquals(-3, listed.get("priority").getAsInt());
            assertEquals(0, s.callObject("getJob", Json.jobId(block)).get("priority").getAsInt(), "the default is 0");
        }
    }

    @Test
    void aPriorityOutOfRangeIsRefusedNamingTheField() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            ResponseError error = s.callError("addJob", Json.of("scriptText", "pass", "priority", 5_000_000));
            assertEquals(-32602, error.getCode());
            assertTrue(error.getMessage().contains("\"priority\" must be between -1000000 and 1000000"),
                    error.getMessage());
            ResponseError notWhole = s.callError("addJob", Json.of("scriptText", "pass", "priority", 1.5));
            assertTrue(notWhole.getMessage().contains("\"priority\" must be a whole number"), notWhole.getMessage());
        }
    }

    @Test
    void thePriorityOfAJobIsKeptAcrossARestartAndOrdersTheResume(@TempDir Path tmp) throws Exception {
        String state = tmp.resolve("state").toString();
        Path release = tmp.resolve("release");
        List<String> ids = new ArrayList<>();
        try (ServerProcess a = ServerProcess.start("--workers", "1", "--state-dir", state)) {
            String block = a.addJob(blocker(release));
            a.awaitState(block, List.of("ACTIVE"), HANG_GUARD);
            ids.add(a.addJob(quick("low", 1)));
            ids.add(a.addJob(quick("high", 9)));
            assertEquals(0, a.shutdownAndExit());
        }
        java.nio.file.Files.createFile(release);
        try (ServerProcess b = ServerProcess.start("--workers", "1", "--state-dir", state, "--resume")) {
            for (String id : ids) {
                JsonObject done = b.awaitFinal(id, HANG_GUARD);
                assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
            }
            assertEquals(9, b.callObject("getJob", Json.jobId(ids.get(1))).get("priority").getAsInt());
            List<String> order = startOrder(b, ids);
            assertEquals(List.of("high", "low"), order, "resumed jobs start by priority too");
        }
    }
}
