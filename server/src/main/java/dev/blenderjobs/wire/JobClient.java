package dev.blenderjobs.wire;

import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.JobRemovedParams;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;
import dev.blenderjobs.wire.messages.Messages.ShowMessageParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressParams;
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification;

/** What the server sends to its client without being asked. */
public interface JobClient {
    @JsonNotification("job/progress")
    void progress(JobProgressParams params);

    @JsonNotification("job/stateChanged")
    void stateChanged(JobStateChangedParams params);

    /** The job left the server (removeJob, replaceExisting, retention): its id is no longer known. */
    @JsonNotification("job/removed")
    void jobRemoved(JobRemovedParams params);

    /** LSP's message to the user: here, job states that could not be saved to disk, and their recovery. */
    @JsonNotification("window/showMessage")
    void showMessage(ShowMessageParams params);

    /** LSP work-done progress, for jobs added with a workDoneToken. */
    @JsonNotification("$/progress")
    void workDoneProgress(WorkDoneProgressParams params);
}
