package dev.blenderjobs.channel;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.Timing;

import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The one codec of the worker channel on the server's side (the runtime has its twin): turns
 * {@link ToWorker} messages into JSON objects, and JSON objects from a worker into
 * {@link FromWorker} messages, checking every field's presence, type and range. Anything else
 * is a {@link ProtocolViolation}: unknown types, unknown or missing fields, wrong types.
 */
public final class ChannelCodec {
    /**
     * The channel protocol version. The runtime states the one it speaks in its hello; a
     * different one is refused. Version 1 was the untyped channel of blender-jobs 0.1; version 2
     * the typed one of 0.2.0. Two branches each made a version 3: one added {@code started} and
     * {@code idle}, the other binary frames (file, result and console chunks) for workers that do
     * not share the server's disk. Version 4 has both, so a runtime of either version 3 (which
     * would never say idle, or could not stage a remote job's files) is refused at the handshake.
     */
    public static final int PROTOCOL = 4;
    /** The most data one chunk (file, result, console) may carry; senders use {@link #CHUNK_BYTES}. */
    public static final int MAX_CHUNK_BYTES = 4 * 1024 * 1024;
    /** The chunk size both sides send: big enough for speed, small enough to bound memory. */
    public static final int CHUNK_BYTES = 1024 * 1024;
    static final int MAX_MESSAGE_CHARS = 64 * 1024;
    static final int MAX_TRACEBACK_CHARS = 1024 * 1024;
    static final int MAX_SHORT_CHARS = 200;
    static final int MAX_RECYCLE_CHARS = 4096;
    /** A stage longer than a year is not a measurement. */
    static final double MAX_TIMING_MS = 365.0 * 24 * 3600 * 1000;
    private static final Pattern JOB_ID = Pattern.compile("job-[0-9a-f]{12}");
    private static final Pattern HEX64 = Pattern.compile("[0-9a-f]{64}");
    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();

    private ChannelCodec() {
    }

    public static JsonObject encode(ToWorker message) {
        JsonObject o;
        String type;
        if (message instanceof ToWorker.Challenge c) {
            type = "challenge";
            o = new JsonObject();
            o.addProperty("nonce", c.nonce());
        } else if (message instanceof ToWorker.Welcome w) {
            type = "welcome";
            o = new JsonObject();
            o.addProperty("worker", w.worker());
        } else if (message instanceof ToWorker.Refused r) {
            type = "refused";
            o = new JsonObject();
            o.addProperty("reason", r.reason());
        } else if (message instanceof ToWorker.Run r) {
            type = "run";
            o = new JsonObject();
            o.addProperty("jobId", r.jobId());
            o.addProperty("attempt", r.attempt());
            o.add("spec", GSON.toJsonTree(r.spec()));
            o.add("files", GSON.toJsonTree(r.files()));
        } else if (message instanceof ToWorker.Shutdown) {
            type = "shutdown";
            o = new JsonObject();
        } else if (message instanceof ToWorker.FileChunk f) {
            // The header of a binary frame; the bytes follow it (frame()).
            type = "file";
            o = new JsonObject();
            o.addProperty("jobId", f.jobId());
            o.addProperty("name", f.name());
            o.addProperty("offset", f.offset());
            o.addProperty("last", f.last());
        } else {
            throw new IllegalArgumentException("not a channel message: " + message);
        }
        JsonObject typed = new JsonObject();
        typed.addProperty("type", type);
        for (Map.Entry<String, JsonElement> e : o.entrySet()) typed.add(e.getKey(), e.getValue());
        return typed;
    }

    /** The whole frame of a message: a binary frame for a {@link ToWorker.FileChunk}, JSON for the others. */
    public static byte[] frame(ToWorker message) {
        if (message instanceof ToWorker.FileChunk f) {
            if (f.data().length > MAX_CHUNK_BYTES) throw new IllegalArgumentException("a chunk of " + f.data().length + " bytes");
            return FrameCodec.encodeBinary(encode(f), f.data(), 0, f.data().length);
        }
        return FrameCodec.encode(encode(message));
    }

    /**
     * A frame from a worker: console and result chunks come as binary frames, every other
     * message as JSON; either in the wrong kind of frame is a violation.
     */
    public static FromWorker decode(FrameCodec.Frame frame) throws ProtocolViolation {
        if (frame.data() == null) return decode(frame.message());
        JsonObject m = frame.message();
        String type = string(m, "type", MAX_SHORT_CHARS, true);
        byte[] data = frame.data();
        if (data.length > MAX_CHUNK_BYTES) {
            throw new ProtocolViolation("a \"" + clip(type) + "\" chunk of " + data.length + " bytes (at most "
                    + MAX_CHUNK_BYTES + ")");
        }
        return switch (type) {
            case "console" -> {
                only(m, type, Set.of("type", "jobId"));
                yield new FromWorker.Console(m.has("jobId") && !m.get("jobId").isJsonNull() ? jobId(m) : null, data);
            }
            case "result" -> {
                only(m, type, Set.of("type", "jobId", "name", "offset", "last"));
                String name = string(m, "name", MAX_SHORT_CHARS, true);
                if (!FromWorker.RESULT_NAMES.contains(name)) {
                    throw new ProtocolViolation("a result chunk of \"" + clip(name) + "\" (only " + FromWorker.RESULT_NAMES
                            + ")");
                }
                yield new FromWorker.ResultChunk(jobId(m), name, integer(m, "offset", 0, Long.MAX_VALUE - MAX_CHUNK_BYTES),
                        bool(m, "last"), data);
            }
            default -> throw new ProtocolViolation("a binary frame of type \"" + clip(type) + "\" (only console and "
                    + "result chunks are binary)");
        };
    }

    /** A message from a worker, checked field by field. */
    public static FromWorker decode(JsonObject m) throws ProtocolViolation {
        String type = string(m, "type", MAX_SHORT_CHARS, true);
        return switch (type) {
            case "hello" -> {
                only(m, type, Set.of("type", "protocol", "runtimeVersion", "worker", "pid", "blenderVersion",
                        "pythonVersion", "proof"));
                yield new FromWorker.Hello((int) integer(m, "protocol", 0, Integer.MAX_VALUE),
                        string(m, "runtimeVersion", MAX_SHORT_CHARS, true), string(m, "worker", MAX_SHORT_CHARS, true),
                        integer(m, "pid", 1, Long.MAX_VALUE), string(m, "blenderVersion", MAX_SHORT_CHARS, true),
                        string(m, "pythonVersion", MAX_SHORT_CHARS, true), hex64(m, "proof"));
            }
            case "started" -> {
                only(m, type, Set.of("type", "jobId"));
                yield new FromWorker.Started(jobId(m));
            }
            case "progress" -> {
                only(m, type, Set.of("type", "jobId", "progress", "message", "reportedAt"));
                double progress = number(m, "progress");
                if (!(progress >= 0 && progress <= 1)) {
                    throw new ProtocolViolation("a progress of " + progress + " (it must be 0.0 to 1.0)");
                }
                yield new FromWorker.Progress(jobId(m), progress, string(m, "message", MAX_MESSAGE_CHARS, false),
                        integer(m, "reportedAt", 0, Long.MAX_VALUE));
            }
            case "completed" -> {
                only(m, type, Set.of("type", "jobId", "pythonDataBytes", "pythonDataSha256", "dataBlocks", "timing"));
                yield new FromWorker.Completed(jobId(m), integer(m, "pythonDataBytes", 0, Long.MAX_VALUE),
                        hex64(m, "pythonDataSha256"), dataBlocks(m), timing(m));
            }
            case "failed" -> {
                only(m, type, Set.of("type", "jobId", "kind", "message", "traceback"));
                String kindName = string(m, "kind", MAX_SHORT_CHARS, true);
                FailureKind kind = FailureKind.named(kindName).filter(FromWorker.REPORTABLE::contains)
                        .orElseThrow(() -> new ProtocolViolation("a failure of kind \"" + clip(kindName)
                                + "\", which a worker may not report (it may report " + FromWorker.REPORTABLE + ")"));
                yield new FromWorker.Failed(jobId(m), kind, string(m, "message", MAX_MESSAGE_CHARS, true),
                        string(m, "traceback", MAX_TRACEBACK_CHARS, false));
            }
            case "idle" -> {
                only(m, type, Set.of("type", "recycle"));
                yield new FromWorker.Idle(string(m, "recycle", MAX_RECYCLE_CHARS, false));
            }
            case "console", "result" -> throw new ProtocolViolation("a message of unknown type \"" + type + "\" in a "
                    + "JSON frame (console and result chunks come only as binary frames)");
            default -> throw new ProtocolViolation("a message of unknown type \"" + clip(type) + "\"");
        };
    }

    private static boolean bool(JsonObject m, String field) throws ProtocolViolation {
        JsonElement e = m.get(field);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
            throw new ProtocolViolation("a \"" + field + "\" that is not true or false");
        }
        return e.getAsBoolean();
    }

    private static void only(JsonObject m, String type, Set<String> allowed) throws ProtocolViolation {
        for (String key : m.keySet()) {
            if (!allowed.contains(key)) {
                throw new ProtocolViolation("a \"" + type + "\" message with the unknown field \"" + clip(key) + "\"");
            }
        }
    }

    private static String jobId(JsonObject m) throws ProtocolViolation {
        String id = string(m, "jobId", MAX_SHORT_CHARS, true);
        if (!JOB_ID.matcher(id).matches()) throw new ProtocolViolation("a message for \"" + clip(id) + "\", not a job id");
        return id;
    }

    private static String hex64(JsonObject m, String field) throws ProtocolViolation {
        String v = string(m, field, 64, true);
        if (!HEX64.matcher(v).matches()) throw new ProtocolViolation("a \"" + field + "\" that is not 64 hex digits");
        return v;
    }

    private static String string(JsonObject m, String field, int maxChars, boolean required) throws ProtocolViolation {
        JsonElement e = m.get(field);
        if (e == null || e.isJsonNull()) {
            if (required) throw new ProtocolViolation("a message without \"" + field + "\"");
            return null;
        }
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
            throw new ProtocolViolation("a \"" + field + "\" that is not a string");
        }
        String s = e.getAsString();
        if (s.length() > maxChars) {
            throw new ProtocolViolation("a \"" + field + "\" of " + s.length() + " characters (at most " + maxChars + ")");
        }
        return s;
    }

    private static double number(JsonObject m, String field) throws ProtocolViolation {
        JsonElement e = m.get(field);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw new ProtocolViolation("a \"" + field + "\" that is not a number");
        }
        return e.getAsDouble();
    }

    private static long integer(JsonObject m, String field, long min, long max) throws ProtocolViolation {
        JsonElement e = m.get(field);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw new ProtocolViolation("a \"" + field + "\" that is not a whole number");
        }
        long v;
        try {
            v = new java.math.BigDecimal(e.getAsString()).longValueExact();
        } catch (ArithmeticException | NumberFormatException x) {
            throw new ProtocolViolation("a \"" + field + "\" that is not a whole number in range");
        }
        if (v < min || v > max) throw new ProtocolViolation("a \"" + field + "\" of " + v + " (out of range)");
        return v;
    }

    /** {collection: [names]} with string names, or null. */
    private static JsonObject dataBlocks(JsonObject m) throws ProtocolViolation {
        JsonElement e = m.get("dataBlocks");
        if (e == null || e.isJsonNull()) return null;
        if (!e.isJsonObject()) throw new ProtocolViolation("\"dataBlocks\" that is not an object");
        for (Map.Entry<String, JsonElement> c : e.getAsJsonObject().entrySet()) {
            if (!c.getValue().isJsonArray()) throw new ProtocolViolation("\"dataBlocks\" whose entries are not arrays");
            for (JsonElement name : c.getValue().getAsJsonArray()) {
                if (!name.isJsonPrimitive() || !name.getAsJsonPrimitive().isString()) {
                    throw new ProtocolViolation("\"dataBlocks\" with a name that is not a string");
                }
            }
        }
        return e.getAsJsonObject();
    }

    /** {name: milliseconds}: the runtime's stage names only, each a number. */
    private static Timing timing(JsonObject m) throws ProtocolViolation {
        JsonElement e = m.get("timing");
        if (e == null || e.isJsonNull()) return Timing.NONE;
        if (!e.isJsonObject()) throw new ProtocolViolation("\"timing\" that is not an object");
        for (Map.Entry<String, JsonElement> t : e.getAsJsonObject().entrySet()) {
            if (!Timing.NAMES.contains(t.getKey())) {
                throw new ProtocolViolation("\"timing\" with an unknown stage \"" + clip(t.getKey()) + "\"");
            }
            JsonElement v = t.getValue();
            if (!v.isJsonPrimitive() || !((JsonPrimitive) v).isNumber()) {
                throw new ProtocolViolation("\"timing\" with a value that is not a number");
            }
            // 1e400 is a JSON number but an infinite double, which no record or view could hold.
            double ms = v.getAsDouble();
            if (!(ms >= 0 && ms <= MAX_TIMING_MS)) {
                throw new ProtocolViolation("a \"timing\" of " + ms + " ms (it must be 0 to " + MAX_TIMING_MS + ")");
            }
        }
        return Timing.lenient(e);
    }

    private static String clip(String s) {
        return s.length() > 60 ? s.substring(0, 60) + "..." : s;
    }
}
