package dev.blenderjobs.workers;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WorkerPoolTest {

    private static WorkerProcess.Exit exit(int code, String crashReport) {
        return new WorkerProcess.Exit(true, code, null, List.of(), crashReport);
    }

    @Test
    void segfaultIsACrashNamingTheSignal() {
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(139, null));
        assertEquals("BLENDER_CRASHED", f.kind());
        assertTrue(f.message().contains("signal 11"), f.message());
        assertFalse(f.message().contains("crash report"), f.message());
        assertNull(f.crashReport());
        assertNull(f.traceback());
    }

    @Test
    void killBySignal9IsACrash() {
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(137, null));
        assertEquals("BLENDER_CRASHED", f.kind());
        assertTrue(f.message().contains("signal 9"), f.message());
    }

    @Test
    void crashReportMakesItACrashAndIsAttached() {
        String report = "# Blender 3.4.1, Commit date: ...\n# backtrace\n./blender(BLI_system_backtrace+0x1d)";
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(1, report));
        assertEquals("BLENDER_CRASHED", f.kind());
        assertEquals(report, f.crashReport());
        assertTrue(f.message().contains("exit code 1"), f.message());
        assertTrue(f.message().contains("crash report is attached"), f.message());
    }

    @Test
    void signalAndCrashReportTogether() {
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(134, "report"));
        assertEquals("BLENDER_CRASHED", f.kind());
        assertTrue(f.message().contains("signal 6"), f.message());
        assertTrue(f.message().contains("crash report is attached"), f.message());
        assertEquals("report", f.crashReport());
    }

    @Test
    void exitZeroWithoutReportIsAnExit() {
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(0, null));
        assertEquals("BLENDER_EXITED", f.kind());
        assertTrue(f.message().contains("code 0"), f.message());
        assertTrue(f.message().contains("os._exit()"), f.message());
        assertNull(f.crashReport());
    }

    @Test
    void exitOneWithoutReportIsAnExit() {
        AttemptOutcome.Failed f = WorkerPool.describeDeath(exit(1, null));
        assertEquals("BLENDER_EXITED", f.kind());
        assertTrue(f.message().contains("code 1"), f.message());
    }

    @Test
    void exitCodesOutsideTheSignalRangeAreExits() {
        assertEquals("BLENDER_EXITED", WorkerPool.describeDeath(exit(128, null)).kind());
        assertEquals("BLENDER_EXITED", WorkerPool.describeDeath(exit(160, null)).kind());
        assertEquals("BLENDER_EXITED", WorkerPool.describeDeath(exit(255, null)).kind());
    }

    @Test
    void startFailureIncludesProblemExitCodeAndLastLines() {
        List<String> console = new ArrayList<>();
        for (int i = 1; i <= 20; i++) console.add("console line " + i);
        String s = WorkerPool.startFailure(new WorkerProcess.Exit(false, 1,
                "the runtime did not connect within 60 s", console, null));
        assertTrue(s.startsWith("the runtime did not connect within 60 s"), s);
        assertTrue(s.contains("(exit code 1)"), s);
        assertTrue(s.contains("Its last output:"), s);
        assertTrue(s.contains("console line 20"), s);
        assertTrue(s.contains("console line 6\n"), "the last 15 lines: " + s);
        assertFalse(s.contains("console line 5\n"), "only the last 15 lines: " + s);
    }

    @Test
    void startFailureWithoutProblemOrOutput() {
        String s = WorkerPool.startFailure(new WorkerProcess.Exit(false, 127, null, List.of(), null));
        assertEquals("Blender exited before it was ready (exit code 127)", s);
    }
}
