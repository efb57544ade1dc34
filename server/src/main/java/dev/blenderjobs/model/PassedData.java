package dev.blenderjobs.model;

import com.google.gson.JsonObject;
import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.JsonWriter;

import java.io.IOException;
import java.io.OutputStream;
import java.io.StringReader;
import java.io.Writer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;

/**
 * A job's {@code passedData}: the client's JSON object, checked and held as compact UTF-8 JSON
 * text until the intake writes it to {@code passed_data.json}. It is read straight from the
 * request's JSON ({@link #read}), never built into a tree: a tree of 38 MB of numbers costs ten
 * times that on the heap, the text costs its size once.
 * <p>
 * Checked while it is read: every key and string is proper Unicode (a lone UTF-16 surrogate,
 * which JSON escapes can spell but no file can hold, is named with its place), and no top-level
 * key shadows a name the script contract defines.
 */
public final class PassedData {
    /** {@code {}}: no passedData. */
    public static final PassedData EMPTY = new PassedData(List.of("{}".getBytes(java.nio.charset.StandardCharsets.UTF_8)),
            2, List.of());

    private final List<byte[]> chunks;
    private final long bytes;
    private final List<String> keys;

    private PassedData(List<byte[]> chunks, long bytes, List<String> keys) {
        this.chunks = chunks;
        this.bytes = bytes;
        this.keys = keys;
    }

    /** Size of the JSON text in bytes. */
    public long bytes() {
        return bytes;
    }

    /** The object's top-level keys, in order. */
    public List<String> keys() {
        return keys;
    }

    public void writeTo(OutputStream out) throws IOException {
        for (byte[] c : chunks) out.write(c);
    }

    /** The JSON text (for tests and small values). */
    public String text() {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream((int) Math.min(bytes, Integer.MAX_VALUE));
        for (byte[] c : chunks) out.write(c, 0, c.length);
        return out.toString(java.nio.charset.StandardCharsets.UTF_8);
    }

    /** Checks and copies a tree (a request parsed before its method was known; tests). */
    public static PassedData of(JsonObject tree, Fields fields) {
        try {
            return read(new JsonReader(new StringReader(tree.toString())), fields);
        } catch (IOException e) {
            throw new IllegalStateException("a JSON tree always reads back", e);
        }
    }

    /**
     * Reads the passedData object at the reader's position, checking it as it goes. The whole
     * value is always consumed, even when it is refused, so the reader can go on.
     *
     * @throws Fields.InvalidFieldException (naming {@code passedData}) when it is not acceptable
     */
    public static PassedData read(JsonReader in, Fields fields) throws IOException {
        if (in.peek() != JsonToken.BEGIN_OBJECT) {
            throw new IllegalArgumentException("read() starts at an object; check the type first");
        }
        Utf8Chunks sink = new Utf8Chunks();
        JsonWriter out = new JsonWriter(sink);
        out.setStrictness(Strictness.LENIENT); // numbers are copied as they were written
        out.setSerializeNulls(true);
        out.setHtmlSafe(false);
        List<String> keys = new ArrayList<>();
        Deque<Level> path = new ArrayDeque<>();
        String problem = null;
        do {
            JsonToken token = in.peek();
            switch (token) {
                case BEGIN_OBJECT -> {
                    in.beginObject();
                    if (problem == null) out.beginObject();
                    path.push(new Level(false));
                }
                case BEGIN_ARRAY -> {
                    in.beginArray();
                    if (problem == null) out.beginArray();
                    path.push(new Level(true));
                }
                case END_OBJECT -> {
                    in.endObject();
                    if (problem == null) out.endObject();
                    path.pop();
                    valueDone(path);
                }
                case END_ARRAY -> {
                    in.endArray();
                    if (problem == null) out.endArray();
                    path.pop();
                    valueDone(path);
                }
                case NAME -> {
                    String key = in.nextName();
                    Level level = path.peek();
                    level.key = key;
                    if (problem == null) {
                        int bad = Unicode.loneSurrogateAt(key);
                        if (bad >= 0) {
                            problem = "has a key with a lone surrogate (" + Unicode.describeAt(key, bad) + ") in "
                                    + "a key of " + where(path, false) + "; " + Unicode.ADVICE;
                        } else if (path.size() == 1 && JobRequest.RESERVED_KEYS.contains(key)) {
                            problem = "has the key \"" + key + "\", which the script contract defines itself; rename it";
                        } else {
                            if (path.size() == 1) keys.add(key);
                            out.name(key);
                        }
                    }
                }
                case STRING -> {
                    String s = in.nextString();
                    if (problem == null) {
                        int bad = Unicode.loneSurrogateAt(s);
                        if (bad >= 0) {
                            problem = "has a string with a lone surrogate (" + Unicode.describeAt(s, bad) + ") at "
                                    + where(path, true) + "; " + Unicode.ADVICE;
                        } else {
                            out.value(s);
                        }
                    }
                    valueDone(path);
                }
                case NUMBER -> {
                    String n = in.nextString();
                    if (problem == null) out.jsonValue(n);
                    valueDone(path);
                }
                case BOOLEAN -> {
                    boolean b = in.nextBoolean();
                    if (problem == null) out.value(b);
                    valueDone(path);
                }
                case NULL -> {
                    in.nextNull();
                    if (problem == null) out.nullValue();
                    valueDone(path);
                }
                default -> throw new IOException("unexpected " + token + " in passedData");
            }
        } while (!path.isEmpty());
        if (problem != null) throw fields.invalid("passedData", problem);
        out.flush();
        return new PassedData(sink.chunks(), sink.bytes(), List.copyOf(keys));
    }

    /** One open object or array while reading: the key or index of the value being read. */
    private static final class Level {
        final boolean array;
        String key;
        int index;

        Level(boolean array) {
            this.array = array;
        }
    }

    private static void valueDone(Deque<Level> path) {
        Level parent = path.peek();
        if (parent != null && parent.array) parent.index++;
    }

    /** Python-style place of the value being read, e.g. {@code passedData['a'][1]['b']}. */
    private static String where(Deque<Level> path, boolean includeCurrent) {
        StringBuilder sb = new StringBuilder("passedData");
        Iterator<Level> outermostFirst = path.descendingIterator();
        List<Level> levels = new ArrayList<>();
        outermostFirst.forEachRemaining(levels::add);
        for (int i = 0; i < levels.size(); i++) {
            Level l = levels.get(i);
            boolean last = i == levels.size() - 1;
            if (last && !includeCurrent) break;
            if (l.array) sb.append('[').append(l.index).append(']');
            else sb.append("['").append(l.key).append("']");
        }
        return sb.toString();
    }

    /**
     * A Writer that encodes to UTF-8 into 1 MiB chunks: no buffer that doubles as it grows, no
     * final copy. Only ever given proper Unicode (lone surrogates are refused before they are
     * written), but a pair may arrive split across two writes.
     */
    private static final class Utf8Chunks extends Writer {
        private static final int CHUNK = 1 << 20;
        private final List<byte[]> full = new ArrayList<>();
        private byte[] current = new byte[256];
        private int used;
        private long total;
        private char pendingHigh;

        @Override
        public void write(char[] cbuf, int off, int len) {
            for (int i = off; i < off + len; i++) write(cbuf[i]);
        }

        @Override
        public void write(String str, int off, int len) {
            for (int i = off; i < off + len; i++) write(str.charAt(i));
        }

        @Override
        public void write(int c) {
            char ch = (char) c;
            if (pendingHigh != 0) {
                int cp = Character.toCodePoint(pendingHigh, ch);
                pendingHigh = 0;
                put((byte) (0xF0 | (cp >> 18)));
                put((byte) (0x80 | ((cp >> 12) & 0x3F)));
                put((byte) (0x80 | ((cp >> 6) & 0x3F)));
                put((byte) (0x80 | (cp & 0x3F)));
            } else if (ch < 0x80) {
                put((byte) ch);
            } else if (ch < 0x800) {
                put((byte) (0xC0 | (ch >> 6)));
                put((byte) (0x80 | (ch & 0x3F)));
            } else if (Character.isHighSurrogate(ch)) {
                pendingHigh = ch;
            } else {
                put((byte) (0xE0 | (ch >> 12)));
                put((byte) (0x80 | ((ch >> 6) & 0x3F)));
                put((byte) (0x80 | (ch & 0x3F)));
            }
        }

        private void put(byte b) {
            if (used == current.length) {
                if (current.length < CHUNK) {
                    current = java.util.Arrays.copyOf(current, Math.min(CHUNK, current.length * 4));
                } else {
                    full.add(current);
                    current = new byte[CHUNK];
                    used = 0;
                }
            }
            current[used++] = b;
            total++;
        }

        List<byte[]> chunks() {
            List<byte[]> all = new ArrayList<>(full);
            all.add(java.util.Arrays.copyOf(current, used));
            return all;
        }

        long bytes() {
            return total;
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
        }
    }
}
