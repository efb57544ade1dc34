package dev.blenderjobs.channel;

import com.google.gson.JsonObject;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Files over a real channel: the server streams an input as binary file chunks, in order, the
 * last one marked; an unreadable file is skipped (no last chunk) and the channel goes on; binary
 * chunks from the worker arrive decoded, in order with its JSON messages.
 */
@Timeout(20)
class WorkerChannelFilesTest {
    private static final byte[] SECRET = "s3cret".getBytes(StandardCharsets.UTF_8);
    private static final String JOB = "job-0123456789ab";

    /** A connected pair: the server's channel and the worker's raw socket, past the handshake. */
    private record Pair(WorkerChannel channel, Socket worker, DataInputStream in, DataOutputStream out,
                        BlockingQueue<Object> received) implements AutoCloseable {
        @Override
        public void close() throws Exception {
            channel.close();
            worker.close();
        }
    }

    private static Pair connect() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Socket w = new Socket(InetAddress.getLoopbackAddress(), server.getLocalPort());
            DataInputStream in = new DataInputStream(w.getInputStream());
            DataOutputStream out = new DataOutputStream(w.getOutputStream());
            CompletableFuture<Void> worker = CompletableFuture.runAsync(() -> {
                try {
                    JsonObject challenge = FrameCodec.read(in);
                    JsonObject hello = new JsonObject();
                    hello.addProperty("type", "hello");
                    hello.addProperty("protocol", ChannelCodec.PROTOCOL);
                    hello.addProperty("runtimeVersion", "0.2.0");
                    hello.addProperty("worker", "w1.1");
                    hello.addProperty("pid", 1);
                    hello.addProperty("blenderVersion", "3.4.1");
                    hello.addProperty("pythonVersion", "3.10.8");
                    hello.addProperty("proof", WorkerChannel.proof(SECRET, challenge.get("nonce").getAsString(), "w1.1"));
                    FrameCodec.write(out, hello);
                    assertEquals("welcome", FrameCodec.read(in).get("type").getAsString());
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            Socket s = server.accept();
            WorkerChannel c = WorkerChannel.accept(s, id -> SECRET, Duration.ofSeconds(5), Duration.ofSeconds(5));
            worker.get(5, TimeUnit.SECONDS);
            BlockingQueue<Object> received = new LinkedBlockingQueue<>();
            c.start("test", new WorkerChannel.Listener() {
                @Override
                public void message(FromWorker message) {
                    received.add(message);
                }

                @Override
                public void violation(ProtocolViolation violation) {
                    received.add(violation);
                }

                @Override
                public void closed(String why) {
                    received.add("closed: " + why);
                }
            });
            return new Pair(c, w, in, out, received);
        }
    }

    private static List<FrameCodec.Frame> readFrames(DataInputStream in, int n) throws Exception {
        List<FrameCodec.Frame> frames = new ArrayList<>();
        for (int i = 0; i < n; i++) frames.add(FrameCodec.readFrame(in));
        return frames;
    }

    @Test
    void aFileTravelsInChunksInOrderAndTheRunAfterIt(@TempDir Path dir) throws Exception {
        byte[] big = new byte[ChannelCodec.CHUNK_BYTES * 2 + 12345];
        new Random(7).nextBytes(big);
        Path file = dir.resolve("scene.blend");
        Files.write(file, big);
        Path exact = dir.resolve("exact");
        Files.write(exact, new byte[ChannelCodec.CHUNK_BYTES]);
        try (Pair p = connect()) {
            p.channel().sendFile(JOB, "blendFile", file);
            p.channel().sendFile(JOB, "library", exact);
            p.channel().sendFile(JOB, "script", dir.resolve("missing.py"));
            p.channel().send(new ToWorker.Shutdown());
            List<FrameCodec.Frame> frames = readFrames(p.in(), 3 + 2 + 1);
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            for (int i = 0; i < 3; i++) {
                JsonObject h = frames.get(i).message();
                assertEquals("file", h.get("type").getAsString());
                assertEquals("blendFile", h.get("name").getAsString());
                assertEquals(JOB, h.get("jobId").getAsString());
                assertEquals(got.size(), h.get("offset").getAsLong(), "chunks in order, without gaps");
                assertEquals(i == 2, h.get("last").getAsBoolean());
                got.write(frames.get(i).data());
            }
            assertArrayEquals(big, got.toByteArray());
            assertEquals(ChannelCodec.CHUNK_BYTES, frames.get(3).data().length);
            assertFalse(frames.get(3).message().get("last").getAsBoolean());
            assertEquals(0, frames.get(4).data().length, "a file of whole chunks ends with an empty last chunk");
            assertTrue(frames.get(4).message().get("last").getAsBoolean());
            // The missing file sent nothing; the channel went on with the next message.
            assertEquals("shutdown", frames.get(5).message().get("type").getAsString());
        }
    }

    @Test
    void theChannelIsDrainedOnlyOnceTheFilesAndTheMessageAfterThemHaveGoneOut(@TempDir Path dir) throws Exception {
        // The pool's take timeout for a pilot starts when this says true (Worker.delivered).
        int chunks = 32; // far more than the loopback socket's buffers hold
        Path file = dir.resolve("big.blend");
        Files.write(file, new byte[ChannelCodec.CHUNK_BYTES * chunks + 1]);
        try (Pair p = connect()) {
            assertTrue(p.channel().drained(), "nothing queued");
            p.channel().sendFile(JOB, "blendFile", file);
            p.channel().send(new ToWorker.Shutdown());
            Thread.sleep(300);
            assertFalse(p.channel().drained(), "the worker reads nothing: the file and the message wait");
            List<FrameCodec.Frame> frames = readFrames(p.in(), chunks + 1 + 1);
            assertEquals("shutdown", frames.get(chunks + 1).message().get("type").getAsString());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (!p.channel().drained()) {
                assertTrue(System.nanoTime() < deadline, "drained once everything was written");
                Thread.sleep(5);
            }
        }
    }

    @Test
    void binaryChunksFromTheWorkerArriveDecodedInOrder() throws Exception {
        try (Pair p = connect()) {
            JsonObject console = new JsonObject();
            console.addProperty("type", "console");
            console.addProperty("jobId", JOB);
            p.out().write(FrameCodec.encodeBinary(console, "hi\n".getBytes(StandardCharsets.UTF_8), 0, 3));
            JsonObject progress = new JsonObject();
            progress.addProperty("type", "progress");
            progress.addProperty("jobId", JOB);
            progress.addProperty("progress", 0.5);
            progress.addProperty("reportedAt", 1);
            FrameCodec.write(p.out(), progress);
            JsonObject result = new JsonObject();
            result.addProperty("type", "result");
            result.addProperty("jobId", JOB);
            result.addProperty("name", "pythonData");
            result.addProperty("offset", 0);
            result.addProperty("last", true);
            p.out().write(FrameCodec.encodeBinary(result, "{}".getBytes(StandardCharsets.UTF_8), 0, 2));
            p.out().flush();
            FromWorker.Console c = assertInstanceOf(FromWorker.Console.class, p.received().poll(5, TimeUnit.SECONDS));
            assertEquals("hi\n", new String(c.data(), StandardCharsets.UTF_8));
            assertInstanceOf(FromWorker.Progress.class, p.received().poll(5, TimeUnit.SECONDS));
            FromWorker.ResultChunk r = assertInstanceOf(FromWorker.ResultChunk.class, p.received().poll(5, TimeUnit.SECONDS));
            assertEquals("{}", new String(r.data(), StandardCharsets.UTF_8));
            // A binary frame of a JSON-only type breaks the protocol: reported, then the channel closes.
            p.out().write(FrameCodec.encodeBinary(progress, new byte[1], 0, 1));
            p.out().flush();
            Object v = p.received().poll(5, TimeUnit.SECONDS);
            assertNotNull(v);
            assertInstanceOf(ProtocolViolation.class, v, String.valueOf(v));
            assertTrue(String.valueOf(p.received().poll(5, TimeUnit.SECONDS)).startsWith("closed"));
        }
    }
}
