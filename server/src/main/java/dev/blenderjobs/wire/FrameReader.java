package dev.blenderjobs.wire;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Locale;
import java.util.logging.Logger;

/**
 * Cuts the client's byte stream into LSP base-protocol frames ({@code Content-Length: N\r\n\r\n}
 * and N bytes), and finds its way back to the next frame after anything malformed, so that one
 * bad frame never swallows the messages after it. LSP4J's own reader trusts every length and
 * matches header names case-sensitively; once a frame is off by one byte, each later header is
 * glued to the end of the previous body and nothing is read again.
 *
 * <p>How it resynchronizes, case by case:
 * <ul>
 *   <li>Header names are case-insensitive (as in HTTP): {@code content-length} is a header.</li>
 *   <li>Bytes before a header on the same line (the rest of a body whose length was too short,
 *       or junk after a body) are dropped: a line that is not a header but ends in
 *       {@code Content-Length: <digits>} is read as that header. A header block without a valid
 *       length (missing, negative, not a number) is skipped, and so is everything after it up to
 *       the next header; nothing can be answered there, so it is logged.</li>
 *   <li>A body that turns out not to be JSON may hold the start of the next frame (its length was
 *       too large): {@link #salvage} puts the bytes from that header on back into the stream.
 *       {@code Content-Length: <digits>} followed by CR LF cannot occur in JSON (a JSON string
 *       cannot hold a raw CR LF), so finding it means a frame boundary.</li>
 *   <li>A length over the cap is skipped without being buffered; the skip stops early at the
 *       next header, so a lying length does not swallow the stream either.</li>
 * </ul>
 * Not thread-safe: used by the one reader thread.
 */
final class FrameReader {
    private static final Logger LOG = Logger.getLogger(FrameReader.class.getName());
    static final byte[] HEADER_MARK = "content-length:".getBytes(StandardCharsets.US_ASCII);
    /** Chunk size for reading and for skipping oversized bodies. */
    static final int CHUNK = 64 * 1024;
    /** A header line longer than this is junk; only its end is kept (where a header may start). */
    static final int MAX_LINE = 8 * 1024;
    static final int LINE_TAIL = 1024;

    /** What {@link #next()} read. */
    sealed interface Frame permits Body, Oversized {
    }

    /** A frame's body, exactly as many bytes as its Content-Length said. */
    record Body(byte[] bytes, Charset charset) implements Frame {
    }

    /** A frame whose length is over the cap; its body was skipped unread. */
    record Oversized(long length) implements Frame {
    }

    private final InputStream in;
    private final long maxBodyBytes;
    /** Read-ahead; bytes put back by {@link #unread} go in front of it. */
    private byte[] buf = new byte[CHUNK];
    private int pos;
    private int limit;

    FrameReader(InputStream in, long maxBodyBytes) {
        this.in = in;
        this.maxBodyBytes = maxBodyBytes;
    }

    /** The next frame, or null when the stream ends (also in the middle of a frame). */
    Frame next() throws IOException {
        long length = -1;
        String charset = null;
        boolean headerSeen = false;
        long junk = 0;
        while (true) {
            Line line = readLine();
            if (line == null) {
                if (junk > 0 || headerSeen) LOG.warning("the input ended inside a message header; nothing to answer");
                return null;
            }
            String text = line.text;
            if (text.isEmpty()) {
                if (!headerSeen) {
                    junk += line.dropped + line.eol; // a blank line between frames: nothing to read here
                    continue;
                }
                if (length >= 0) {
                    if (junk > 0) LOG.warning("skipped " + junk + " bytes that were not part of a message before "
                            + "the next Content-Length header");
                    return length > maxBodyBytes ? skip(length) : body(length, charset);
                }
                LOG.warning("a message header without a valid Content-Length was skipped (no answer is possible: "
                        + "its end is unknown); reading on from the next Content-Length header");
                headerSeen = false;
                charset = null;
                junk = 0;
                continue;
            }
            // A line that ends in a Content-Length header after other bytes is the rest of a body
            // whose length was wrong (or junk after a body) glued to the next frame's header: read
            // on from that header, and forget this block.
            int at = lastHeaderStart(text);
            int colon = text.indexOf(':');
            if (at > 0 || (at < 0 && !isToken(colon > 0 ? text.substring(0, colon).trim() : ""))) {
                junk += line.dropped + (at < 0 ? text.length() + line.eol : at);
                headerSeen = false;
                charset = null;
                length = -1;
                if (at < 0) continue;
                text = text.substring(at);
                colon = text.indexOf(':');
            }
            String name = text.substring(0, colon).trim();
            headerSeen = true;
            String value = text.substring(colon + 1).trim();
            if (name.equalsIgnoreCase("Content-Length")) {
                length = parseLength(value);
                if (length < 0) LOG.warning("invalid Content-Length \"" + abbreviate(value) + "\"");
            } else if (name.equalsIgnoreCase("Content-Type")) {
                int cs = value.toLowerCase(Locale.ROOT).indexOf("charset=");
                if (cs >= 0) charset = value.substring(cs + 8).trim();
            }
            // Other headers are allowed and ignored.
        }
    }

    /**
     * For a body that is not JSON: if it holds the start of the next frame (a header, or the
     * beginning of one cut off by the body's end, as when the length was a few bytes too large),
     * puts the bytes from there on back into the stream and returns the part before it.
     *
     * @return the body without the next frame's bytes, or null if the body holds no header
     */
    byte[] salvage(byte[] body) {
        int at = findHeader(body, 0, body.length, true);
        if (at < 0) return null;
        LOG.warning("a message's Content-Length was too large: the next message starts inside its body; "
                + "reading on from there");
        unread(body, at, body.length - at);
        return Arrays.copyOf(body, at);
    }

    private Body body(long length, String charset) throws IOException {
        byte[] body = new byte[(int) length];
        int filled = 0;
        while (filled < body.length) {
            int n = read(body, filled, body.length - filled);
            if (n < 0) return null; // the stream ended mid-message
            filled += n;
        }
        return new Body(body, charsetOf(charset));
    }

    /**
     * Reads and drops an oversized body in chunks, never holding more than one chunk. A
     * Content-Length can lie (2 GB announced, a few bytes sent): rather than swallow every later
     * message while waiting for bytes that never come, the skip stops where the next header
     * starts and reads on from there.
     */
    private Frame skip(long length) throws IOException {
        long left = length;
        int carry = HEADER_MARK.length + 32; // the end of the previous chunk, where a header may have begun
        byte[] chunk = new byte[carry + CHUNK];
        int carried = 0;
        while (left > 0) {
            int n = read(chunk, carried, (int) Math.min(CHUNK, left));
            if (n < 0) return null;
            left -= n;
            int filled = carried + n;
            int header = findHeader(chunk, 0, filled, false);
            if (header >= 0) {
                unread(chunk, header, filled - header);
                LOG.warning("the oversized message's body ended early: a new message starts inside it (its "
                        + "Content-Length was wrong); reading on from there");
                return new Oversized(length);
            }
            carried = Math.min(carry, filled);
            System.arraycopy(chunk, filled - carried, chunk, 0, carried);
        }
        return new Oversized(length);
    }

    // ------------------------------------------------------------------ header patterns

    static final int NONE = 0;
    static final int FULL = 1;
    static final int CUT = 2;

    /**
     * Whether a header "Content-Length:" (any case), optional spaces, digits and CR LF starts at
     * {@code i}: FULL, CUT when the bytes up to {@code to} are the beginning of one, or NONE.
     */
    static int headerAt(byte[] b, int i, int to) {
        int k = i;
        for (byte m : HEADER_MARK) {
            if (k == to) return CUT;
            if (lower(b[k]) != m) return NONE;
            k++;
        }
        while (k < to && (b[k] == ' ' || b[k] == '\t')) k++;
        int digits = k;
        while (k < to && b[k] >= '0' && b[k] <= '9') k++;
        if (k == to) return CUT;
        if (k == digits) return NONE;
        if (b[k] != '\r') return NONE;
        if (k + 1 == to) return CUT;
        return b[k + 1] == '\n' ? FULL : NONE;
    }

    /** First index in [from, to) where a header starts, or one cut off at {@code to} (if allowed); -1 if none. */
    static int findHeader(byte[] b, int from, int to, boolean cutAllowed) {
        for (int i = from; i < to; i++) {
            if (lower(b[i]) != HEADER_MARK[0]) continue;
            int match = headerAt(b, i, to);
            if (match == FULL || (match == CUT && cutAllowed)) return i;
        }
        return -1;
    }

    /** Where the last "Content-Length:" of a line starts if digits alone follow it; -1 if none. */
    private static int lastHeaderStart(String line) {
        String lower = line.toLowerCase(Locale.ROOT);
        int at = lower.lastIndexOf("content-length:");
        while (at >= 0) {
            String value = line.substring(at + HEADER_MARK.length).trim();
            if (!value.isEmpty() && value.chars().allMatch(c -> c >= '0' && c <= '9')) return at;
            at = at == 0 ? -1 : lower.lastIndexOf("content-length:", at - 1);
        }
        return -1;
    }

    /** A non-negative length, or -1 when it is not one (negative, not a number, beyond a long). */
    private static long parseLength(String value) {
        if (value.isEmpty() || !value.chars().allMatch(c -> c >= '0' && c <= '9')) return -1;
        try {
            return Long.parseLong(value);
        } catch (NumberFormatException tooLong) {
            return -1;
        }
    }

    /** RFC 7230 token: what a header name may be made of. */
    private static boolean isToken(String s) {
        if (s.isEmpty()) return false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || "!#$%&'*+-.^_`|~".indexOf(c) >= 0;
            if (!ok) return false;
        }
        return true;
    }

    private static byte lower(byte b) {
        return b >= 'A' && b <= 'Z' ? (byte) (b + 32) : b;
    }

    // ------------------------------------------------------------------ bytes

    /**
     * @param dropped bytes of an over-long line dropped before {@code text}
     * @param eol     1 or 2 (LF or CR LF), 0 at the end of the stream
     */
    private record Line(String text, long dropped, int eol) {
    }

    /** One line without its CR LF (or LF), as ISO-8859-1; only the end of an over-long line is kept. */
    private Line readLine() throws IOException {
        byte[] line = new byte[128];
        int len = 0;
        long dropped = 0;
        while (true) {
            int c = read();
            if (c < 0) {
                return len == 0 && dropped == 0 ? null
                        : new Line(new String(line, 0, len, StandardCharsets.ISO_8859_1), dropped, 0);
            }
            if (c == '\n') {
                boolean cr = len > 0 && line[len - 1] == '\r';
                if (cr) len--;
                return new Line(new String(line, 0, len, StandardCharsets.ISO_8859_1), dropped, cr ? 2 : 1);
            }
            if (len == line.length) {
                if (len >= MAX_LINE) {
                    System.arraycopy(line, len - LINE_TAIL, line, 0, LINE_TAIL);
                    dropped += len - LINE_TAIL;
                    len = LINE_TAIL;
                } else {
                    line = Arrays.copyOf(line, len * 2);
                }
            }
            line[len++] = (byte) c;
        }
    }

    private int read() throws IOException {
        if (pos == limit && !fill()) return -1;
        return buf[pos++] & 0xff;
    }

    private int read(byte[] dst, int off, int len) throws IOException {
        if (pos == limit) {
            // Large reads go straight to the stream (a read loop: FileInputStream.readNBytes seeks,
            // which fails on pipes).
            if (len >= buf.length) return in.read(dst, off, len);
            if (!fill()) return -1;
        }
        int n = Math.min(len, limit - pos);
        System.arraycopy(buf, pos, dst, off, n);
        pos += n;
        return n;
    }

    private boolean fill() throws IOException {
        if (buf.length > CHUNK) buf = new byte[CHUNK]; // back to normal after a large unread
        int n = in.read(buf, 0, buf.length);
        if (n <= 0) {
            pos = limit = 0;
            return false;
        }
        pos = 0;
        limit = n;
        return true;
    }

    /** Puts bytes back in front of what is still to be read. */
    private void unread(byte[] b, int off, int len) {
        byte[] joined = new byte[len + (limit - pos)];
        System.arraycopy(b, off, joined, 0, len);
        System.arraycopy(buf, pos, joined, len, limit - pos);
        buf = joined.length >= CHUNK ? joined : Arrays.copyOf(joined, CHUNK);
        pos = 0;
        limit = joined.length;
    }

    private static Charset charsetOf(String name) {
        try {
            return name == null ? StandardCharsets.UTF_8 : Charset.forName(name);
        } catch (RuntimeException e) {
            return StandardCharsets.UTF_8;
        }
    }

    private static String abbreviate(String s) {
        return s.length() > 60 ? s.substring(0, 60) + "..." : s;
    }
}
