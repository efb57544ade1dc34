package dev.blenderjobs.wire.messages;

import com.google.gson.JsonObject;
import dev.blenderjobs.model.JobFailure;
import dev.blenderjobs.workers.WorkerPool;

import java.util.List;

/**
 * The value types of the wire, one record per result and notification of protocol.md.
 * Null fields are left out of the JSON.
 */
public final class Messages {
    private Messages() {
    }

    public record ServerInfo(String name, String version) {
    }

    public record BlenderInfo(boolean available, String path, String version, String problem) {
    }

    public record Capabilities(List<String> requests, List<String> notifications, List<String> jobStates,
                               List<String> failureKinds, long maxMessageBytes) {
    }

    /**
     * @param stateDirTemporary whether the state directory is deleted at exit (no workspace, or
     *                          the workspace's directory is held by another server)
     * @param stateDirNote      why the state directory is not the one the client would expect
     * @param recoveredJobs     what an earlier server left in the state directory
     */
    public record InitializeResult(ServerInfo serverInfo, BlenderInfo blender, int workers, int maxJobsPerWorker,
                                   String stateDir, boolean stateDirTemporary, String stateDirNote,
                                   RecoveredJobs recoveredJobs, Capabilities capabilities) {
    }

    /**
     * Jobs found in the state directory at initialize: listed, of them interrupted, resumed at
     * once, pruned; and records that could not be read (not listed, left in place).
     */
    public record RecoveredJobs(int jobs, int interrupted, int resumed, int pruned, int unreadable) {
    }

    public record AddJobResult(String jobId, String name, String state, int attempt) {
    }

    public record ProgressResult(String jobId, String name, String state, double progress, String message,
                                 int attempt, int maxAttempts, long createdAt, Long startedAt, Long finishedAt,
                                 long elapsedMs) {
    }

    public record DataBlocksResult(String jobId, String library, JsonObject blocks, int count) {
    }

    /** jobs: one summary per job (see JobViews.summary). */
    public record ListJobsResult(List<JsonObject> jobs, int count) {
    }

    public record CancelJobResult(String jobId, String state, String previousState, boolean canceled) {
    }

    public record CancelAllResult(int canceled) {
    }

    /**
     * removed: the job is gone and a restarted server will not list it. leftBehind: files of it
     * that could not be deleted ("path: reason; ..."), omitted when nothing is left.
     */
    public record RemoveJobResult(String jobId, boolean removed, String leftBehind) {
    }

    public record ResumeJobResult(String jobId, String state, String previousState) {
    }

    public record ResumeAllResult(int resumed, List<String> jobIds) {
    }

    /** executor: where workers run ("local"); null when no Blender is available. */
    public record StatsResult(int queued, int active, int completed, int failed, int canceled, int interrupted,
                              int total, String executor, int workers, int freeWorkers, int busyWorkers,
                              List<WorkerPool.SlotView> workerDetails) {
    }

    /** Notification job/progress. reportedAt: epoch ms at which the script reported it. */
    public record JobProgressParams(String jobId, double progress, String message, long reportedAt) {
    }

    /**
     * LSP window/showMessage: type 1 error, 2 warning, 3 info, 4 log. {@code kind} is this
     * server's addition, a stable name for programs (an LSP client ignores it).
     */
    public record ShowMessageParams(int type, String message, String kind) {
        public static final int ERROR = 1;
        public static final int WARNING = 2;
        public static final int INFO = 3;
    }

    /** Notification job/removed: reason is REMOVED, REPLACED or RETENTION. */
    public record JobRemovedParams(String jobId, String reason) {
    }

    /** LSP $/progress: a token and a WorkDoneProgressBegin/Report/End value. */
    public record WorkDoneProgressParams(com.google.gson.JsonElement token, WorkDoneProgressValue value) {
    }

    /** kind is "begin", "report" or "end"; title and cancellable only in begin, message optional. */
    public record WorkDoneProgressValue(String kind, String title, Boolean cancellable, String message,
                                        Integer percentage) {
    }

    /**
     * Notification job/stateChanged; error is present when state is FAILED or INTERRUPTED, or
     * QUEUED for a retry.
     */
    public record JobStateChangedParams(String jobId, String name, String state, String previousState, int attempt,
                                        JobFailure error) {
    }

    /** LSP window/workDoneProgress/create (server → client request): the token the server will report on. */
    public record WorkDoneProgressCreateParams(com.google.gson.JsonElement token) {
    }

    /**
     * followLog result: the job's console so far (a bounded tail, invalid UTF-8 replaced);
     * {@code following} is false when the job already rests (nothing more will come).
     */
    public record FollowLogResult(String jobId, String text, boolean following) {
    }

    /** unfollowLog result: following is always false. */
    public record UnfollowLogResult(String jobId, boolean following) {
    }

    /** Notification job/log: text a followed job printed, exactly as printed (invalid UTF-8 replaced). */
    public record JobLogParams(String jobId, String text) {
    }

    /** LSP Position: 0-based line and UTF-16 character offset. */
    public record Position(int line, int character) {
    }

    public record Range(Position start, Position end) {
    }

    public record Location(String uri, Range range) {
    }

    public record DiagnosticRelatedInformation(Location location, String message) {
    }

    /** LSP Diagnostic; severity 1 = Error. relatedInformation is left out when empty. */
    public record Diagnostic(Range range, int severity, String source, String message,
                             List<DiagnosticRelatedInformation> relatedInformation) {
        public static final int ERROR = 1;
    }

    /** LSP textDocument/publishDiagnostics: the file's diagnostics, replacing earlier ones (empty clears). */
    public record PublishDiagnosticsParams(String uri, List<Diagnostic> diagnostics) {
    }
}
