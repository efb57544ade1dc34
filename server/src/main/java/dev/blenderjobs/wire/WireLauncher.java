package dev.blenderjobs.wire;

import dev.blenderjobs.wire.messages.RawJson;
import org.eclipse.lsp4j.jsonrpc.Launcher;
import org.eclipse.lsp4j.jsonrpc.MessageConsumer;
import org.eclipse.lsp4j.jsonrpc.MessageIssueHandler;
import org.eclipse.lsp4j.jsonrpc.MessageProducer;
import org.eclipse.lsp4j.jsonrpc.RemoteEndpoint;
import org.eclipse.lsp4j.jsonrpc.json.ConcurrentMessageProcessor;
import org.eclipse.lsp4j.jsonrpc.json.MessageJsonHandler;
import org.eclipse.lsp4j.jsonrpc.json.StreamMessageProducer;
import org.eclipse.lsp4j.jsonrpc.messages.MessageIssue;
import org.eclipse.lsp4j.jsonrpc.messages.RequestMessage;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import java.util.logging.Logger;

/**
 * LSP4J's launcher with a cap on incoming message size: LSP4J allocates whatever
 * Content-Length says, so a larger message is skipped unread and answered with an error.
 */
public final class WireLauncher {
    private static final Logger LOG = Logger.getLogger(WireLauncher.class.getName());

    private WireLauncher() {
    }

    public static Launcher<JobClient> create(Object endpoint, InputStream in, java.io.OutputStream out,
                                             long maxMessageBytes, java.util.concurrent.ExecutorService executor) {
        return new CappedBuilder(maxMessageBytes)
                .setLocalService(endpoint)
                .setRemoteInterface(JobClient.class)
                .setInput(in)
                .setOutput(out)
                .setExecutorService(executor)
                .configureGson(gson -> gson.registerTypeAdapter(RawJson.class, new RawJson.Adapter()))
                .create();
    }

    private static final class CappedBuilder extends Launcher.Builder<JobClient> {
        private final long maxMessageBytes;
        private MessageJsonHandler jsonHandler;
        private RemoteEndpoint remoteEndpoint;

        CappedBuilder(long maxMessageBytes) {
            this.maxMessageBytes = maxMessageBytes;
        }

        @Override
        protected MessageJsonHandler createJsonHandler() {
            jsonHandler = super.createJsonHandler();
            return jsonHandler;
        }

        @Override
        protected RemoteEndpoint createRemoteEndpoint(MessageJsonHandler handler) {
            remoteEndpoint = super.createRemoteEndpoint(handler);
            return remoteEndpoint;
        }

        @Override
        protected ConcurrentMessageProcessor createMessageProcessor(MessageProducer reader, MessageConsumer consumer,
                                                                    JobClient proxy) {
            MessageProducer capped = new CappedMessageProducer(input, jsonHandler, remoteEndpoint, maxMessageBytes);
            return super.createMessageProcessor(capped, consumer, proxy);
        }
    }

    /** Skips (without buffering) any message whose Content-Length exceeds the cap. */
    static final class CappedMessageProducer extends StreamMessageProducer {
        private final MessageIssueHandler issues;
        private final long max;

        CappedMessageProducer(InputStream input, MessageJsonHandler handler, MessageIssueHandler issues, long max) {
            super(input, handler, issues);
            this.issues = issues;
            this.max = max;
        }

        @Override
        protected boolean handleMessage(InputStream input, Headers headers) throws IOException {
            if (headers.contentLength > max) {
                // Read and drop the body in small chunks (skip() fails on pipes: "Illegal seek").
                long left = headers.contentLength;
                byte[] sink = new byte[64 * 1024];
                while (left > 0) {
                    int n = input.read(sink, 0, (int) Math.min(sink.length, left));
                    if (n < 0) return false;
                    left -= n;
                }
                String text = "Message of " + headers.contentLength + " bytes exceeds the server's limit of " + max
                        + " bytes (--max-message-size); it was skipped unread. Send large data as files.";
                LOG.warning(text);
                RequestMessage unknown = new RequestMessage();
                unknown.setJsonrpc("2.0");
                unknown.setMethod("");
                issues.handle(unknown, List.of(new MessageIssue(text, ErrorCodes.INVALID_REQUEST)));
                return true;
            }
            return super.handleMessage(input, headers);
        }
    }
}
