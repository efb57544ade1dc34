package dev.blenderjobs.wire;

import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.wire.messages.Messages.Diagnostic;
import dev.blenderjobs.wire.messages.Messages.DiagnosticRelatedInformation;
import dev.blenderjobs.wire.messages.Messages.Location;
import dev.blenderjobs.wire.messages.Messages.Position;
import dev.blenderjobs.wire.messages.Messages.PublishDiagnosticsParams;
import dev.blenderjobs.wire.messages.Messages.Range;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * LSP diagnostics of job scripts: a job whose {@code script} is a file and that FAILED with a
 * traceback through that file puts an error on the failing line of the file (the deepest frame
 * in it), with the traceback's other frames in files as related locations; the next COMPLETED
 * job of the same script clears them. Touched only on the notifier's thread.
 */
final class ScriptDiagnostics {
    static final String SOURCE = "blender-jobs";
    /**
     * The end of a line: LSP says a character past a line's end means the line's end, and the
     * server does not read the script again to measure the line.
     */
    static final int LINE_END = Integer.MAX_VALUE;
    /** Related locations kept at most (a deep recursion has thousands of frames). */
    static final int MAX_RELATED = 50;

    /** Scripts (file URIs) whose diagnostics the client is showing. */
    private final Set<String> published = new HashSet<>();

    /** The diagnostics to publish after this state change, if any. */
    Optional<PublishDiagnosticsParams> stateChanged(Job job) {
        String script = job.spec().script();
        if (script == null) return Optional.empty();
        String uri = fileUri(script);
        if (uri == null) return Optional.empty();
        if (job.state() == JobState.COMPLETED) {
            if (!published.remove(uri)) return Optional.empty();
            return Optional.of(new PublishDiagnosticsParams(uri, List.of()));
        }
        if (job.state() != JobState.FAILED || job.error() == null || job.error().traceback() == null) {
            return Optional.empty();
        }
        Optional<Diagnostic> diagnostic = diagnostic(script, Traceback.parse(job.error().traceback()),
                job.error().message());
        if (diagnostic.isEmpty()) return Optional.empty();
        published.add(uri);
        return Optional.of(new PublishDiagnosticsParams(uri, List.of(diagnostic.get())));
    }

    /** The error on the deepest frame of the traceback in {@code script}; empty when none is in it. */
    static Optional<Diagnostic> diagnostic(String script, Traceback traceback, String fallbackMessage) {
        List<Traceback.Frame> frames = traceback.frames();
        int failing = -1;
        for (int i = 0; i < frames.size(); i++) {
            if (frames.get(i).file().equals(script)) failing = i;
        }
        if (failing < 0) return Optional.empty();
        List<DiagnosticRelatedInformation> related = new ArrayList<>();
        for (int i = 0; i < frames.size() && related.size() < MAX_RELATED; i++) {
            Traceback.Frame f = frames.get(i);
            if (i == failing || !f.inFile()) continue;
            String uri = fileUri(f.file());
            if (uri == null) continue;
            related.add(new DiagnosticRelatedInformation(new Location(uri, wholeLine(f.line())), describe(f)));
        }
        String message = traceback.exception().isBlank() ? fallbackMessage : traceback.exception();
        return Optional.of(new Diagnostic(wholeLine(frames.get(failing).line()), Diagnostic.ERROR, SOURCE,
                message == null || message.isBlank() ? "the script failed here" : message,
                related.isEmpty() ? null : List.copyOf(related)));
    }

    /** Line {@code line} (1-based, as Python prints it) from its start to its end. */
    static Range wholeLine(int line) {
        return new Range(new Position(line - 1, 0), new Position(line - 1, LINE_END));
    }

    private static String describe(Traceback.Frame f) {
        String where = f.function() != null ? "in " + f.function() : "here";
        return f.source() != null ? where + ": " + f.source() : where;
    }

    /**
     * {@code file:///abs/path}, percent-encoded as VS Code writes it; null for a path that is not
     * absolute. Built from the string: {@code Path.toUri()} would ask the disk whether it is a
     * directory, and this runs on the notifier's thread.
     */
    static String fileUri(String path) {
        if (path.isEmpty() || path.indexOf('\0') >= 0) return null;
        String p = path;
        if (p.matches("[A-Za-z]:[\\\\/].*")) p = "/" + p.replace('\\', '/');
        if (!p.startsWith("/")) return null;
        try {
            return new URI("file", "", p, null).toASCIIString();
        } catch (URISyntaxException e) {
            return null;
        }
    }
}
