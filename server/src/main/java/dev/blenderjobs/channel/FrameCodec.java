package dev.blenderjobs.channel;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Framing of the worker channel: a 4-byte big-endian length, then that many bytes of UTF-8
 * JSON (one object). A channel of its own keeps results out of Blender's console noise.
 * <p>
 * A <em>binary</em> frame carries raw bytes with a message (file chunks, console output): its
 * length word has the top bit set, and its body is a 4-byte big-endian header length, that many
 * bytes of UTF-8 JSON (the message, with its "type"), then the data. Bytes travel as they are,
 * not as base64 inside JSON, so a 10 MB result costs one copy, not an encoding on each side.
 * Binary frames are refused before the handshake (a hello is always JSON).
 */
public final class FrameCodec {
    /**
     * The largest frame either side accepts. Results travel as files, so frames are small: the
     * biggest is a failure with its traceback, which the runtime cuts to well below this.
     */
    public static final int MAX_FRAME_BYTES = 8 * 1024 * 1024;
    /** The top bit of a length word: the frame is binary (a header and raw data). */
    static final int BINARY_FLAG = 0x80000000;

    /** One frame: a message, and the raw data of a binary frame (null for a JSON frame). */
    public record Frame(JsonObject message, byte[] data) {
    }

    private FrameCodec() {
    }

    public static byte[] encode(JsonObject message) {
        byte[] body = message.toString().getBytes(StandardCharsets.UTF_8);
        byte[] frame = new byte[4 + body.length];
        frame[0] = (byte) (body.length >>> 24);
        frame[1] = (byte) (body.length >>> 16);
        frame[2] = (byte) (body.length >>> 8);
        frame[3] = (byte) body.length;
        System.arraycopy(body, 0, frame, 4, body.length);
        return frame;
    }

    public static void write(OutputStream out, JsonObject message) throws IOException {
        out.write(encode(message));
        out.flush();
    }

    /**
     * A binary frame: {@code header} (a message with its "type") and {@code length} bytes of
     * {@code data} from {@code offset}.
     */
    public static byte[] encodeBinary(JsonObject header, byte[] data, int offset, int length) {
        byte[] head = header.toString().getBytes(StandardCharsets.UTF_8);
        int body = 4 + head.length + length;
        if (body > MAX_FRAME_BYTES) throw new IllegalArgumentException("a binary frame of " + body + " bytes");
        byte[] frame = new byte[4 + body];
        putInt(frame, 0, body | BINARY_FLAG);
        putInt(frame, 4, head.length);
        System.arraycopy(head, 0, frame, 8, head.length);
        System.arraycopy(data, offset, frame, 8 + head.length, length);
        return frame;
    }

    private static void putInt(byte[] b, int at, int v) {
        b[at] = (byte) (v >>> 24);
        b[at + 1] = (byte) (v >>> 16);
        b[at + 2] = (byte) (v >>> 8);
        b[at + 3] = (byte) v;
    }

    /** Reads one JSON frame; returns null at a clean end of stream (between frames). */
    public static JsonObject read(DataInputStream in) throws IOException {
        return read(in, MAX_FRAME_BYTES);
    }

    /**
     * Reads one frame, JSON or binary, of at most {@link #MAX_FRAME_BYTES}; returns null at a
     * clean end of stream. A binary frame's header must be a JSON object like any message.
     */
    public static Frame readFrame(DataInputStream in) throws IOException {
        int word;
        try {
            word = in.readInt();
        } catch (EOFException e) {
            return null;
        }
        if ((word & BINARY_FLAG) == 0) return new Frame(body(in, word, MAX_FRAME_BYTES), null);
        int length = word & ~BINARY_FLAG;
        if (length < 4 || length > MAX_FRAME_BYTES) {
            throw new ProtocolViolation("a binary frame of " + length + " bytes (the limit is " + MAX_FRAME_BYTES + ")");
        }
        int headLength = in.readInt();
        if (headLength < 2 || headLength > length - 4) {
            throw new ProtocolViolation("a binary frame whose header length " + Integer.toUnsignedString(headLength)
                    + " does not fit its " + length + " bytes");
        }
        JsonObject header = body(in, headLength, headLength);
        byte[] data = new byte[length - 4 - headLength];
        in.readFully(data);
        return new Frame(header, data);
    }

    /**
     * Reads one frame of at most {@code maxBytes}; a longer one is refused before it is read.
     * A frame that is not one JSON object in valid UTF-8 is a {@link ProtocolViolation}.
     */
    public static JsonObject read(DataInputStream in, int maxBytes) throws IOException {
        int length;
        try {
            length = in.readInt();
        } catch (EOFException e) {
            return null;
        }
        return body(in, length, maxBytes);
    }

    /** The JSON object of {@code length} bytes that follow. */
    private static JsonObject body(DataInputStream in, int length, int maxBytes) throws IOException {
        if (length < 0 || length > maxBytes) {
            throw new ProtocolViolation("a frame of " + Integer.toUnsignedString(length) + " bytes (the limit is "
                    + maxBytes + ")");
        }
        byte[] body = new byte[length];
        in.readFully(body);
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(body)).toString();
        } catch (CharacterCodingException e) {
            throw new ProtocolViolation("a frame that is not valid UTF-8");
        }
        JsonElement tree;
        try {
            tree = JsonParser.parseString(text);
        } catch (JsonParseException | IllegalStateException e) {
            throw new ProtocolViolation("a frame that is not JSON (" + e.getMessage() + ")");
        }
        if (!tree.isJsonObject()) throw new ProtocolViolation("a frame that is not a JSON object");
        return tree.getAsJsonObject();
    }
}
