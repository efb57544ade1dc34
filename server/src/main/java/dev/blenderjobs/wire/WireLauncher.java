package dev.blenderjobs.wire;

import dev.blenderjobs.wire.messages.RawJson;
import org.eclipse.lsp4j.jsonrpc.Launcher;
import org.eclipse.lsp4j.jsonrpc.MessageConsumer;
import org.eclipse.lsp4j.jsonrpc.MessageIssueHandler;
import org.eclipse.lsp4j.jsonrpc.MessageProducer;
import org.eclipse.lsp4j.jsonrpc.RemoteEndpoint;
import org.eclipse.lsp4j.jsonrpc.json.ConcurrentMessageProcessor;
import org.eclipse.lsp4j.jsonrpc.json.MessageJsonHandler;
import org.eclipse.lsp4j.jsonrpc.services.ServiceEndpoints;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import org.eclipse.lsp4j.jsonrpc.MessageIssueException;
import org.eclipse.lsp4j.jsonrpc.messages.Either;
import org.eclipse.lsp4j.jsonrpc.messages.Message;
import org.eclipse.lsp4j.jsonrpc.messages.MessageIssue;
import org.eclipse.lsp4j.jsonrpc.messages.RequestMessage;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseMessage;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import java.util.logging.Logger;

/**
 * LSP4J's launcher with our two ends of the pipe: a strict reader (a cap on incoming message
 * size, since LSP4J allocates whatever Content-Length says; resynchronization after malformed
 * frames; malformed messages answered) and an outgoing queue with its own writer thread, so that
 * no thread of the server ever blocks on a client that does not read.
 */
public final class WireLauncher {
    private static final Logger LOG = Logger.getLogger(WireLauncher.class.getName());

    private WireLauncher() {
    }

    /** The launcher, and the queue its messages to the client go through (drained at exit). */
    public record Wire(Launcher<JobClient> launcher, OutgoingQueue output) {
    }

    /**
     * @param onAnswered given each result right after its response is written, so that what must
     *                   follow an answer does (LSP: no notification before the initialize answer;
     *                   a work-done token is created after the addJob answer; job/log after the
     *                   followLog answer). Runs on the OutgoingQueue's writer thread, after the
     *                   response has reached stdout: it must only hand work on.
     */
    public static Wire create(Object endpoint, InputStream in, java.io.OutputStream out, long maxMessageBytes,
                              java.util.concurrent.ExecutorService executor,
                              java.util.function.Consumer<Object> onAnswered) {
        CappedBuilder builder = new CappedBuilder(maxMessageBytes, OutgoingQueue.Limits.DEFAULT, message -> {
            if (message instanceof ResponseMessage r && r.getResult() != null) {
                onAnswered.accept(r.getResult());
            }
        });
        builder.setLocalService(endpoint)
                .setRemoteInterface(JobClient.class)
                .setInput(in)
                .setOutput(out)
                .setExecutorService(executor)
                .configureGson(gson -> gson.registerTypeAdapter(RawJson.class, new RawJson.Adapter())
                        .registerTypeAdapterFactory(new NamedEnums()));
        Launcher<JobClient> launcher = builder.create();
        return new Wire(launcher, builder.outgoing);
    }

    /**
     * The server's own enums (states, failure kinds, slot states) go on the wire by name, as
     * protocol.md lists them. LSP4J's Gson writes enums as numbers (LSP's enums are numeric), so
     * this factory, registered after LSP4J's, takes them back for our types.
     */
    static final class NamedEnums implements com.google.gson.TypeAdapterFactory {
        private static final com.google.gson.Gson PLAIN = new com.google.gson.Gson();

        @Override
        public <T> com.google.gson.TypeAdapter<T> create(com.google.gson.Gson gson,
                                                         com.google.gson.reflect.TypeToken<T> type) {
            Class<? super T> raw = type.getRawType();
            if (!raw.isEnum() || !raw.getName().startsWith("dev.blenderjobs.")) return null;
            return PLAIN.getAdapter(type);
        }
    }

    private static final class CappedBuilder extends Launcher.Builder<JobClient> {
        private final long maxMessageBytes;
        private final OutgoingQueue.Limits limits;
        private final java.util.function.Consumer<Message> afterWrite;
        private MessageJsonHandler jsonHandler;
        private RemoteEndpoint remoteEndpoint;
        private OutgoingQueue outgoing;

        CappedBuilder(long maxMessageBytes, OutgoingQueue.Limits limits, java.util.function.Consumer<Message> afterWrite) {
            this.maxMessageBytes = maxMessageBytes;
            this.limits = limits;
            this.afterWrite = afterWrite;
        }

        @Override
        protected MessageJsonHandler createJsonHandler() {
            jsonHandler = super.createJsonHandler();
            return jsonHandler;
        }

        /**
         * LSP4J's endpoint, writing through the outgoing queue instead of straight to the
         * stream: LSP4J's StreamMessageConsumer writes on the caller's thread and would block it
         * (the job event loop, for one) whenever the client stops reading.
         */
        @Override
        protected RemoteEndpoint createRemoteEndpoint(MessageJsonHandler handler) {
            outgoing = new OutgoingQueue(output, handler, afterWrite, limits);
            remoteEndpoint = new RemoteEndpoint(outgoing, ServiceEndpoints.toEndpoint(localServices));
            handler.setMethodProvider(remoteEndpoint);
            remoteEndpoint.setJsonHandler(handler);
            return remoteEndpoint;
        }

        @Override
        protected ConcurrentMessageProcessor createMessageProcessor(MessageProducer reader, MessageConsumer consumer,
                                                                    JobClient proxy) {
            MessageProducer strict = new StrictMessageProducer(input, jsonHandler, remoteEndpoint, maxMessageBytes);
            return super.createMessageProcessor(strict, consumer, proxy);
        }
    }

    /**
     * LSP4J's reader, made strict about what it accepts and never silent about what it
     * refuses. Frames come from {@link FrameReader}, which finds the next message after any
     * malformed one; a message over the size cap is skipped unread, and a body that is not JSON,
     * not a JSON-RPC object, or has an id LSP4J cannot represent gets a JSON-RPC error response
     * (id null when the id cannot be read) instead of only a log line. The server then goes on
     * with the next message. (It replaces LSP4J's StreamMessageProducer rather than extending
     * it: that class's read loop is the part that cannot resynchronize.)
     */
    static final class StrictMessageProducer implements MessageProducer, java.io.Closeable {
        /**
         * Methods that take no parameters. LSP allows params to be left out, and stock clients
         * send what their language has for "nothing": vscode-jsonrpc's sendRequest('shutdown',
         * undefined) sends [null]. So null, [] and [null] mean "no params" for these.
         */
        static final java.util.Set<String> NO_PARAMS = java.util.Set.of("shutdown", "exit", "initialized",
                "cancelAll", "resumeAll", "getStats");
        private final FrameReader frames;
        private final MessageJsonHandler handler;
        private final MessageIssueHandler issues;
        private final long max;
        private volatile boolean running;

        StrictMessageProducer(InputStream input, MessageJsonHandler handler, MessageIssueHandler issues, long max) {
            this.frames = new FrameReader(input, max);
            this.handler = handler;
            this.issues = issues;
            this.max = max;
        }

        @Override
        public void listen(MessageConsumer callback) {
            running = true;
            try {
                while (running) {
                    FrameReader.Frame frame = frames.next();
                    if (frame == null) return; // end of input
                    if (frame instanceof FrameReader.Oversized o) {
                        reject(null, ErrorCodes.INVALID_REQUEST, "Message of " + o.length() + " bytes exceeds the "
                                + "server's limit of " + max + " bytes (--max-message-size); it was skipped unread. "
                                + "Send large data as files.");
                    } else if (frame instanceof FrameReader.Body b) {
                        handle(b, callback);
                    }
                }
            } catch (IOException e) {
                LOG.log(java.util.logging.Level.FINE, "the protocol input could not be read", e);
            } finally {
                running = false;
            }
        }

        @Override
        public void close() {
            running = false;
        }

        private void handle(FrameReader.Body body, MessageConsumer callback) {
            String json = new String(body.bytes(), body.charset());
            JsonElement tree = null;
            try {
                tree = JsonParser.parseString(json);
            } catch (JsonParseException e) {
                // Its length may have been too large, taking in the start of the next message:
                // that part goes back to the reader, and what came before it may still be a message.
                byte[] before = frames.salvage(body.bytes());
                if (before != null) {
                    json = new String(before, body.charset());
                    tree = parseOrNull(json);
                }
                if (tree == null) {
                    reject(null, ErrorCodes.PARSE_ERROR, "Parse error: the message body is not valid JSON ("
                            + e.getMessage() + ").");
                    return;
                }
            }
            if (!tree.isJsonObject()) {
                reject(null, ErrorCodes.INVALID_REQUEST, "Invalid request: a message must be a JSON-RPC 2.0 object"
                        + (tree.isJsonArray() ? " (batches are not supported)." : "."));
                return;
            }
            JsonObject message = tree.getAsJsonObject();
            JsonElement id = message.get("id");
            if (!message.has("method") && !message.has("result") && !message.has("error")) {
                reject(readableId(id), ErrorCodes.INVALID_REQUEST,
                        "Invalid request: the message has no \"method\" (nor \"result\"/\"error\").");
                return;
            }
            if (id != null && id.isJsonNull() && message.has("method")) {
                reject(null, ErrorCodes.INVALID_REQUEST, "Invalid request: \"id\" is null; give a request a "
                        + "string or integer id, or leave \"id\" out to send a notification.");
                return;
            }
            if (id != null && !id.isJsonNull() && readableId(id) == null) {
                reject(null, ErrorCodes.INVALID_REQUEST, "Invalid request: \"id\" must be a string or an integer "
                        + "between -2147483648 and 2147483647, got " + abbreviate(id.toString()) + ".");
                return;
            }
            boolean request = id != null && !id.isJsonNull() && message.has("method");
            String method = methodOf(message);
            if (request && method != null && method.startsWith("$/")) {
                // LSP: "$/" requests the server does not implement are MethodNotFound (LSP4J
                // would answer null); "$/" notifications it does not know are ignored.
                reject(readableId(id), ErrorCodes.METHOD_NOT_FOUND, "Unsupported request method: " + method);
                return;
            }
            JsonElement params = message.get("params");
            if (method != null && NO_PARAMS.contains(method) && meansNoParams(params)) {
                message.remove("params");
                json = message.toString();
                params = null;
            }
            if (request && params != null && !params.isJsonNull() && !params.isJsonObject()) {
                reject(readableId(id), ErrorCodes.INVALID_PARAMS, "Invalid params: \"params\" must be a JSON "
                        + "object (named parameters), got " + dev.blenderjobs.model.Fields.describe(params) + ".");
                return;
            }
            Message parsed;
            try {
                parsed = handler.parseMessage(json);
            } catch (MessageIssueException e) {
                issues.handle(e.getRpcMessage(), e.getIssues());
                return;
            } catch (RuntimeException e) {
                reject(readableId(id), ErrorCodes.INVALID_REQUEST, "Invalid request: " + e.getMessage());
                return;
            }
            try {
                callback.consume(parsed);
            } catch (MessageIssueException e) {
                issues.handle(e.getRpcMessage(), e.getIssues());
            }
        }

        private static JsonElement parseOrNull(String json) {
            try {
                return JsonParser.parseString(json);
            } catch (JsonParseException e) {
                return null;
            }
        }

        private static String methodOf(JsonObject message) {
            JsonElement m = message.get("method");
            return m != null && m.isJsonPrimitive() && m.getAsJsonPrimitive().isString() ? m.getAsString() : null;
        }

        /** [] and [null]: what clients send for "no arguments" (null and absent need no change). */
        private static boolean meansNoParams(JsonElement params) {
            if (params == null || !params.isJsonArray()) return false;
            com.google.gson.JsonArray a = params.getAsJsonArray();
            return a.isEmpty() || (a.size() == 1 && a.get(0).isJsonNull());
        }

        /** Answers with an error; id null when the request's id is unknown or unusable. */
        private void reject(Either<String, Number> id, int code, String text) {
            LOG.warning(text);
            RequestMessage unknown = new RequestMessage();
            unknown.setJsonrpc("2.0");
            unknown.setRawId(id);
            unknown.setMethod("");
            issues.handle(unknown, List.of(new MessageIssue(text, code)));
        }

        private static Either<String, Number> readableId(JsonElement id) {
            if (id == null || !id.isJsonPrimitive()) return null;
            if (id.getAsJsonPrimitive().isString()) return Either.forLeft(id.getAsString());
            if (id.getAsJsonPrimitive().isNumber()) {
                try {
                    return Either.forRight(Integer.parseInt(id.getAsString()));
                } catch (NumberFormatException e) {
                    return null;
                }
            }
            return null;
        }

        private static String abbreviate(String s) {
            return s.length() > 60 ? s.substring(0, 60) + "..." : s;
        }
    }
}
