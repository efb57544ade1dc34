package dev.blenderjobs.channel;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.Timing;
import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ChannelCodecTest {
    private static final String SHA = "0123456789abcdef".repeat(4);

    private static JsonObject json(String text) {
        return JsonParser.parseString(text.replace('\'', '"')).getAsJsonObject();
    }

    private static String violation(String text) {
        return assertThrows(ProtocolViolation.class, () -> ChannelCodec.decode(json(text))).getMessage();
    }

    @Test
    void everyWorkerMessageDecodesToItsType() throws Exception {
        FromWorker.Hello hello = assertInstanceOf(FromWorker.Hello.class, ChannelCodec.decode(json(
                "{'type':'hello','protocol':4,'runtimeVersion':'0.2.0','worker':'w1.1','pid':42,"
                        + "'blenderVersion':'3.4.1','pythonVersion':'3.10.8','proof':'" + SHA + "'}")));
        assertEquals(4, hello.protocol());
        assertEquals(42, hello.pid());
        FromWorker.Progress p = assertInstanceOf(FromWorker.Progress.class, ChannelCodec.decode(json(
                "{'type':'progress','jobId':'job-0123456789ab','progress':0.25,'message':'a quarter','reportedAt':7}")));
        assertEquals(0.25, p.progress());
        assertEquals("a quarter", p.message());
        FromWorker.Completed c = assertInstanceOf(FromWorker.Completed.class, ChannelCodec.decode(json(
                "{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':12,'pythonDataSha256':'" + SHA
                        + "','dataBlocks':{'objects':['Cube']},'timing':{'scriptMs':1.5}}")));
        assertEquals(12, c.pythonDataBytes());
        assertEquals("Cube", c.dataBlocks().getAsJsonArray("objects").get(0).getAsString());
        assertEquals(new Timing(null, 1.5, null, null), c.timing());
        FromWorker.Failed f = assertInstanceOf(FromWorker.Failed.class, ChannelCodec.decode(json(
                "{'type':'failed','jobId':'job-0123456789ab','kind':'SCRIPT_ERROR','message':'boom','traceback':'tb'}")));
        assertEquals(FailureKind.SCRIPT_ERROR, f.kind());
        FromWorker.Started started = assertInstanceOf(FromWorker.Started.class, ChannelCodec.decode(json(
                "{'type':'started','jobId':'job-0123456789ab'}")));
        assertEquals("job-0123456789ab", started.jobId());
    }

    @Test
    void startedAndIdleDecodeAndAreCheckedLikeTheOthers() throws Exception {
        assertNull(assertInstanceOf(FromWorker.Idle.class, ChannelCodec.decode(json("{'type':'idle'}"))).recycle());
        FromWorker.Idle idle = assertInstanceOf(FromWorker.Idle.class, ChannelCodec.decode(json(
                "{'type':'idle','recycle':'the job left 1 thread running (Thread-1)'}")));
        assertEquals("the job left 1 thread running (Thread-1)", idle.recycle());
        assertNull(idle.jobId());
        assertTrue(violation("{'type':'idle','recycle':true}").contains("\"recycle\" that is not a string"));
        assertTrue(violation("{'type':'idle','recycle':'" + "x".repeat(ChannelCodec.MAX_RECYCLE_CHARS + 1) + "'}")
                .contains("at most"));
        assertTrue(violation("{'type':'idle','jobId':'job-0123456789ab'}").contains("unknown field \"jobId\""));
        assertTrue(violation("{'type':'started','jobId':'job-0123456789ab','at':1}").contains("unknown field \"at\""));
        assertTrue(violation("{'type':'started'}").contains("without \"jobId\""));
    }

    @Test
    void malformedMessagesAreViolationsNamingWhatIsWrong() {
        assertTrue(violation("{'type':'result','jobId':'job-0123456789ab','ok':true}").contains("unknown type \"result\""));
        assertTrue(violation("{'jobId':'job-0123456789ab'}").contains("without \"type\""));
        assertTrue(violation("{'type':'progress','jobId':'job-0123456789ab','progress':'half','reportedAt':1}")
                .contains("\"progress\" that is not a number"));
        assertTrue(violation("{'type':'progress','jobId':'job-0123456789ab','progress':1.5,'reportedAt':1}")
                .contains("0.0 to 1.0"));
        assertTrue(violation("{'type':'progress','jobId':'../../etc','progress':0.5,'reportedAt':1}")
                .contains("not a job id"));
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':-1,'pythonDataSha256':'"
                + SHA + "'}").contains("out of range"));
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':1,'pythonDataSha256':'xyz'}")
                .contains("64 hex digits"));
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':1,'pythonDataSha256':'"
                + SHA + "','pythonDataFile':'/etc/passwd'}").contains("unknown field \"pythonDataFile\""),
                "a path from a worker is never accepted");
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':1,'pythonDataSha256':'"
                + SHA + "','dataBlocks':{'objects':[1]}}").contains("not a string"));
        // Kept per finished job, so only the runtime's four stages, each a number.
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':1,'pythonDataSha256':'"
                + SHA + "','timing':{'scriptMs':1,'k1':2}}").contains("unknown stage \"k1\""));
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':1,'pythonDataSha256':'"
                + SHA + "','timing':{'scriptMs':'1'}}").contains("not a number"));
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':1,'pythonDataSha256':'"
                + SHA + "','timing':[1]}").contains("not an object"));
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':1,'pythonDataSha256':'"
                + SHA + "','timing':{'scriptMs':1e400}}").contains("Infinity ms"), "no infinite double in a record");
        assertTrue(violation("{'type':'completed','jobId':'job-0123456789ab','pythonDataBytes':1,'pythonDataSha256':'"
                + SHA + "','timing':{'scriptMs':-1}}").contains("it must be 0 to"));
    }

    private static FrameCodec.Frame binary(String header, byte[] data) {
        return new FrameCodec.Frame(json(header), data);
    }

    private static String binaryViolation(String header, byte[] data) {
        return assertThrows(ProtocolViolation.class, () -> ChannelCodec.decode(binary(header, data))).getMessage();
    }

    @Test
    void consoleAndResultChunksDecodeFromBinaryFramesOnly() throws Exception {
        byte[] bytes = {(byte) 0xff, 0, '\n'};
        FromWorker.Console c = assertInstanceOf(FromWorker.Console.class,
                ChannelCodec.decode(binary("{'type':'console','jobId':'job-0123456789ab'}", bytes)));
        assertEquals("job-0123456789ab", c.jobId());
        assertEquals(3, c.data().length);
        assertNull(assertInstanceOf(FromWorker.Console.class, ChannelCodec.decode(binary("{'type':'console'}", bytes)))
                .jobId(), "output outside any job");
        FromWorker.ResultChunk r = assertInstanceOf(FromWorker.ResultChunk.class, ChannelCodec.decode(binary(
                "{'type':'result','jobId':'job-0123456789ab','name':'pythonData','offset':1048576,'last':true}", bytes)));
        assertEquals("pythonData", r.name());
        assertEquals(1048576, r.offset());
        assertTrue(r.last());
        // A JSON message decoded through the frame path is the same as before.
        assertInstanceOf(FromWorker.Progress.class, ChannelCodec.decode(new FrameCodec.Frame(json(
                "{'type':'progress','jobId':'job-0123456789ab','progress':0.5,'reportedAt':1}"), null)));
    }

    @Test
    void chunksAreCheckedFieldByField() {
        byte[] b = new byte[1];
        assertTrue(violation("{'type':'console','jobId':'job-0123456789ab'}").contains("only as binary frames"));
        assertTrue(binaryViolation("{'type':'progress','jobId':'job-0123456789ab','progress':0.5,'reportedAt':1}", b)
                .contains("binary frame of type \"progress\""));
        assertTrue(binaryViolation("{'type':'console','jobId':'../x'}", b).contains("not a job id"));
        assertTrue(binaryViolation("{'type':'console','pid':1}", b).contains("unknown field \"pid\""));
        assertTrue(binaryViolation("{'type':'result','jobId':'job-0123456789ab','name':'../../etc/passwd','offset':0,"
                + "'last':true}", b).contains("only"), "a worker never names a file");
        assertTrue(binaryViolation("{'type':'result','jobId':'job-0123456789ab','name':'pythonData','offset':-1,"
                + "'last':true}", b).contains("out of range"));
        assertTrue(binaryViolation("{'type':'result','jobId':'job-0123456789ab','name':'pythonData','offset':0,"
                + "'last':'yes'}", b).contains("not true or false"));
        assertTrue(binaryViolation("{'type':'console'}", new byte[ChannelCodec.MAX_CHUNK_BYTES + 1]).contains("at most"));
    }

    @Test
    void aFileChunkIsABinaryFrameWithItsHeader() throws Exception {
        byte[] data = "print('hi')".getBytes(StandardCharsets.UTF_8);
        byte[] frame = ChannelCodec.frame(new ToWorker.FileChunk("job-0123456789ab", "script", 0, true, data));
        FrameCodec.Frame read = FrameCodec.readFrame(new DataInputStream(new java.io.ByteArrayInputStream(frame)));
        assertEquals(json("{'type':'file','jobId':'job-0123456789ab','name':'script','offset':0,'last':true}"),
                read.message());
        org.junit.jupiter.api.Assertions.assertArrayEquals(data, read.data());
    }

    @Test
    void aWorkerMayReportOnlyTheKindsItCanSee() {
        for (FailureKind kind : FailureKind.values()) {
            String text = "{'type':'failed','jobId':'job-0123456789ab','kind':'" + kind + "','message':'m'}";
            if (FromWorker.REPORTABLE.contains(kind)) {
                assertInstanceOf(FromWorker.Failed.class, assertDoesNotThrowDecode(text));
            } else {
                assertTrue(violation(text).contains("may not report"), kind.name());
            }
        }
        assertTrue(violation("{'type':'failed','jobId':'job-0123456789ab','kind':'SOMETHING_NEW','message':'m'}")
                .contains("SOMETHING_NEW"), "an unknown kind is an error, never mapped silently");
    }

    private static FromWorker assertDoesNotThrowDecode(String text) {
        try {
            return ChannelCodec.decode(json(text));
        } catch (ProtocolViolation e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void serverMessagesCarryTheirTypeAndFields() {
        JobSpec spec = new JobSpec("n", "/s.py", 5, 2, JobSpec.Isolation.PROCESS, 3, null, null);
        JsonObject run = ChannelCodec.encode(new ToWorker.Run("job-0123456789ab", 2, spec,
                new ToWorker.RunFiles("/d/script.py", "/d/passed_data.json", null, null, "/d/work", "/d/result")));
        assertEquals("run", run.get("type").getAsString());
        assertEquals(2, run.get("attempt").getAsInt());
        assertEquals("process", run.getAsJsonObject("spec").get("isolation").getAsString());
        assertEquals(3, run.getAsJsonObject("spec").get("priority").getAsInt());
        assertEquals("/d/result", run.getAsJsonObject("files").get("resultDir").getAsString());
        assertEquals("{\"type\":\"shutdown\"}", ChannelCodec.encode(new ToWorker.Shutdown()).toString());
        assertEquals("challenge", ChannelCodec.encode(new ToWorker.Challenge("ab")).get("type").getAsString());
    }

    // ------------------------------------------------------------------ handshake, over a real loopback socket

    private static final byte[] SECRET = "s3cret".getBytes(StandardCharsets.UTF_8);

    /** Connects as a worker would: reads the challenge, answers hello; returns the server's reply. */
    private static JsonObject actAsWorker(int port, int protocol, byte[] secret, String worker) throws IOException {
        try (Socket s = new Socket(InetAddress.getLoopbackAddress(), port)) {
            DataInputStream in = new DataInputStream(s.getInputStream());
            JsonObject challenge = FrameCodec.read(in);
            JsonObject hello = json("{'type':'hello','runtimeVersion':'0.2.0','pid':1,'blenderVersion':'3.4.1',"
                    + "'pythonVersion':'3.10.8'}");
            hello.addProperty("protocol", protocol);
            hello.addProperty("worker", worker);
            hello.addProperty("proof", WorkerChannel.proof(secret, challenge.get("nonce").getAsString(), worker));
            FrameCodec.write(new DataOutputStream(s.getOutputStream()), hello);
            return FrameCodec.read(in);
        }
    }

    private static Object handshake(int protocol, byte[] secret, String worker) throws Exception {
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            CompletableFuture<JsonObject> reply = CompletableFuture.supplyAsync(() -> {
                try {
                    return actAsWorker(server.getLocalPort(), protocol, secret, worker);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            Object outcome;
            try (Socket s = server.accept()) {
                try {
                    WorkerChannel c = WorkerChannel.accept(s, w -> "w1.1".equals(w) ? SECRET : null,
                            Duration.ofSeconds(5), Duration.ofSeconds(5));
                    outcome = c.hello();
                } catch (WorkerChannel.Refusal r) {
                    outcome = r;
                }
            }
            JsonObject answer = reply.get(5, TimeUnit.SECONDS);
            return outcome instanceof WorkerChannel.Refusal ? new Object[]{outcome, answer} : outcome;
        }
    }

    @Test
    void aWorkerWithTheSecretIsWelcomed() throws Exception {
        FromWorker.Hello hello = assertInstanceOf(FromWorker.Hello.class, handshake(ChannelCodec.PROTOCOL, SECRET, "w1.1"));
        assertEquals("w1.1", hello.worker());
    }

    @Test
    void aWrongSecretOrAnUnknownWorkerIsRefusedWithTheReason() throws Exception {
        Object[] wrong = (Object[]) handshake(ChannelCodec.PROTOCOL, "guess".getBytes(StandardCharsets.UTF_8), "w1.1");
        assertTrue(((Exception) wrong[0]).getMessage().contains("did not prove"), ((Exception) wrong[0]).getMessage());
        assertEquals("refused", ((JsonObject) wrong[1]).get("type").getAsString());
        Object[] stranger = (Object[]) handshake(ChannelCodec.PROTOCOL, SECRET, "w9.9");
        assertTrue(((Exception) stranger[0]).getMessage().contains("w9.9"));
    }

    @Test
    void aRuntimeOfAnotherProtocolIsRefusedWithAClearMessage() throws Exception {
        Object[] old = (Object[]) handshake(1, SECRET, "w1.1");
        String reason = ((JsonObject) old[1]).get("reason").getAsString();
        assertTrue(reason.contains("protocol 1") && reason.contains("protocol " + ChannelCodec.PROTOCOL)
                && reason.contains("runtime that ships with this server"), reason);
    }

    @Test
    void aRuntimeOfEitherHalfOfProtocol3IsRefused() throws Exception {
        // Version 3 meant started/idle on one branch and binary frames on the other; the merged
        // protocol is 4, so neither half-way runtime is ever given a job.
        assertEquals(4, ChannelCodec.PROTOCOL);
        for (int old : new int[] {2, 3}) {
            Object[] refused = (Object[]) handshake(old, SECRET, "w1.1");
            assertEquals("refused", ((JsonObject) refused[1]).get("type").getAsString());
            String reason = ((JsonObject) refused[1]).get("reason").getAsString();
            assertTrue(reason.contains("protocol " + old) && reason.contains("protocol 4"), reason);
        }
    }

    @Test
    void framesThatAreNotJsonObjectsAreViolations() throws Exception {
        assertThrows(ProtocolViolation.class, () -> FrameCodec.read(frame("[1,2]")));
        assertThrows(ProtocolViolation.class, () -> FrameCodec.read(frame("{not json")));
        assertNull(FrameCodec.read(new DataInputStream(new java.io.ByteArrayInputStream(new byte[0]))));
    }

    private static DataInputStream frame(String body) throws IOException {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        new DataOutputStream(out).writeInt(b.length);
        out.write(b);
        return new DataInputStream(new java.io.ByteArrayInputStream(out.toByteArray()));
    }
}
