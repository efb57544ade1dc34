package dev.blenderjobs.wire;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import dev.blenderjobs.wire.messages.Messages.JobLogParams;
import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressValue;
import org.eclipse.lsp4j.jsonrpc.json.MessageJsonHandler;
import org.eclipse.lsp4j.jsonrpc.messages.NotificationMessage;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseMessage;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The queue between the server and a client that may stop reading. */
class OutgoingQueueTest {
    private final MessageJsonHandler json = new MessageJsonHandler(Map.of());

    /** A client's stdin: nothing is taken until open() (a client that does not read), then everything. */
    static final class Client extends OutputStream {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        private boolean reading;

        synchronized void read() {
            reading = true;
            notifyAll();
        }

        @Override
        public synchronized void write(int b) throws IOException {
            write(new byte[]{(byte) b}, 0, 1);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) throws IOException {
            while (!reading) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    throw new java.io.InterruptedIOException();
                }
            }
            bytes.write(b, off, len);
        }

        /** Every message written so far, parsed. */
        synchronized List<JsonObject> messages() {
            String all = bytes.toString(StandardCharsets.UTF_8);
            List<JsonObject> out = new ArrayList<>();
            int pos = 0;
            while (pos < all.length()) {
                int headerEnd = all.indexOf("\r\n\r\n", pos);
                int length = Integer.parseInt(all.substring(pos + "Content-Length: ".length(), headerEnd));
                // The body's length is in bytes; these tests send ASCII only.
                out.add(JsonParser.parseString(all.substring(headerEnd + 4, headerEnd + 4 + length)).getAsJsonObject());
                pos = headerEnd + 4 + length;
            }
            return out;
        }
    }

    static NotificationMessage note(String method, Object params) {
        NotificationMessage n = new NotificationMessage();
        n.setJsonrpc("2.0");
        n.setMethod(method);
        n.setParams(params);
        return n;
    }

    static NotificationMessage progress(String job, double value) {
        return note("job/progress", new JobProgressParams(job, value, "step " + value, 1));
    }

    static NotificationMessage state(String job, String state) {
        return note("job/stateChanged", new JobStateChangedParams(job, null, state, "ACTIVE", 1, null));
    }

    static ResponseMessage answer(int id) {
        ResponseMessage r = new ResponseMessage();
        r.setJsonrpc("2.0");
        r.setId(id);
        r.setResult(Map.of("answer", id));
        return r;
    }

    /** "answer N", "progress J V", "state J S", "$/progress T kind", "showMessage kind" per message. */
    static List<String> summary(List<JsonObject> messages) {
        List<String> out = new ArrayList<>();
        for (JsonObject m : messages) {
            if (m.has("id")) {
                out.add("answer " + m.get("id").getAsInt());
                continue;
            }
            JsonObject p = m.getAsJsonObject("params");
            out.add(switch (m.get("method").getAsString()) {
                case "job/progress" -> "progress " + p.get("jobId").getAsString() + " " + p.get("progress").getAsDouble();
                case "job/stateChanged" -> "state " + p.get("jobId").getAsString() + " " + p.get("state").getAsString();
                case "$/progress" -> "$/progress " + p.get("token").getAsString() + " "
                        + p.getAsJsonObject("value").get("kind").getAsString();
                case "window/showMessage" -> "showMessage " + p.get("kind").getAsString();
                case "job/log" -> "log " + p.get("jobId").getAsString() + " " + p.get("text").getAsString();
                default -> m.toString();
            });
        }
        return out;
    }

    private OutgoingQueue queue(Client client, OutgoingQueue.Limits limits) {
        return new OutgoingQueue(client, json, m -> { }, limits);
    }

    @Test
    void noCallerEverWaitsForAClientThatDoesNotRead() {
        Client client = new Client();
        OutgoingQueue q = queue(client, OutgoingQueue.Limits.DEFAULT);
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            for (int i = 0; i < 20_000; i++) {
                q.consume(progress("job-" + (i % 50), i / 20_000.0));
                if (i % 100 == 0) q.consume(state("job-" + (i % 50), "QUEUED"));
                if (i % 10 == 0) q.consume(answer(i));
            }
        }, "consume blocked on a client that does not read");
        client.read();
    }

    @Test
    void progressIsCoalescedInPlaceButNeverMovesPastAnotherNotificationAndAnswersAreAllKept() throws Exception {
        Client client = new Client();
        OutgoingQueue q = queue(client, OutgoingQueue.Limits.DEFAULT);
        q.consume(answer(1)); // taken by the writer, which then waits for the client
        Thread.sleep(100);
        q.consume(progress("A", 0.1));
        q.consume(progress("B", 0.1));
        q.consume(progress("A", 0.2)); // replaces A 0.1 where it stands
        q.consume(answer(2)); // answers do not seal: they have no order with notifications
        q.consume(progress("B", 0.2)); // replaces B 0.1
        q.consume(state("A", "QUEUED")); // seals: a retry's progress must not overtake this
        q.consume(progress("A", 0.3));
        q.consume(note("$/progress", new WorkDoneProgressParams(new JsonPrimitive("t"),
                new WorkDoneProgressValue("report", null, null, null, 30))));
        q.consume(progress("A", 0.4));
        q.consume(note("$/progress", new WorkDoneProgressParams(new JsonPrimitive("t"),
                new WorkDoneProgressValue("report", null, null, null, 40))));
        q.consume(state("A", "COMPLETED"));
        q.consume(note("$/progress", new WorkDoneProgressParams(new JsonPrimitive("t"),
                new WorkDoneProgressValue("end", null, null, "completed", null))));
        client.read();
        assertTrue(q.drain(Duration.ofSeconds(10)));
        assertEquals(List.of("answer 1", "progress A 0.2", "progress B 0.2", "answer 2", "state A QUEUED",
                        "progress A 0.4", "$/progress t report", "state A COMPLETED", "$/progress t end"),
                summary(client.messages()));
        assertEquals(4, q.coalesced());
        assertEquals(40, client.messages().get(6).getAsJsonObject("params").getAsJsonObject("value")
                .get("percentage").getAsInt(), "the latest report replaced the earlier one");
    }

    @Test
    void beyondItsLimitsTheQueueDropsAndCountsNotificationsAndTellsTheClientWhenItReadsAgain() throws Exception {
        Client client = new Client();
        // About 100 bytes a message: progress stops after ~20 waiting, everything after ~50.
        OutgoingQueue q = queue(client, new OutgoingQueue.Limits(2_000, 5_000));
        q.consume(answer(0));
        Thread.sleep(100);
        for (int i = 0; i < 100; i++) q.consume(progress("job-" + i, 0.5));
        for (int i = 0; i < 100; i++) q.consume(state("job-" + i, "COMPLETED"));
        for (int i = 1; i <= 100; i++) q.consume(answer(i)); // answers are never dropped
        client.read();
        assertTrue(q.drain(Duration.ofSeconds(10)));
        List<String> got = summary(client.messages());
        long progress = got.stream().filter(s -> s.startsWith("progress")).count();
        long states = got.stream().filter(s -> s.startsWith("state")).count();
        long answers = got.stream().filter(s -> s.startsWith("answer")).count();
        assertTrue(progress > 0 && progress < 100, "some progress dropped: " + progress);
        assertTrue(states > 0 && states < 100, "states dropped at the hard limit: " + states);
        assertEquals(101, answers);
        assertEquals("showMessage " + OutgoingQueue.DROPPED_KIND, got.get(got.size() - 1), got.toString());
        JsonObject notice = client.messages().get(got.size() - 1).getAsJsonObject("params");
        assertEquals(1, notice.get("type").getAsInt(), "job states were lost: an error");
        String text = notice.get("message").getAsString();
        assertTrue(text.contains((100 - states) + " job notifications") && text.contains((100 - progress)
                + " progress notifications") && text.contains("getJob"), text);

        // Reading again, nothing is dropped any more, and only one notice was sent.
        q.consume(progress("job-x", 0.9));
        q.consume(state("job-x", "COMPLETED"));
        assertTrue(q.drain(Duration.ofSeconds(10)));
        List<String> after = summary(client.messages());
        assertEquals(List.of("progress job-x 0.9", "state job-x COMPLETED"), after.subList(got.size(), after.size()));
    }

    @Test
    void liveLogsKeepTheirPlaceButGiveWayToJobStatesBeyondTheSoftLimit() throws Exception {
        Client client = new Client();
        // About 100 bytes a message: job/log stops after ~20 waiting; job states are kept far beyond.
        OutgoingQueue q = queue(client, new OutgoingQueue.Limits(2_000, 100_000));
        q.consume(answer(0));
        Thread.sleep(100);
        q.consume(progress("A", 0.1));
        q.consume(note("job/log", new JobLogParams("A", "line 0")));
        q.consume(progress("A", 0.2)); // after the log line: not merged into 0.1, which the line sealed
        for (int i = 1; i < 100; i++) q.consume(note("job/log", new JobLogParams("A", "line " + i)));
        for (int i = 0; i < 100; i++) q.consume(state("job-" + i, "COMPLETED"));
        client.read();
        assertTrue(q.drain(Duration.ofSeconds(10)));
        List<String> got = summary(client.messages());
        assertEquals(List.of("answer 0", "progress A 0.1", "log A line 0", "progress A 0.2", "log A line 1"),
                got.subList(0, 5), "in order, the progress before the line not replaced by the one after it");
        long logs = got.stream().filter(m -> m.startsWith("log ")).count();
        long states = got.stream().filter(m -> m.startsWith("state ")).count();
        assertTrue(logs > 1 && logs < 100, "job/log dropped beyond the soft limit: " + logs);
        assertEquals(100, states, "no job state was pushed out by the log");
        List<String> lines = got.stream().filter(m -> m.startsWith("log ")).toList();
        for (int i = 0; i < lines.size(); i++) assertEquals("log A line " + i, lines.get(i), "the lines kept are the first ones, in order");
        assertEquals("showMessage " + OutgoingQueue.DROPPED_KIND, got.get(got.size() - 1), got.toString());
        JsonObject notice = client.messages().get(got.size() - 1).getAsJsonObject("params");
        assertEquals(2, notice.get("type").getAsInt(), "only log text was lost: a warning");
        String text = notice.get("message").getAsString();
        assertTrue(text.contains((100 - logs) + " live-log notifications (job/log)") && text.contains("logFile")
                && !text.contains("job notifications"), text);
    }

    @Test
    void onlyProgressLostIsAWarning() throws Exception {
        Client client = new Client();
        OutgoingQueue q = queue(client, new OutgoingQueue.Limits(1_000, 100_000));
        q.consume(answer(0));
        Thread.sleep(100);
        for (int i = 0; i < 50; i++) q.consume(progress("job-" + i, 0.5));
        client.read();
        assertTrue(q.drain(Duration.ofSeconds(10)));
        List<JsonObject> all = client.messages();
        JsonObject notice = all.get(all.size() - 1).getAsJsonObject("params");
        assertEquals(OutgoingQueue.DROPPED_KIND, notice.get("kind").getAsString());
        assertEquals(2, notice.get("type").getAsInt());
    }

    @Test
    void afterWriteRunsOnceTheMessageIsOut() throws Exception {
        Client client = new Client();
        List<String> seenWhenCalled = new CopyOnWriteArrayList<>();
        OutgoingQueue q = new OutgoingQueue(client, json,
                m -> seenWhenCalled.add(summary(client.messages()).toString()), OutgoingQueue.Limits.DEFAULT);
        q.consume(answer(7));
        Thread.sleep(100);
        assertEquals(List.of(), seenWhenCalled, "not before it is written");
        client.read();
        assertTrue(q.drain(Duration.ofSeconds(10)));
        Thread.sleep(100);
        assertEquals(List.of("[answer 7]"), seenWhenCalled);
    }

    @Test
    void drainGivesUpOnAClientThatDoesNotReadAndABrokenPipeEndsSending() throws Exception {
        Client client = new Client();
        OutgoingQueue q = queue(client, OutgoingQueue.Limits.DEFAULT);
        q.consume(answer(1));
        assertFalse(q.drain(Duration.ofMillis(200)));
        client.read();
        assertTrue(q.drain(Duration.ofSeconds(10)));

        OutputStream closed = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("Broken pipe");
            }
        };
        OutgoingQueue broken = new OutgoingQueue(closed, json, m -> { }, OutgoingQueue.Limits.DEFAULT);
        broken.consume(answer(1));
        assertFalse(broken.drain(Duration.ofSeconds(10)));
        broken.consume(state("A", "COMPLETED")); // dropped quietly, never thrown at the caller
        assertFalse(broken.drain(Duration.ofMillis(10)));
    }

    @Test
    void aFileResultIsStreamedWholeBetweenItsEnvelopeAndTheFileIsClosed(@org.junit.jupiter.api.io.TempDir
                                                                         java.nio.file.Path dir) throws Exception {
        // Three megabytes of JSON, larger than any buffer of the queue: sent as the file holds it.
        StringBuilder text = new StringBuilder("{\"values\":[");
        for (int i = 0; i < 300_000; i++) text.append(i == 0 ? "" : ",").append(i * 10 + 1);
        text.append("],\"name\":\"caf\u00e9\"}");
        java.nio.file.Path file = dir.resolve("python_data.json");
        java.nio.file.Files.writeString(file, text);
        java.nio.channels.FileChannel channel = java.nio.channels.FileChannel.open(file);
        Client client = new Client();
        client.read();
        OutgoingQueue q = queue(client, OutgoingQueue.Limits.DEFAULT);
        ResponseMessage r = answer(7);
        r.setResult(new dev.blenderjobs.wire.messages.JsonFile(channel, channel.size()));
        q.consume(state("A", "ACTIVE"));
        q.consume(r);
        q.consume(answer(8));
        assertTrue(q.drain(Duration.ofSeconds(10)));
        byte[] all = client.bytes.toByteArray();
        // The Content-Length counts bytes (é is two): the frame after it starts exactly there.
        String head = new String(all, 0, 200, StandardCharsets.US_ASCII);
        int first = head.indexOf("\r\n\r\n") + 4;
        int firstLength = Integer.parseInt(head.substring("Content-Length: ".length(), head.indexOf("\r\n")));
        int second = first + firstLength;
        String secondHead = new String(all, second, 40, StandardCharsets.US_ASCII);
        int length = Integer.parseInt(secondHead.substring("Content-Length: ".length(), secondHead.indexOf("\r\n")));
        int bodyAt = second + secondHead.indexOf("\r\n\r\n") + 4;
        JsonObject response = JsonParser.parseString(new String(all, bodyAt, length, StandardCharsets.UTF_8))
                .getAsJsonObject();
        assertEquals(7, response.get("id").getAsInt());
        assertEquals(JsonParser.parseString(text.toString()), response.get("result"));
        assertEquals(300_000, response.getAsJsonObject("result").getAsJsonArray("values").size());
        String rest = new String(all, bodyAt + length, all.length - bodyAt - length, StandardCharsets.UTF_8);
        assertTrue(rest.contains("\"id\":8"), "the next answer follows whole: " + rest);
        assertFalse(channel.isOpen(), "the file is closed once sent");
    }
}
