package dev.blenderjobs.wire;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * Framing: exact when the client is honest, and back on the next frame after anything malformed
 * (the resynchronization cases of issue 10, item 3, at the byte level; StrictMessageProducerTest
 * checks what is answered).
 */
class FrameReaderTest {
    static final String NEXT = "Content-Length: 2\r\n\r\n{}";

    private static FrameReader reader(long max, byte[]... parts) throws Exception {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (byte[] p : parts) all.write(p);
        return new FrameReader(new ByteArrayInputStream(all.toByteArray()), max);
    }

    private static FrameReader reader(String text) throws Exception {
        return reader(1 << 20, text.getBytes(StandardCharsets.UTF_8));
    }

    private static String frame(String body) {
        return "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body;
    }

    /** Every body the reader yields, in order, as the producer would treat it (salvaging bodies that are not JSON). */
    private static List<String> bodies(FrameReader r) throws Exception {
        List<String> out = new ArrayList<>();
        FrameReader.Frame f;
        while ((f = r.next()) != null) {
            if (f instanceof FrameReader.Oversized o) {
                out.add("<oversized " + o.length() + ">");
                continue;
            }
            byte[] bytes = ((FrameReader.Body) f).bytes();
            String text = new String(bytes, StandardCharsets.UTF_8);
            if (!isJson(text)) {
                byte[] before = r.salvage(bytes);
                if (before != null) text = new String(before, StandardCharsets.UTF_8);
            }
            out.add(text);
        }
        return out;
    }

    private static boolean isJson(String s) {
        try {
            com.google.gson.JsonParser.parseString(s);
            return true;
        } catch (RuntimeException e) {
            return false;
        }
    }

    @Test
    void honestFramesAreReadExactlyWhateverTheirBodiesSay() throws Exception {
        String a = "{\"text\": \"Content-Length: 12\\r\\n is just text here\", \"café\": 1}";
        String b = "{\"id\": 2}";
        assertEquals(List.of(a, b), bodies(reader(frame(a) + "Content-Type: application/vscode-jsonrpc; "
                + "charset=utf-8\r\n" + frame(b))));
    }

    @Test
    void aLengthOneByteShortLeavesABodyThatIsNotJsonAndTheNextFrameIsStillRead() throws Exception {
        String cafe = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"getJob\",\"params\":{\"jobId\":\"café\"}}";
        // The length counted in characters: one byte short of the UTF-8 body.
        String bad = "Content-Length: " + cafe.length() + "\r\n\r\n" + cafe;
        List<String> got = bodies(reader(bad + frame("{\"id\":2}")));
        assertEquals(cafe.substring(0, cafe.length() - 1), got.get(0), "the short body, answered -32700");
        assertEquals(List.of("{\"id\":2}"), got.subList(1, got.size()));
    }

    @Test
    void headerNamesAreCaseInsensitive() throws Exception {
        assertEquals(List.of("{\"id\":1}", "{\"id\":2}"),
                bodies(reader("content-length: 8\r\n\r\n{\"id\":1}CONTENT-LENGTH:8\r\n\r\n{\"id\":2}")));
    }

    @Test
    void aNegativeLengthWithABodySkipsThatBodyOnlyUpToTheNextHeader() throws Exception {
        assertEquals(List.of("{\"id\":2}"),
                bodies(reader("Content-Length: -5\r\n\r\n{\"id\":1}" + frame("{\"id\":2}"))));
        assertEquals(List.of("{\"id\":2}"),
                bodies(reader("Content-Length: abc\r\n\r\n{\"id\":1,\r\n\r\n \"x\": 2}\r\n" + frame("{\"id\":2}"))),
                "a pretty-printed body with blank lines in it is skipped too");
    }

    @Test
    void junkAfterABodyIsDropped() throws Exception {
        assertEquals(List.of("{\"id\":1}", "{\"id\":2}"),
                bodies(reader(frame("{\"id\":1}") + "trailing: junk}}\r\n\r\nmore junk" + frame("{\"id\":2}"))));
    }

    @Test
    void aLengthFiveTooLargeGivesBackTheNextHeaderAndBothMessagesAreRead() throws Exception {
        String one = "{\"id\":1}";
        String bad = "Content-Length: " + (one.length() + 5) + "\r\n\r\n" + one;
        assertEquals(List.of(one, "{\"id\":2}", "{\"id\":3}"),
                bodies(reader(bad + frame("{\"id\":2}") + frame("{\"id\":3}"))));
        // Too large by more than a whole message: every message inside is read.
        String bigger = "Content-Length: " + (one.length() + 40) + "\r\n\r\n" + one;
        assertEquals(List.of(one, "{\"id\":2}", "{\"id\":3}"),
                bodies(reader(bigger + frame("{\"id\":2}") + frame("{\"id\":3}"))));
    }

    @Test
    void anOverLongJunkLineIsNotBufferedAndAHeaderAtItsEndIsFound() throws Exception {
        String junk = "x".repeat(5 * FrameReader.MAX_LINE);
        assertEquals(List.of("{\"id\":2}"), bodies(reader(junk + frame("{\"id\":2}"))));
    }

    @Test
    void anHonestOversizedBodyIsSkippedExactly() throws Exception {
        // A big valid JSON body that even mentions Content-Length inside a string.
        String body = "{\"text\": \"Content-Length: 12 is just text here\", \"pad\": \"" + "x".repeat(200_000) + "\"}";
        FrameReader r = reader(1000, frame(body).getBytes(StandardCharsets.UTF_8), NEXT.getBytes(StandardCharsets.US_ASCII));
        assertEquals(body.length(), assertInstanceOf(FrameReader.Oversized.class, r.next()).length());
        assertArrayEquals("{}".getBytes(StandardCharsets.US_ASCII), ((FrameReader.Body) r.next()).bytes());
        assertNull(r.next());
    }

    @Test
    void aLyingLengthStopsAtTheNextHeaderInsteadOfSwallowingTheStream() throws Exception {
        FrameReader r = reader(1000, "Content-Length: 2147483647\r\n\r\n{\"a\": 1}".getBytes(StandardCharsets.US_ASCII),
                NEXT.getBytes(StandardCharsets.US_ASCII));
        assertInstanceOf(FrameReader.Oversized.class, r.next());
        assertArrayEquals("{}".getBytes(StandardCharsets.US_ASCII), ((FrameReader.Body) r.next()).bytes());
    }

    @Test
    void aHeaderCutByAChunkBoundaryIsStillFound() throws Exception {
        // Garbage up to 5 bytes before the end of the first skipped chunk, then the next message.
        byte[] head = "Content-Length: 1099511627776\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
        byte[] filler = new byte[FrameReader.CHUNK - 5];
        java.util.Arrays.fill(filler, (byte) 'y');
        FrameReader r = reader(1000, head, filler, NEXT.getBytes(StandardCharsets.US_ASCII));
        assertInstanceOf(FrameReader.Oversized.class, r.next());
        assertArrayEquals("{}".getBytes(StandardCharsets.US_ASCII), ((FrameReader.Body) r.next()).bytes());
    }

    @Test
    void theEndOfTheStreamMidBodyEndsReading() throws Exception {
        assertNull(reader("Content-Length: 1000\r\n\r\n{\"a\"").next());
        assertNull(reader(1, "Content-Length: 1000\r\n\r\n{\"a\"".getBytes(StandardCharsets.US_ASCII)).next());
        assertNull(reader("Content-Len").next());
    }

    @Test
    void headerPatternsAreRecognizedWholeOrCut() {
        byte[] b = "xxcontent-LENGTH:  42\r\nyy".getBytes(StandardCharsets.US_ASCII);
        assertEquals(2, FrameReader.findHeader(b, 0, b.length, false));
        byte[] cut = "{\"a\":1}Conte".getBytes(StandardCharsets.US_ASCII);
        assertEquals(-1, FrameReader.findHeader(cut, 0, cut.length, false));
        assertEquals(7, FrameReader.findHeader(cut, 0, cut.length, true));
        byte[] noDigits = "Content-Length: x\r\n".getBytes(StandardCharsets.US_ASCII);
        assertEquals(-1, FrameReader.findHeader(noDigits, 0, noDigits.length, true));
    }
}
