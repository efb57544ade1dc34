package dev.blenderjobs.it;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The --state-dir at start-up: one server per directory whatever happens to server.lock, and clear refusals. */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class StateDirectoryIT {

    @Test
    void deletingServerLockDoesNotLetASecondServerIn(@TempDir Path tmp) throws Exception {
        Path state = tmp.resolve("state");
        try (ServerProcess first = ServerProcess.start("--workers", "1", "--state-dir", state.toString())) {
            assertEquals("COMPLETED", first.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(60))
                    .get("state").getAsString());
            Path lock = state.resolve("server.lock");
            Files.delete(lock);
            try (ServerProcess second = ServerProcess.startRaw("--workers", "1", "--state-dir", state.toString())) {
                assertTrue(second.process.waitFor(30, TimeUnit.SECONDS),
                        "the second server must refuse the directory, not share it; its stderr:\n" + second.stderr());
                assertEquals(2, second.process.exitValue(), second.stderr());
                assertTrue(second.stderr().contains("is in use by another blender-jobs server (pid "
                        + first.process.pid() + ")"), second.stderr());
            }
            assertTrue(Files.readString(lock).startsWith("pid " + first.process.pid() + "\n"),
                    "the first server took its lock back: " + Files.readString(lock));
            assertTrue(first.stderr().contains("was deleted or replaced"), first.stderr());
            assertEquals("COMPLETED", first.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(60))
                    .get("state").getAsString(), "the first server goes on");
        }
    }

    /** Not a directory, and a place no one can create one (sysfs refuses mkdir even to root). */
    @Test
    void anUnusableStateDirectoryIsOneParagraphForPeopleAndExitCodeThree(@TempDir Path tmp) throws Exception {
        Path file = Files.writeString(tmp.resolve("a-file"), "not a directory");
        for (Path dir : List.of(file, Path.of("/sys/blender-jobs-test-state"))) {
            Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-jar",
                    ServerProcess.jar().toString(), "--state-dir", dir.toString()).start();
            String stdout = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            String stderr = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            assertEquals(3, p.exitValue(), dir + ": " + stderr);
            assertEquals("", stdout, "stdout is the protocol");
            assertTrue(stderr.contains("The state directory " + dir + " cannot be used: "), stderr);
            assertTrue(stderr.contains("another --state-dir"), stderr);
            assertFalse(stderr.contains("\tat ") || stderr.contains("Exception in thread"), "no stack trace: " + stderr);
        }
        assertFalse(Files.exists(Path.of("/sys/blender-jobs-test-state")));
    }
}
