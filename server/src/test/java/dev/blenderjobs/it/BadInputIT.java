package dev.blenderjobs.it;

import com.google.gson.JsonObject;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bytes a client should never send: each gets an error (or, without a frame, a log line) and the server goes on. */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class BadInputIT {

    static void frame(OutputStream out, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        raw(out, ("Content-Length: " + bytes.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII), bytes);
    }

    static void raw(OutputStream out, byte[]... parts) throws IOException {
        synchronized (out) {
            for (byte[] p : parts) out.write(p);
            out.flush();
        }
    }

    @Test
    void everyMalformedMessageIsAnsweredAndTheServerKeepsServing() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            OutputStream out = s.process.getOutputStream();
            frame(out, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"getStats\",");
            frame(out, "[1, 2, 3]");
            frame(out, "{\"hello\":\"world\"}");
            frame(out, "{\"jsonrpc\":\"2.0\",\"id\":123456789012345678901234567890,\"method\":\"getStats\",\"params\":{}}");
            frame(out, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"getStats\",\"params\":{}}");
            frame(out, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"getJob\",\"params\":[1]}");
            frame(out, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"getJob\",\"params\":{\"jobId\":7}}");
            frame(out, "{\"jsonrpc\":\"2.0\",\"id\":\"string-id\",\"method\":\"getJob\",\"params\":{\"jobId\":\"none\"}}");
            raw(out, "Content-Type: text/plain\r\n\r\n".getBytes(StandardCharsets.US_ASCII)); // no Content-Length

            JsonObject stats = s.callObject("getStats", new JsonObject());
            assertEquals(0, stats.get("total").getAsInt());
            String stdout = s.rawStdout();
            assertTrue(stdout.contains("\"code\":-32700,\"message\":\"Parse error"), stdout);
            assertTrue(stdout.contains("batches are not supported"), stdout);
            assertTrue(stdout.contains("has no \\\"method\\\""), stdout);
            assertTrue(stdout.contains("must be a string or an integer"), stdout);
            assertTrue(stdout.contains("\\\"id\\\" is null"), stdout);
            assertTrue(stdout.contains("\"id\":5,\"error\":{\"code\":-32602"), stdout);
            assertTrue(stdout.contains("\"id\":6,\"error\":{\"code\":-32602"), stdout);
            assertTrue(stdout.contains("\"id\":\"string-id\",\"error\":{\"code\":1001"), stdout);
            s.assertProtocolStreamClean();
            assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {'still': 'working'}"),
                    Duration.ofSeconds(60)).get("state").getAsString());
        }
    }

    @Test
    void negativeGarbledAndLyingContentLengthsNeverStopTheServer() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            OutputStream out = s.process.getOutputStream();
            raw(out, "Content-Length: -5\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            raw(out, "Content-Length: 99999999999999999999\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            raw(out, "Content-Length: abc\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            // Announces 2 GB and sends a few bytes: the next real request must still be served,
            // not swallowed as the rest of the announced body.
            raw(out, "Content-Length: 2147483647\r\n\r\n{\"jsonrpc\":\"2.0\",".getBytes(StandardCharsets.US_ASCII));
            JsonObject stats = s.callObject("getStats", new JsonObject());
            assertEquals(0, stats.get("total").getAsInt());
            String stdout = s.rawStdout();
            assertTrue(stdout.contains("Message of 2147483647 bytes exceeds the server"), stdout);
            assertTrue(s.stderr().contains("a new message starts inside it"), s.stderr());
            s.assertProtocolStreamClean();
            assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(60))
                    .get("state").getAsString());
        }
    }

    /**
     * The adversary's bad frames, each with a body and each followed by 20 valid requests: all
     * 20 are answered every time (before the fix: -32700 for the bad one, then 0 of 20), and so
     * is every bad frame that can be (its own id, or -32700 with id null).
     */
    @Test
    void aBadFrameWithABodyNeverSwallowsTheMessagesAfterIt() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            OutputStream out = s.process.getOutputStream();
            String cafe = "{\"jsonrpc\":\"2.0\",\"id\":100,\"method\":\"getJob\",\"params\":{\"jobId\":\"café\"}}";
            String stats200 = "{\"jsonrpc\":\"2.0\",\"id\":200,\"method\":\"getStats\",\"params\":{}}";
            String stats300 = "{\"jsonrpc\":\"2.0\",\"id\":300,\"method\":\"getStats\",\"params\":{}}";
            String stats400 = "{\"jsonrpc\":\"2.0\",\"id\":400,\"method\":\"getStats\",\"params\":{}}";
            String stats500 = "{\"jsonrpc\":\"2.0\",\"id\":500,\"method\":\"getStats\",\"params\":{}}";
            record Case(String name, String bytes, Integer answeredId) {
            }
            List<Case> cases = List.of(
                    // Counted in characters: one byte short of the UTF-8 body.
                    new Case("length one byte short (café)", "Content-Length: " + cafe.length() + "\r\n\r\n" + cafe, null),
                    new Case("lowercase content-length", "content-length: " + stats200.length() + "\r\n\r\n" + stats200, 200),
                    new Case("negative length with a body", "Content-Length: -5\r\n\r\n" + stats300, null),
                    new Case("trailing junk after a body", "Content-Length: " + stats400.length() + "\r\n\r\n" + stats400
                            + "}}junk", 400),
                    new Case("length 5 too large", "Content-Length: " + (stats500.length() + 5) + "\r\n\r\n" + stats500, 500));
            int parseErrorsBefore = count(s.rawStdout(), "\"code\":-32700");
            int next = 1000;
            for (Case c : cases) {
                List<Integer> ids = new java.util.ArrayList<>();
                StringBuilder valid = new StringBuilder();
                for (int i = 0; i < 20; i++) {
                    int id = next++;
                    ids.add(id);
                    String body = "{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"getStats\",\"params\":{}}";
                    valid.append("Content-Length: ").append(body.length()).append("\r\n\r\n").append(body);
                }
                raw(out, c.bytes().getBytes(StandardCharsets.UTF_8), valid.toString().getBytes(StandardCharsets.UTF_8));
                if (c.answeredId() != null) ids.add(0, c.answeredId());
                List<Integer> missing = awaitAnswers(s, ids, Duration.ofSeconds(20));
                assertEquals(List.of(), missing, c.name() + ": these requests got no answer; server stderr:\n" + s.stderr());
            }
            assertEquals(parseErrorsBefore + 1, count(s.rawStdout(), "\"id\":null,\"error\":{\"code\":-32700"),
                    "the short café body is answered -32700 with id null");
            assertTrue(s.stderr().contains("reading on from"), s.stderr());
            s.assertProtocolStreamClean();
            assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(60))
                    .get("state").getAsString());
        }
    }

    /** Waits until stdout holds an answer (result or error) for each id; returns those still missing. */
    static List<Integer> awaitAnswers(ServerProcess s, List<Integer> ids, Duration within) throws InterruptedException {
        long deadline = System.currentTimeMillis() + within.toMillis();
        while (true) {
            String stdout = s.rawStdout();
            List<Integer> missing = ids.stream().filter(id -> !stdout.contains("\"id\":" + id + ",\"result\"")
                    && !stdout.contains("\"id\":" + id + ",\"error\"")).toList();
            if (missing.isEmpty() || System.currentTimeMillis() > deadline) return missing;
            Thread.sleep(50);
        }
    }

    static int count(String haystack, String needle) {
        int n = 0;
        for (int i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + 1)) n++;
        return n;
    }

    @Test
    void jobRequestsAfterShutdownAreRefusedAndExitStillEndsTheServer() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            s.call("shutdown", null);
            var e = s.callError("getStats", new JsonObject());
            assertEquals(-32600, e.getCode());
            assertTrue(e.getMessage().contains("only exit is accepted now"), e.getMessage());
            assertEquals(-32600, s.callError("addJob", Json.of("scriptText", "python_data = {}")).getCode());
            s.remote.notify("exit", null);
            assertTrue(s.process.waitFor(30, java.util.concurrent.TimeUnit.SECONDS));
            assertEquals(0, s.process.exitValue());
        }
    }

    /** Thousands of seeded, reproducible mutations of valid messages; then a normal job still completes. */
    @Test
    void fuzzedMessagesNeverStopTheServer() throws Exception {
        long seed = Long.getLong("fuzz.seed", 20261123L);
        Random random = new Random(seed);
        List<String> seeds = List.of(
                "{\"jsonrpc\":\"2.0\",\"id\":1000,\"method\":\"getStats\",\"params\":{}}",
                "{\"jsonrpc\":\"2.0\",\"id\":1001,\"method\":\"getProgress\",\"params\":{\"jobId\":\"job-000000000000\"}}",
                "{\"jsonrpc\":\"2.0\",\"id\":1002,\"method\":\"listJobs\",\"params\":{\"states\":[\"QUEUED\",\"FAILED\"]}}",
                "{\"jsonrpc\":\"2.0\",\"id\":1003,\"method\":\"addJob\",\"params\":{\"scriptText\":\"python_data = {}\",\"timeout\":30,\"passedData\":{\"a\":[1,2,{\"b\":\"c\"}]}}}",
                "{\"jsonrpc\":\"2.0\",\"id\":\"s-1004\",\"method\":\"cancelJob\",\"params\":{\"jobId\":\"job-123\"}}",
                "{\"jsonrpc\":\"2.0\",\"method\":\"initialized\",\"params\":{}}");
        try (ServerProcess s = ServerProcess.start("--workers", "1")) {
            OutputStream out = s.process.getOutputStream();
            int messages = 3000;
            for (int i = 0; i < messages; i++) {
                byte[] body = mutate(seeds.get(random.nextInt(seeds.size())).getBytes(StandardCharsets.UTF_8), random);
                raw(out, ("Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII), body);
            }
            assertTrue(s.process.isAlive(), "server died during fuzzing (seed " + seed + ")");
            JsonObject stats = s.callObject("getStats", new JsonObject());
            assertTrue(stats.get("workers").getAsInt() == 1, stats.toString());
            assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {'after': 'fuzz'}"),
                    Duration.ofSeconds(120)).get("state").getAsString(), "seed " + seed);
            s.assertProtocolStreamClean();
        }
    }

    /** Byte flips, deletions, duplications and insertions of JSON-ish tokens. */
    static byte[] mutate(byte[] body, Random random) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(body);
        byte[] b = out.toByteArray();
        int edits = 1 + random.nextInt(4);
        String[] tokens = {"{", "}", "[", "]", "\"", ":", ",", "null", "true", "-1", "1e309", "\\u0000", "\"id\":",
                "\"method\":\"addJob\"", "\"params\":", "99999999999999999999", "\"\\ud800\"", "\u00e9"};
        for (int e = 0; e < edits && b.length > 0; e++) {
            int at = random.nextInt(b.length);
            switch (random.nextInt(4)) {
                case 0 -> b[at] = (byte) random.nextInt(256);
                case 1 -> {
                    int len = Math.min(b.length - at, 1 + random.nextInt(8));
                    byte[] c = new byte[b.length - len];
                    System.arraycopy(b, 0, c, 0, at);
                    System.arraycopy(b, at + len, c, at, b.length - at - len);
                    b = c;
                }
                case 2 -> {
                    int len = Math.min(b.length - at, 1 + random.nextInt(8));
                    byte[] c = new byte[b.length + len];
                    System.arraycopy(b, 0, c, 0, at + len);
                    System.arraycopy(b, at, c, at + len, b.length - at);
                    b = c;
                }
                default -> {
                    byte[] t = tokens[random.nextInt(tokens.length)].getBytes(StandardCharsets.UTF_8);
                    byte[] c = new byte[b.length + t.length];
                    System.arraycopy(b, 0, c, 0, at);
                    System.arraycopy(t, 0, c, at, t.length);
                    System.arraycopy(b, at, c, at + t.length, b.length - at);
                    b = c;
                }
            }
        }
        return b;
    }
}
