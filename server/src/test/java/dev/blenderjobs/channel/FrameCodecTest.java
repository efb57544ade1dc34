package dev.blenderjobs.channel;

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

    private static byte[] frameOf(byte[] body) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header(body.length));
        out.write(body);
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
    void theLimitIsEightMebibytes() {
        assertEquals(8 * 1024 * 1024, FrameCodec.MAX_FRAME_BYTES);
    }

    @Test
    void oversizedLengthThrows() throws IOException {
        ProtocolViolation e = assertThrows(ProtocolViolation.class,
                () -> FrameCodec.read(in(header(FrameCodec.MAX_FRAME_BYTES + 1))));
        assertTrue(e.getMessage().contains(String.valueOf(FrameCodec.MAX_FRAME_BYTES + 1)), e.getMessage());
        assertTrue(e.getMessage().contains("the limit is " + FrameCodec.MAX_FRAME_BYTES), e.getMessage());
    }

    @Test
    void aFrameOfExactlyTheLimitIsRead() throws IOException {
        JsonObject m = new JsonObject();
        // {"t":"xxx..."} is 8 bytes plus the text.
        m.addProperty("t", "x".repeat(FrameCodec.MAX_FRAME_BYTES - 8));
        byte[] frame = FrameCodec.encode(m);
        assertEquals(4 + FrameCodec.MAX_FRAME_BYTES, frame.length);
        assertEquals(m, FrameCodec.read(in(frame)));
    }

    @Test
    void aSmallerLimitIsRefusedBeforeTheBodyIsRead() throws IOException {
        // As for a hello: a peer that has not proven itself gets a small frame, no more.
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header(1025));
        out.write(new byte[1025]);
        DataInputStream in = in(out.toByteArray());
        ProtocolViolation e = assertThrows(ProtocolViolation.class, () -> FrameCodec.read(in, 1024));
        assertTrue(e.getMessage().contains("1025") && e.getMessage().contains("the limit is 1024"), e.getMessage());
        assertEquals(1025, in.available(), "the body was not read");
    }

    @Test
    void negativeLengthThrows() throws IOException {
        // The length is read as unsigned: -1 is a frame of 4294967295 bytes, refused as too long.
        ProtocolViolation e = assertThrows(ProtocolViolation.class, () -> FrameCodec.read(in(header(-1))));
        assertTrue(e.getMessage().contains("4294967295"), e.getMessage());
        assertThrows(ProtocolViolation.class, () -> FrameCodec.read(in(header(Integer.MIN_VALUE))));
    }

    @Test
    void invalidUtf8IsAProtocolViolation() throws IOException {
        byte[] body = {'{', '"', 'k', '"', ':', '"', (byte) 0xC3, '"', '}'}; // a truncated 2-byte sequence
        ProtocolViolation e = assertThrows(ProtocolViolation.class, () -> FrameCodec.read(in(frameOf(body))));
        assertTrue(e.getMessage().startsWith("the worker sent") && e.getMessage().contains("UTF-8"), e.getMessage());
    }

    @Test
    void textThatIsNotJsonIsAProtocolViolation() throws IOException {
        ProtocolViolation e = assertThrows(ProtocolViolation.class,
                () -> FrameCodec.read(in(frameOf("{\"k\": ".getBytes(StandardCharsets.UTF_8)))));
        assertTrue(e.getMessage().contains("not JSON"), e.getMessage());
    }

    @Test
    void jsonThatIsNotAnObjectIsAProtocolViolation() throws IOException {
        for (String notAnObject : new String[]{"[1, 2]", "\"hello\"", "42", "null"}) {
            ProtocolViolation e = assertThrows(ProtocolViolation.class,
                    () -> FrameCodec.read(in(frameOf(notAnObject.getBytes(StandardCharsets.UTF_8)))), notAnObject);
            assertTrue(e.getMessage().contains("not a JSON object"), notAnObject + ": " + e.getMessage());
        }
    }

    @Test
    void anEmptyFrameIsAProtocolViolation() throws IOException {
        assertThrows(ProtocolViolation.class, () -> FrameCodec.read(in(header(0))));
    }

    @Test
    void truncatedBodyThrows() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header(100));
        out.write("{\"a\":".getBytes(StandardCharsets.UTF_8));
        assertThrows(EOFException.class, () -> FrameCodec.read(in(out.toByteArray())));
    }

    // ---------------------------------------------------------------- binary frames

    @Test
    void binaryFramesCarryAHeaderAndRawBytesBesideJsonFrames() throws IOException {
        JsonObject header = new JsonObject();
        header.addProperty("type", "console");
        byte[] data = new byte[300_000];
        for (int i = 0; i < data.length; i++) data[i] = (byte) i; // every byte value, invalid UTF-8 included
        JsonObject json = new JsonObject();
        json.addProperty("type", "progress");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(FrameCodec.encodeBinary(header, data, 0, data.length));
        FrameCodec.write(out, json);
        out.write(FrameCodec.encodeBinary(header, new byte[0], 0, 0));
        DataInputStream in = in(out.toByteArray());
        FrameCodec.Frame first = FrameCodec.readFrame(in);
        assertEquals(header, first.message());
        assertArrayEquals(data, first.data());
        FrameCodec.Frame second = FrameCodec.readFrame(in);
        assertEquals(json, second.message());
        assertNull(second.data(), "a JSON frame has no data");
        assertEquals(0, FrameCodec.readFrame(in).data().length);
        assertNull(FrameCodec.readFrame(in));
    }

    @Test
    void aBinaryFrameIsRefusedWhereOnlyJsonIsAllowed() throws IOException {
        JsonObject header = new JsonObject();
        header.addProperty("type", "console");
        byte[] frame = FrameCodec.encodeBinary(header, new byte[10], 0, 10);
        ProtocolViolation e = assertThrows(ProtocolViolation.class, () -> FrameCodec.read(in(frame), 16 * 1024));
        assertTrue(e.getMessage().contains("bytes (the limit is"), e.getMessage());
    }

    @Test
    void binaryFramesWithImpossibleLengthsAreViolations() throws IOException {
        // Longer than the limit.
        assertThrows(ProtocolViolation.class, () -> FrameCodec.readFrame(in(header(0x80000000 | (FrameCodec.MAX_FRAME_BYTES + 1)))));
        // A header longer than the frame.
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header(0x80000000 | 20));
        out.write(header(100));
        out.write(new byte[16]);
        ProtocolViolation e = assertThrows(ProtocolViolation.class, () -> FrameCodec.readFrame(in(out.toByteArray())));
        assertTrue(e.getMessage().contains("header length"), e.getMessage());
        // A header that is not a JSON object.
        ByteArrayOutputStream bad = new ByteArrayOutputStream();
        byte[] head = "[1]".getBytes(StandardCharsets.UTF_8);
        bad.write(header(0x80000000 | (4 + head.length + 2)));
        bad.write(header(head.length));
        bad.write(head);
        bad.write(new byte[2]);
        assertThrows(ProtocolViolation.class, () -> FrameCodec.readFrame(in(bad.toByteArray())));
    }
}
