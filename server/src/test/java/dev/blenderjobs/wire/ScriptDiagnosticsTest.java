package dev.blenderjobs.wire;

import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobFailure;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.wire.messages.Messages.Diagnostic;
import dev.blenderjobs.wire.messages.Messages.DiagnosticRelatedInformation;
import dev.blenderjobs.wire.messages.Messages.Location;
import dev.blenderjobs.wire.messages.Messages.PublishDiagnosticsParams;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Which state changes publish or clear a script's diagnostics, and what they say. */
class ScriptDiagnosticsTest {
    private static final String SCRIPT = "/p/failing_job.py";
    private static final String TRACEBACK = """
            Traceback (most recent call last):
              File "/p/failing_job.py", line 8, in <module>
                helper.check(42)
              File "/p/helper.py", line 2, in check
                inner(v)
              File "/p/failing_job.py", line 5, in inner
                raise ValueError("value %r is not allowed" % value)
              File "<string>", line 1, in <lambda>
            ValueError: value 42 is not allowed
            """;

    private static Job job(String script, JobState state, String traceback) {
        JobSpec spec = JobSpec.defaults(script);
        JobFailure error = state == JobState.FAILED
                ? new JobFailure(FailureKind.SCRIPT_ERROR, "the script raised ValueError", 1, traceback, null, List.of()) : null;
        return new Job("job-1", spec, state, 0, null, 1, 1, 1, 2, error, List.of(), -1, null);
    }

    @Test
    void aFailureThroughTheScriptMarksItsDeepestFrameInTheScriptWithTheOtherFramesRelated() {
        ScriptDiagnostics d = new ScriptDiagnostics();
        PublishDiagnosticsParams p = d.stateChanged(job(SCRIPT, JobState.FAILED, TRACEBACK)).orElseThrow();
        assertEquals("file:///p/failing_job.py", p.uri());
        assertEquals(1, p.diagnostics().size());
        Diagnostic diagnostic = p.diagnostics().get(0);
        assertEquals(ScriptDiagnostics.wholeLine(5), diagnostic.range());
        assertEquals(4, diagnostic.range().start().line(), "0-based");
        assertEquals(0, diagnostic.range().start().character());
        assertEquals(4, diagnostic.range().end().line());
        assertEquals(1, diagnostic.severity());
        assertEquals("blender-jobs", diagnostic.source());
        assertEquals("ValueError: value 42 is not allowed", diagnostic.message());
        assertEquals(List.of(
                new DiagnosticRelatedInformation(new Location("file:///p/failing_job.py", ScriptDiagnostics.wholeLine(8)),
                        "in <module>: helper.check(42)"),
                new DiagnosticRelatedInformation(new Location("file:///p/helper.py", ScriptDiagnostics.wholeLine(2)),
                        "in check: inner(v)")), diagnostic.relatedInformation(), "<string> is not a file");
    }

    @Test
    void theNextCompletedJobOfTheScriptClearsThemOnce() {
        ScriptDiagnostics d = new ScriptDiagnostics();
        d.stateChanged(job(SCRIPT, JobState.FAILED, TRACEBACK)).orElseThrow();
        assertEquals(Optional.empty(), d.stateChanged(job(SCRIPT, JobState.ACTIVE, null)));
        assertEquals(Optional.empty(), d.stateChanged(job("/p/other.py", JobState.COMPLETED, null)),
                "another script's success clears nothing");
        assertEquals(Optional.of(new PublishDiagnosticsParams("file:///p/failing_job.py", List.of())),
                d.stateChanged(job(SCRIPT, JobState.COMPLETED, null)));
        assertEquals(Optional.empty(), d.stateChanged(job(SCRIPT, JobState.COMPLETED, null)), "nothing left to clear");
    }

    @Test
    void noDiagnosticsWithoutAFrameInTheScriptOrWithoutAScriptFile() {
        ScriptDiagnostics d = new ScriptDiagnostics();
        assertEquals(Optional.empty(), d.stateChanged(job("/p/elsewhere.py", JobState.FAILED, TRACEBACK)));
        assertEquals(Optional.empty(), d.stateChanged(job(null, JobState.FAILED, TRACEBACK)), "scriptText");
        assertEquals(Optional.empty(), d.stateChanged(job(SCRIPT, JobState.FAILED, null)), "a timeout has no traceback");
        assertEquals(Optional.empty(), d.stateChanged(job(SCRIPT, JobState.CANCELED, null)));
        assertEquals(Optional.empty(), d.stateChanged(job(SCRIPT, JobState.COMPLETED, null)), "nothing published yet");
    }

    @Test
    void aSyntaxErrorMarksItsLine() {
        Diagnostic diagnostic = ScriptDiagnostics.diagnostic("/p/b.py",
                Traceback.parse("  File \"/p/b.py\", line 3\n    x = (\n        ^\nSyntaxError: '(' was never closed\n"),
                "the script has a syntax error").orElseThrow();
        assertEquals(2, diagnostic.range().start().line());
        assertEquals("SyntaxError: '(' was never closed", diagnostic.message());
        assertNull(diagnostic.relatedInformation(), "left out when empty");
    }

    @Test
    void withoutAnExceptionLineTheFailureMessageIsUsed() {
        Diagnostic diagnostic = ScriptDiagnostics.diagnostic("/p/b.py",
                Traceback.parse("Traceback (most recent call last):\n  File \"/p/b.py\", line 1, in <module>\n"),
                "the script raised KeyboardInterrupt").orElseThrow();
        assertEquals("the script raised KeyboardInterrupt", diagnostic.message());
    }

    @Test
    void fileUrisArePercentEncodedAsVsCodeWritesThem() {
        assertEquals("file:///tmp/a%20b/%C3%A9t%C3%A9.py", ScriptDiagnostics.fileUri("/tmp/a b/été.py"));
        assertEquals(Path.of("/tmp/a b/x#1.py").toUri().toString(), ScriptDiagnostics.fileUri("/tmp/a b/x#1.py"));
        assertEquals("file:///C:/p/x.py", ScriptDiagnostics.fileUri("C:\\p\\x.py"));
        assertNull(ScriptDiagnostics.fileUri("relative.py"));
        assertNull(ScriptDiagnostics.fileUri("<string>"));
        assertTrue(ScriptDiagnostics.LINE_END > 100_000);
    }
}
