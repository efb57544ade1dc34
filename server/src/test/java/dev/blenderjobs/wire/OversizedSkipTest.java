package dev.blenderjobs.wire;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PushbackInputStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The skip of a body over the size cap: exact when the length is honest, resynchronizing when it lies. */
class OversizedSkipTest {
    static final String NEXT = "Content-Length: 2\r\n\r\n{}";

    private static PushbackInputStream stream(byte[]... parts) throws Exception {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (byte[] p : parts) all.write(p);
        return new PushbackInputStream(new ByteArrayInputStream(all.toByteArray()),
                WireLauncher.CappedMessageProducer.CHUNK_BYTES);
    }

    private static String rest(PushbackInputStream in) throws Exception {
        return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }

    @Test
    void anHonestOversizedBodyIsSkippedExactly() throws Exception {
        // A big valid JSON body that even mentions Content-Length inside a string.
        String body = "{\"text\": \"Content-Length: 12 is just text here\", \"pad\": \"" + "x".repeat(200_000) + "\"}";
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        PushbackInputStream in = stream(bytes, NEXT.getBytes(StandardCharsets.US_ASCII));
        assertTrue(WireLauncher.CappedMessageProducer.skipBody(in, bytes.length));
        assertEquals(NEXT, rest(in));
    }

    @Test
    void aLyingLengthStopsAtTheNextHeaderInsteadOfSwallowingTheStream() throws Exception {
        PushbackInputStream in = stream("{\"a\": 1}".getBytes(StandardCharsets.US_ASCII),
                NEXT.getBytes(StandardCharsets.US_ASCII));
        assertTrue(WireLauncher.CappedMessageProducer.skipBody(in, 2_147_483_647L));
        assertEquals(NEXT, rest(in));
    }

    @Test
    void aHeaderCutByAChunkBoundaryIsStillFound() throws Exception {
        // Garbage up to 5 bytes before the end of the first chunk, then the next message.
        byte[] filler = new byte[WireLauncher.CappedMessageProducer.SKIP_CHUNK - 5];
        java.util.Arrays.fill(filler, (byte) 'y');
        PushbackInputStream in = stream(filler, NEXT.getBytes(StandardCharsets.US_ASCII));
        assertTrue(WireLauncher.CappedMessageProducer.skipBody(in, 1L << 40));
        assertArrayEquals(NEXT.getBytes(StandardCharsets.US_ASCII), in.readAllBytes());
    }

    @Test
    void theEndOfTheStreamMidBodyEndsReading() throws Exception {
        assertFalse(WireLauncher.CappedMessageProducer.skipBody(stream(new byte[100]), 1000));
    }
}
