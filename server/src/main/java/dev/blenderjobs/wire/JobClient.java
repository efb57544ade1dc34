package dev.blenderjobs.wire;

import dev.blenderjobs.wire.messages.Messages.JobLogParams;
import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.JobRemovedParams;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;
import dev.blenderjobs.wire.messages.Messages.PublishDiagnosticsParams;
import dev.blenderjobs.wire.messages.Messages.ShowMessageParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressCreateParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressParams;
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification;
import org.eclipse.lsp4j.jsonrpc.services.JsonRequest;

import java.util.concurrent.CompletableFuture;

/** What the server sends to its client without being asked. */
public interface JobClient {
    @JsonNotification("job/progress")
    void progress(JobProgressParams params);

    @JsonNotification("job/stateChanged")
    void stateChanged(JobStateChangedParams params);

    /** The job left the server (removeJob, replaceExisting, retention): its id is no longer known. */
    @JsonNotification("job/removed")
    void jobRemoved(JobRemovedParams params);

    /** Text a followed job printed (followLog). */
    @JsonNotification("job/log")
    void log(JobLogParams params);

    /** LSP's message to the user: here, job states that could not be saved to disk, and their recovery. */
    @JsonNotification("window/showMessage")
    void showMessage(ShowMessageParams params);

    /** LSP work-done progress: on the client's workDoneToken during addJob, on the server's tokens for jobs. */
    @JsonNotification("$/progress")
    void workDoneProgress(WorkDoneProgressParams params);

    /** LSP diagnostics: the failing line of a job's script, cleared by its next completed job. */
    @JsonNotification("textDocument/publishDiagnostics")
    void publishDiagnostics(PublishDiagnosticsParams params);

    /**
     * LSP's request (server → client) for a work-done token of the server's own. The answer
     * arrives on LSP4J's reader thread: whoever waits on it must hand it on, never block.
     */
    @JsonRequest("window/workDoneProgress/create")
    CompletableFuture<Void> createWorkDoneProgress(WorkDoneProgressCreateParams params);
}
