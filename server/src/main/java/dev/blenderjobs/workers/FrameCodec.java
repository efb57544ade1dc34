package dev.blenderjobs.workers;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Framing of the private worker channel: a 4-byte big-endian length, then that many bytes of
 * UTF-8 JSON. A separate channel keeps results out of Blender's console noise.
 */
public final class FrameCodec {
    /** A worker result larger than this is refused rather than read into memory. */
    public static final int MAX_FRAME_BYTES = 256 * 1024 * 1024;

    private FrameCodec() {
    }

    public static void write(OutputStream out, JsonObject message) throws IOException {
        byte[] body = message.toString().getBytes(StandardCharsets.UTF_8);
        byte[] frame = new byte[4 + body.length];
        frame[0] = (byte) (body.length >>> 24);
        frame[1] = (byte) (body.length >>> 16);
        frame[2] = (byte) (body.length >>> 8);
        frame[3] = (byte) body.length;
        System.arraycopy(body, 0, frame, 4, body.length);
        out.write(frame);
        out.flush();
    }

    /** Reads one frame; returns null at a clean end of stream. */
    public static JsonObject read(DataInputStream in) throws IOException {
        return read(in, MAX_FRAME_BYTES);
    }

    /** Reads one frame of at most {@code maxBytes}; a longer one is refused before it is read. */
    public static JsonObject read(DataInputStream in, int maxBytes) throws IOException {
        int length;
        try {
            length = in.readInt();
        } catch (EOFException e) {
            return null;
        }
        if (length < 0 || length > maxBytes) {
            throw new IOException("the peer sent a frame of " + length + " bytes (limit " + maxBytes + ")");
        }
        byte[] body = new byte[length];
        in.readFully(body);
        return JsonParser.parseString(new String(body, StandardCharsets.UTF_8)).getAsJsonObject();
    }
}
