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
import dev.blenderjobs.wire.messages.Messages.InitializeResult;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
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

    /**
     * @param onInitializeAnswered run right after the answer to initialize is written, so that
     *                             server notifications never precede it (LSP's rule)
     */
    public static Launcher<JobClient> create(Object endpoint, InputStream in, java.io.OutputStream out,
                                             long maxMessageBytes, java.util.concurrent.ExecutorService executor,
                                             Runnable onInitializeAnswered) {
        return new CappedBuilder(maxMessageBytes)
                .setLocalService(endpoint)
                .setRemoteInterface(JobClient.class)
                .setInput(in)
                .setOutput(out)
                .setExecutorService(executor)
                .configureGson(gson -> gson.registerTypeAdapter(RawJson.class, new RawJson.Adapter())
                        .registerTypeAdapterFactory(new NamedEnums()))
                // A request handler's OutOfMemoryError ends the server instead of becoming -32603.
                .setExceptionHandler(t -> {
                    dev.blenderjobs.concurrent.Fatal.check(t);
                    return org.eclipse.lsp4j.jsonrpc.RemoteEndpoint.DEFAULT_EXCEPTION_HANDLER.apply(t);
                })
                .wrapMessages(consumer -> message -> {
                    consumer.consume(message);
                    if (message instanceof ResponseMessage r && r.getResult() instanceof InitializeResult) {
                        onInitializeAnswered.run();
                    }
                })
                .create();
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
            MessageProducer capped = new CappedMessageProducer(
                    new java.io.PushbackInputStream(input, CappedMessageProducer.CHUNK_BYTES),
                    jsonHandler, remoteEndpoint, maxMessageBytes);
            return super.createMessageProcessor(capped, consumer, proxy);
        }
    }

    /**
     * LSP4J's reader, made strict about what it accepts and never silent about what it
     * refuses: a message over the size cap is skipped unread, and a body that is not JSON, not
     * a JSON-RPC object, or has an id LSP4J cannot represent gets a JSON-RPC error response
     * (id null when the id cannot be read) instead of only a log line. The server then goes on
     * with the next message.
     */
    static final class CappedMessageProducer extends StreamMessageProducer {
        static final int SKIP_CHUNK = 64 * 1024;
        /** Largest message other than addJob that is parsed (initialize's capabilities are tens of KB). */
        static final int SMALL_MESSAGE_CHARS = 1024 * 1024;
        /** Where a header starts. Valid JSON never holds these bytes followed by digits and CR LF. */
        static final byte[] HEADER_MARK = "Content-Length:".getBytes(StandardCharsets.US_ASCII);
        /** The end of the previous chunk kept while skipping: a header cut in two is still seen. */
        static final int CARRY = HEADER_MARK.length + 24;
        static final int CHUNK_BYTES = CARRY + SKIP_CHUNK;
        private final MessageJsonHandler handler;
        private final MessageIssueHandler issues;
        private final long max;
        private MessageConsumer callback;

        CappedMessageProducer(InputStream input, MessageJsonHandler handler, MessageIssueHandler issues, long max) {
            super(input, handler, issues);
            this.handler = handler;
            this.issues = issues;
            this.max = max;
        }

        @Override
        public void listen(MessageConsumer callback) {
            this.callback = callback;
            super.listen(callback);
        }

        @Override
        protected boolean handleMessage(InputStream input, Headers headers) throws IOException {
            if (headers.contentLength > max) {
                reject(null, ErrorCodes.INVALID_REQUEST, "Message of " + headers.contentLength
                        + " bytes exceeds the server's limit of " + max + " bytes (--max-message-size); it was "
                        + "skipped unread. Send large data as files.");
                return skipBody((java.io.PushbackInputStream) input, headers.contentLength);
            }
            // A read loop, not readNBytes: FileInputStream.readNBytes seeks, which fails on pipes.
            byte[] body = new byte[headers.contentLength];
            int filled = 0;
            while (filled < body.length) {
                int n = input.read(body, filled, body.length - filled);
                if (n < 0) return false; // the stream ended mid-message
                filled += n;
            }
            String json = new String(body, charsetOf(headers.charset));
            body = null; // the text is all that is needed now; a large body can be collected
            JsonObject message;
            try {
                // The message's envelope only (its params are described, not built into a tree:
                // a tree of 38 MB of numbers needs about ten times that on the heap).
                message = Envelope.read(json);
            } catch (JsonParseException | IOException | IllegalStateException e) {
                dev.blenderjobs.concurrent.Fatal.check(e);
                reject(null, ErrorCodes.PARSE_ERROR, "Parse error: the message body is not valid JSON ("
                        + e.getMessage() + ").");
                return true;
            }
            if (message.has(Envelope.NOT_AN_OBJECT)) {
                reject(null, ErrorCodes.INVALID_REQUEST, "Invalid request: a message must be a JSON-RPC 2.0 object"
                        + (message.get(Envelope.NOT_AN_OBJECT).getAsString().equals("an array")
                        ? " (batches are not supported)." : "."));
                return true;
            }
            JsonElement id = message.get("id");
            if (!message.has("method") && !message.has("result") && !message.has("error")) {
                reject(readableId(id), ErrorCodes.INVALID_REQUEST,
                        "Invalid request: the message has no \"method\" (nor \"result\"/\"error\").");
                return true;
            }
            if (id != null && id.isJsonNull() && message.has("method")) {
                reject(null, ErrorCodes.INVALID_REQUEST, "Invalid request: \"id\" is null; give a request a "
                        + "string or integer id, or leave \"id\" out to send a notification.");
                return true;
            }
            if (id != null && !id.isJsonNull() && readableId(id) == null) {
                reject(null, ErrorCodes.INVALID_REQUEST, "Invalid request: \"id\" must be a string or an integer "
                        + "between -2147483648 and 2147483647, got " + abbreviate(id.isJsonObject()
                        ? Envelope.describe(id) : id.toString()) + ".");
                return true;
            }
            JsonElement method = message.get("method");
            if (method != null && method.isJsonPrimitive() && !"addJob".equals(method.getAsString())
                    && json.length() > SMALL_MESSAGE_CHARS) {
                // Only addJob's params are read without a tree (its passedData streams into text);
                // a tree of any other request this large could take the whole heap.
                reject(readableId(id), ErrorCodes.INVALID_REQUEST, "Invalid request: a " + abbreviate(method.getAsString())
                        + " message of " + json.length() + " characters; only addJob's may be larger than "
                        + SMALL_MESSAGE_CHARS + " (its passedData), so it was not read further.");
                return true;
            }
            JsonElement params = message.get("params");
            if (message.has("method") && params != null && !params.isJsonNull() && !params.isJsonObject()
                    && id != null && !id.isJsonNull()) {
                reject(readableId(id), ErrorCodes.INVALID_PARAMS, "Invalid params: \"params\" must be a JSON "
                        + "object (named parameters), got " + Envelope.describe(params) + ".");
                return true;
            }
            Message parsed;
            try {
                parsed = handler.parseMessage(json);
            } catch (MessageIssueException e) {
                issues.handle(e.getRpcMessage(), e.getIssues());
                return true;
            } catch (RuntimeException e) {
                dev.blenderjobs.concurrent.Fatal.check(e); // Gson wraps an OutOfMemoryError in a JsonParseException
                reject(readableId(id), ErrorCodes.INVALID_REQUEST, "Invalid request: " + e.getMessage());
                return true;
            }
            try {
                callback.consume(parsed);
            } catch (MessageIssueException e) {
                issues.handle(e.getRpcMessage(), e.getIssues());
            }
            return true;
        }

        /**
         * Reads and drops an oversized body in chunks (skip() fails on pipes: "Illegal seek"),
         * never holding more than one chunk. A Content-Length can lie (2 GB announced, a few
         * bytes sent): rather than swallow every later message while waiting for bytes that
         * never come, the skip stops where the next header starts, which a JSON body cannot
         * contain, and puts those bytes back for the reader.
         *
         * @return false when the stream ended
         */
        static boolean skipBody(java.io.PushbackInputStream input, long length) throws IOException {
            long left = length;
            byte[] chunk = new byte[CHUNK_BYTES];
            int carried = 0; // the end of the previous chunk, where a header may have begun
            while (left > 0) {
                int n = input.read(chunk, carried, (int) Math.min(SKIP_CHUNK, left));
                if (n < 0) return false;
                left -= n;
                int filled = carried + n;
                int header = nextHeader(chunk, filled);
                if (header >= 0) {
                    input.unread(chunk, header, filled - header);
                    LOG.warning("the oversized message's body ended early: a new message starts inside it "
                            + "(its Content-Length was wrong); reading on from there");
                    return true;
                }
                carried = Math.min(CARRY, filled);
                System.arraycopy(chunk, filled - carried, chunk, 0, carried);
            }
            return true;
        }

        /** Index of "Content-Length:" followed by spaces, digits and CR LF, or -1 (also when cut off). */
        private static int nextHeader(byte[] buf, int filled) {
            outer:
            for (int i = 0; i + HEADER_MARK.length <= filled; i++) {
                for (int j = 0; j < HEADER_MARK.length; j++) {
                    if (buf[i + j] != HEADER_MARK[j]) continue outer;
                }
                int k = i + HEADER_MARK.length;
                while (k < filled && buf[k] == ' ') k++;
                int digits = k;
                while (k < filled && buf[k] >= '0' && buf[k] <= '9') k++;
                if (k > digits && k + 1 < filled && buf[k] == '\r' && buf[k + 1] == '\n') return i;
            }
            return -1;
        }

        /**
         * Reads a message's envelope with a streaming reader: id, method, whether it has result
         * or error, and what its params are. Containers other than params' top level are
         * skipped, never built: the object returned is small whatever the message's size.
         * Params that are an object come back as an empty object, any array as an empty array,
         * other objects as a {@link #STANDS_FOR} marker. A body that is not an object comes back as
         * {@link #NOT_AN_OBJECT}. Lenient, as LSP4J's own reading is; the whole body must be
         * one value.
         */
        static final class Envelope {
            static final String NOT_AN_OBJECT = "\u0000notAnObject";
            static final String STANDS_FOR = "\u0000standsFor";

            static JsonObject read(String json) throws IOException {
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
                        envelope.add(name, small(in, name.equals("params")));
                    }
                    in.endObject();
                }
                if (in.peek() != com.google.gson.stream.JsonToken.END_DOCUMENT) {
                    throw new JsonParseException("the body holds more than one JSON value");
                }
                return envelope;
            }

            /** A primitive as it is; an object or array as a marker (params' object as {}). */
            private static JsonElement small(com.google.gson.stream.JsonReader in, boolean params) throws IOException {
                switch (in.peek()) {
                    case BEGIN_OBJECT -> {
                        in.skipValue();
                        if (params) return new JsonObject();
                        JsonObject marker = new JsonObject();
                        marker.addProperty(STANDS_FOR, "an object");
                        return marker;
                    }
                    case BEGIN_ARRAY -> {
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

        private static java.nio.charset.Charset charsetOf(String name) {
            try {
                return name == null ? StandardCharsets.UTF_8 : java.nio.charset.Charset.forName(name);
            } catch (RuntimeException e) {
                return StandardCharsets.UTF_8;
            }
        }

        private static String abbreviate(String s) {
            return s.length() > 60 ? s.substring(0, 60) + "..." : s;
        }
    }
}
