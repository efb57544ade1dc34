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
 */
public final class FrameCodec {
    /**
     * The largest frame either side accepts. Results travel as files, so frames are small: the
     * biggest is a failure with its traceback, which the runtime cuts to well below this.
     */
    public static final int MAX_FRAME_BYTES = 8 * 1024 * 1024;

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

    /** Reads one frame; returns null at a clean end of stream (between frames). */
    public static JsonObject read(DataInputStream in) throws IOException {
        return read(in, MAX_FRAME_BYTES);
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
