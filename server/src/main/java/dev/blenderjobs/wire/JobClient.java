package dev.blenderjobs.wire;

import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification;

/** What the server sends to its client without being asked. */
public interface JobClient {
    @JsonNotification("job/progress")
    void progress(JobProgressParams params);

    @JsonNotification("job/stateChanged")
    void stateChanged(JobStateChangedParams params);
}
