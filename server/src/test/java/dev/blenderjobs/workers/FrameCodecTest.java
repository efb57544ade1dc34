package dev.blenderjobs.workers;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FrameCodecTest {

    private static DataInputStream in(byte[] bytes) {
        return new DataInputStream(new ByteArrayInputStream(bytes));
    }

    private static byte[] header(int length) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        new DataOutputStream(out).writeInt(length);
        return out.toByteArray();
    }

    @Test
    void severalMessagesRoundTripInOrder() throws IOException {
        JsonObject progress = new JsonObject();
        progress.addProperty("type", "progress");
        progress.addProperty("jobId", "job-1");
        progress.addProperty("progress", 0.5);
        progress.addProperty("message", "h\u00e9llo \u2713 \uD83D\uDE00");
        JsonObject result = new JsonObject();
        result.addProperty("type", "result");
        result.addProperty("ok", true);
        JsonArray arr = new JsonArray();
        arr.add("Cube");
        arr.add(3);
        result.add("blocks", arr);
        JsonObject empty = new JsonObject();
        JsonObject big = new JsonObject();
        big.addProperty("text", "x".repeat(300_000));

        ByteArrayOutputStream out = new ByteArrayOutputStream();
        FrameCodec.write(out, progress);
        FrameCodec.write(out, result);
        FrameCodec.write(out, empty);
        FrameCodec.write(out, big);

        DataInputStream in = in(out.toByteArray());
        assertEquals(progress, FrameCodec.read(in));
        assertEquals(result, FrameCodec.read(in));
        assertEquals(empty, FrameCodec.read(in));
        assertEquals(big, FrameCodec.read(in));
        assertNull(FrameCodec.read(in), "clean end after the last frame");
    }

    @Test
    void frameIsBigEndianLengthThenUtf8Json() throws IOException {
        JsonObject m = new JsonObject();
        m.addProperty("k", "\u00e9");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        FrameCodec.write(out, m);
        byte[] body = "{\"k\":\"\u00e9\"}".getBytes(StandardCharsets.UTF_8);
        byte[] frame = out.toByteArray();
        assertEquals(4 + body.length, frame.length);
        assertArrayEquals(header(body.length), java.util.Arrays.copyOf(frame, 4));
        assertArrayEquals(body, java.util.Arrays.copyOfRange(frame, 4, frame.length));
    }

    @Test
    void readsAFrameWrittenByHand() throws IOException {
        byte[] body = "{\"type\":\"hello\",\"n\":1}".getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header(body.length));
        out.write(body);
        JsonObject read = FrameCodec.read(in(out.toByteArray()));
        assertEquals("hello", read.get("type").getAsString());
        assertEquals(1, read.get("n").getAsInt());
    }

    @Test
    void cleanEofReturnsNull() throws IOException {
        assertNull(FrameCodec.read(in(new byte[0])));
    }

    @Test
    void oversizedLengthThrows() throws IOException {
        IOException e = assertThrows(IOException.class,
                () -> FrameCodec.read(in(header(FrameCodec.MAX_FRAME_BYTES + 1))));
        assertTrue(e.getMessage().contains(String.valueOf(FrameCodec.MAX_FRAME_BYTES + 1)), e.getMessage());
    }

    @Test
    void negativeLengthThrows() throws IOException {
        IOException e = assertThrows(IOException.class, () -> FrameCodec.read(in(header(-1))));
        assertTrue(e.getMessage().contains("-1"), e.getMessage());
        assertThrows(IOException.class, () -> FrameCodec.read(in(header(Integer.MIN_VALUE))));
    }

    @Test
    void truncatedBodyThrows() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header(100));
        out.write("{\"a\":".getBytes(StandardCharsets.UTF_8));
        assertThrows(EOFException.class, () -> FrameCodec.read(in(out.toByteArray())));
    }
}
