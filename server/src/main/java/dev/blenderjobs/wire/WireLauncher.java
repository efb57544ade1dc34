package dev.blenderjobs.wire;

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
                .configureGson(gson -> gson.registerTypeAdapter(dev.blenderjobs.wire.messages.JsonFile.class, new dev.blenderjobs.wire.messages.JsonFile.Adapter())
                        .registerTypeAdapterFactory(new NamedEnums()))
                // A request handler's OutOfMemoryError ends the server instead of becoming -32603.
                .setExceptionHandler(t -> {
                    dev.blenderjobs.concurrent.Fatal.check(t);
                    return RemoteEndpoint.DEFAULT_EXCEPTION_HANDLER.apply(t);
                });
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
        /** Largest message other than addJob that is parsed (initialize's capabilities are tens of KB). */
        static final int SMALL_MESSAGE_CHARS = 1024 * 1024;
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
            JsonObject message = null;
            try {
                // The message's envelope only (its params are described, not built into a tree:
                // a tree of 38 MB of numbers needs about ten times that on the heap).
                message = Envelope.read(json, json.length() <= SMALL_MESSAGE_CHARS);
            } catch (JsonParseException | IOException | IllegalStateException e) {
                dev.blenderjobs.concurrent.Fatal.check(e);
                // Its length may have been too large, taking in the start of the next message:
                // that part goes back to the reader, and what came before it may still be a message.
                byte[] before = frames.salvage(body.bytes());
                if (before != null) {
                    json = new String(before, body.charset());
                    message = envelopeOrNull(json);
                }
                if (message == null) {
                    reject(null, ErrorCodes.PARSE_ERROR, "Parse error: the message body is not valid JSON ("
                            + e.getMessage() + ").");
                    return;
                }
            }
            if (message.has(Envelope.NOT_AN_OBJECT)) {
                reject(null, ErrorCodes.INVALID_REQUEST, "Invalid request: a message must be a JSON-RPC 2.0 object"
                        + (message.get(Envelope.NOT_AN_OBJECT).getAsString().equals("an array")
                        ? " (batches are not supported)." : "."));
                return;
            }
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
                        + "between -2147483648 and 2147483647, got " + abbreviate(id.isJsonObject()
                        ? Envelope.describe(id) : id.toString()) + ".");
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
            if (method != null && !"addJob".equals(method) && json.length() > SMALL_MESSAGE_CHARS) {
                // Only addJob's params are read without a tree (its passedData streams into text);
                // a tree of any other request this large could take the whole heap.
                reject(readableId(id), ErrorCodes.INVALID_REQUEST, "Invalid request: a " + abbreviate(method)
                        + " message of " + json.length() + " characters; only addJob's may be larger than "
                        + SMALL_MESSAGE_CHARS + " (its passedData), so it was not read further.");
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
                        + "object (named parameters), got " + Envelope.describe(params) + ".");
                return;
            }
            Message parsed;
            try {
                parsed = handler.parseMessage(json);
            } catch (MessageIssueException e) {
                issues.handle(e.getRpcMessage(), e.getIssues());
                return;
            } catch (RuntimeException e) {
                dev.blenderjobs.concurrent.Fatal.check(e); // Gson wraps an OutOfMemoryError in a JsonParseException
                reject(readableId(id), ErrorCodes.INVALID_REQUEST, "Invalid request: " + e.getMessage());
                return;
            }
            try {
                callback.consume(parsed);
            } catch (MessageIssueException e) {
                issues.handle(e.getRpcMessage(), e.getIssues());
            }
        }

        private static JsonObject envelopeOrNull(String json) {
            try {
                return Envelope.read(json, json.length() <= SMALL_MESSAGE_CHARS);
            } catch (JsonParseException | IOException | IllegalStateException e) {
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

        /**
         * Reads a message's envelope with a streaming reader: id, method, whether it has result
         * or error, and what its params are. Containers other than params' top level are
         * skipped, never built: the object returned is small whatever the message's size.
         * Params that are an object come back as an empty object; an array as itself when the
         * message is small (so that [null], meaning "no params", differs from [1]), else as an
         * empty array; other objects as a {@link #STANDS_FOR} marker. A body that is not an object comes back as
         * {@link #NOT_AN_OBJECT}. Lenient, as LSP4J's own reading is; the whole body must be
         * one value.
         */
        static final class Envelope {
            static final String NOT_AN_OBJECT = "\u0000notAnObject";
            static final String STANDS_FOR = "\u0000standsFor";

            static JsonObject read(String json, boolean small) throws IOException {
                com.google.gson.stream.JsonReader in = new com.google.gson.stream.JsonReader(new java.io.StringReader(json));
                in.setStrictness(com.google.gson.Strictness.LENIENT);
                JsonObject envelope = new JsonObject();
                com.google.gson.stream.JsonToken first = in.peek();
                if (first != com.google.gson.stream.JsonToken.BEGIN_OBJECT) {
                    envelope.addProperty(NOT_AN_OBJECT, first == com.google.gson.stream.JsonToken.BEGIN_ARRAY
                            ? "an array" : "a value");
                    in.skipValue();
                } else {
                    in.beginObject();
                    while (in.hasNext()) {
                        String name = in.nextName();
                        envelope.add(name, small(in, name.equals("params"), small));
                    }
                    in.endObject();
                }
                if (in.peek() != com.google.gson.stream.JsonToken.END_DOCUMENT) {
                    throw new JsonParseException("the body holds more than one JSON value");
                }
                return envelope;
            }

            /** A primitive as it is; an object or array as a marker (params' object as {}). */
            private static JsonElement small(com.google.gson.stream.JsonReader in, boolean params, boolean smallMessage)
                    throws IOException {
                switch (in.peek()) {
                    case BEGIN_OBJECT -> {
                        in.skipValue();
                        if (params) return new JsonObject();
                        JsonObject marker = new JsonObject();
                        marker.addProperty(STANDS_FOR, "an object");
                        return marker;
                    }
                    case BEGIN_ARRAY -> {
                        if (params && smallMessage) return JsonParser.parseReader(in);
                        in.skipValue();
                        return new com.google.gson.JsonArray();
                    }
                    default -> {
                        return JsonParser.parseReader(in);
                    }
                }
            }

            /** As {@link dev.blenderjobs.model.Fields#describe}, for envelope values. */
            static String describe(JsonElement e) {
                if (e.isJsonObject() && e.getAsJsonObject().has(STANDS_FOR)) {
                    return e.getAsJsonObject().get(STANDS_FOR).getAsString();
                }
                return dev.blenderjobs.model.Fields.describe(e);
            }
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
