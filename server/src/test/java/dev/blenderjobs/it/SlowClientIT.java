package dev.blenderjobs.it;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A client that stops reading the server's stdout (a frozen UI thread, a paused debugger) must
 * not stall the server: jobs keep starting and timing out on time, and once the client reads
 * again it gets every answer and a consistent story (issue 10, item 2).
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class SlowClientIT {
    /** Reports progress with a long message as fast as it can, until the stop file appears. */
    static final String FLOOD = """
            import os, time
            started = time.time()
            i = 0
            while not os.path.exists(stop_file) and time.time() - started < 120:
                i += 1
                update_job_progress((i % 1000) / 1000.0, 'x' * 900 + str(i))
            update_job_progress(1.0, 'done')
            python_data = {'reports': i}
            """;

    @Test
    void aClientThatStopsReadingStallsNothingAndGetsEverythingWhenItReadsAgain() throws Exception {
        Path tmp = Files.createTempDirectory("blender-jobs-slow-client");
        Path stop = tmp.resolve("stop-flood");
        try (ServerProcess s = ServerProcess.start("--workers", "2", "--progress-interval", "1")) {
            s.awaitConnectedWorkers(2, Duration.ofSeconds(120));
            Path jobsDir = Path.of(s.initializeResult.get("stateDir").getAsString()).resolve("jobs");

            String flood = s.addJob(Json.of("name", "flood", "scriptText", FLOOD, "passedData",
                    Json.of("stop_file", stop.toString())));
            s.awaitNotification(n -> n.method().equals("job/progress")
                    && n.params().get("jobId").getAsString().equals(flood), Duration.ofSeconds(60));
            String timeout = s.addJob(Json.of("name", "timeout", "scriptText", "import time\ntime.sleep(60)",
                    "timeout", 2));
            List<String> late = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                late.add(s.addJob(Json.of("name", "late-" + i, "scriptText", "python_data = {'i': " + i + "}")));
            }

            // The client stops reading. The flood fills the pipe within milliseconds; the client
            // keeps asking (as a polling UI would), and the answers cannot be written.
            s.pauseReading();
            long pausedAt = System.currentTimeMillis();
            List<CompletableFuture<Object>> asked = new ArrayList<>();
            long resumedAt;
            try {
                Thread.sleep(500);
                // Server-side truth while the client reads nothing: the job records on disk.
                long deadline = System.currentTimeMillis() + 60_000;
                while (true) {
                    asked.add(s.remote.request("getStats", new JsonObject()));
                    Map<String, String> states = new java.util.HashMap<>();
                    for (String id : late) states.put(id, recordedState(jobsDir, id));
                    states.put(timeout, recordedState(jobsDir, timeout));
                    boolean done = "FAILED".equals(states.get(timeout))
                            && late.stream().allMatch(id -> "COMPLETED".equals(states.get(id)));
                    if (done) break;
                    if (System.currentTimeMillis() > deadline) {
                        fail("while the client did not read, the server stalled: after 60 s the job records say "
                                + states + " (the 2 s timeout should have failed the first, and the ten later jobs "
                                + "completed); server stderr:\n" + s.stderr());
                    }
                    Thread.sleep(100);
                }
                Thread.sleep(500); // the flood goes on a little while the client is still not reading
            } finally {
                resumedAt = System.currentTimeMillis();
                s.resumeReading();
            }

            Files.writeString(stop, "stop");
            JsonObject floodEnd = s.awaitFinal(flood, Duration.ofSeconds(60));
            assertEquals("COMPLETED", floodEnd.get("state").getAsString(), floodEnd.toString());
            for (CompletableFuture<Object> f : asked) f.get(60, TimeUnit.SECONDS); // every answer arrives

            JsonObject t = s.callObject("getJob", Json.jobId(timeout));
            assertEquals("FAILED", t.get("state").getAsString(), t.toString());
            assertEquals("TIMED_OUT", t.getAsJsonObject("error").get("kind").getAsString(), t.toString());
            long tStarted = t.get("startedAt").getAsLong();
            long tFinished = t.get("finishedAt").getAsLong();
            assertTrue(tFinished < resumedAt, "the timeout fired while the client was not reading");
            List<Long> lateStarts = new ArrayList<>();
            for (String id : late) {
                JsonObject j = s.callObject("getJob", Json.jobId(id));
                assertEquals("COMPLETED", j.get("state").getAsString(), j.toString());
                long started = j.get("startedAt").getAsLong();
                assertTrue(started < resumedAt, "a later job started while the client was not reading");
                lateStarts.add(started - pausedAt);
            }

            // What the client heard is consistent with that: every job's states in order, the
            // flood's progress only while it was ACTIVE, in order, its last report before COMPLETED.
            for (String id : late) assertEquals(List.of("QUEUED", "ACTIVE", "COMPLETED"), states(s, id), id);
            assertEquals(List.of("QUEUED", "ACTIVE", "FAILED"), states(s, timeout));
            assertEquals(List.of("QUEUED", "ACTIVE", "COMPLETED"), states(s, flood));
            List<ServerProcess.Notification> told = s.notificationsFor(flood);
            int active = indexOfState(told, "ACTIVE");
            int completed = indexOfState(told, "COMPLETED");
            long lastReportedAt = 0;
            int progressCount = 0;
            for (int i = 0; i < told.size(); i++) {
                if (!told.get(i).method().equals("job/progress")) continue;
                progressCount++;
                assertTrue(i > active && i < completed, "flood progress outside ACTIVE: " + i);
                long at = told.get(i).params().get("reportedAt").getAsLong();
                assertTrue(at >= lastReportedAt, "progress out of order at notification " + i);
                lastReportedAt = at;
            }
            JsonObject lastProgress = told.get(completed - 1).params();
            assertEquals("done", lastProgress.get("message").getAsString(), "the last report comes right before COMPLETED");
            assertEquals(1.0, lastProgress.get("progress").getAsDouble());
            assertTrue(s.allNotifications().stream().noneMatch(n -> n.method().equals("window/showMessage")),
                    "nothing had to be dropped: progress was coalesced");
            s.assertProtocolStreamClean();
            int reports = s.call("getPythonData", Json.jobId(flood)).getAsJsonObject().get("reports").getAsInt();
            System.out.printf("SlowClientIT: paused %d ms; timeout job ran %d ms (timeout 2 s) and ended %d ms "
                            + "before reading resumed; later jobs started at +%s ms after the pause; the flood "
                            + "reported %d times and the client got %d job/progress notifications%n",
                    resumedAt - pausedAt, tFinished - tStarted, resumedAt - tFinished, lateStarts, reports,
                    progressCount);
        } finally {
            Files.deleteIfExists(stop);
            Files.deleteIfExists(tmp);
        }
    }

    private static String recordedState(Path jobsDir, String id) {
        try {
            JsonElement record = JsonParser.parseString(Files.readString(jobsDir.resolve(id).resolve("job.json")));
            return record.getAsJsonObject().getAsJsonObject("job").get("state").getAsString();
        } catch (Exception notYet) {
            return null;
        }
    }

    private static List<String> states(ServerProcess s, String id) {
        return s.notificationsFor(id).stream().filter(n -> n.method().equals("job/stateChanged"))
                .map(n -> n.params().get("state").getAsString()).toList();
    }

    private static int indexOfState(List<ServerProcess.Notification> told, String state) {
        for (int i = 0; i < told.size(); i++) {
            if (told.get(i).method().equals("job/stateChanged")
                    && told.get(i).params().get("state").getAsString().equals(state)) return i;
        }
        throw new AssertionError("no " + state + " in " + told);
    }
}
