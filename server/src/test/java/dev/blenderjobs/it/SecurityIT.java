package dev.blenderjobs.it;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.blenderjobs.channel.ChannelCodec;
import dev.blenderjobs.channel.FrameCodec;
import dev.blenderjobs.channel.WorkerChannel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The worker channel is reachable only by the server's own workers: its loopback port is open
 * only while a Blender starts, and a peer that cannot prove it holds that Blender's secret (an
 * HMAC of the server's challenge) is refused, and never welcomed or given a job. The test plays
 * the intruder in that window, with the real server and real Blender.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class SecurityIT {
    /** WorkerChannel.MAX_HELLO_BYTES: what a peer may send before it has proven itself. */
    private static final int HELLO_LIMIT = 16 * 1024;

    @Test
    void aConnectionToTheWorkerChannelWithoutTheSecretIsRefused() throws Exception {
        // One job per worker, so that each job starts a new Blender: another window if one is missed.
        try (ServerProcess s = ServerProcess.start("--workers", "1", "--max-jobs-per-worker", "1")) {
            Set<Long> seen = new HashSet<>();
            for (int tries = 0; tries < 5; tries++) {
                long deadline = System.currentTimeMillis() + 60_000;
                Integer port = null;
                String worker = null;
                while (port == null && System.currentTimeMillis() < deadline) {
                    for (ProcessHandle p : s.blenderProcesses()) {
                        if (seen.contains(p.pid())) continue;
                        String value = environ(p.pid(), "BLENDER_JOBS_PORT");
                        if (value != null) {
                            seen.add(p.pid());
                            port = Integer.parseInt(value);
                            worker = environ(p.pid(), "BLENDER_JOBS_WORKER");
                        }
                    }
                    if (port == null) Thread.sleep(2);
                }
                if (port == null) fail("no starting Blender found; server stderr:\n" + s.stderr());
                String workerId = worker == null ? "w1.1" : worker;
                int wrongProofBefore = count(s.stderr(), "did not prove it holds the secret");
                int notHelloBefore = count(s.stderr(), "its hello is not one of channel protocol");
                int capsBefore = count(s.stderr(), "(the limit is " + HELLO_LIMIT + ")");
                try {
                    // An intruder who knows the protocol and the worker's id, but not its secret.
                    assertRefused(port, nonce -> frame(hello(workerId,
                            WorkerChannel.proof("not-the-secret".getBytes(StandardCharsets.UTF_8), nonce, workerId))));
                    assertRefused(port, nonce -> frame("{\"type\": \"hello\"}"));
                    // An HTTP request read as a frame header asks for ~1 GB: refused unread.
                    assertRefused(port, nonce -> "GET / HTTP/1.0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                } catch (ConnectException missed) {
                    // The worker connected first and the port closed: try the next Blender.
                    s.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(120));
                    continue;
                }
                // Each refusal is logged before the connection is closed. A probe that queued
                // behind the real worker is reset unread when the port closes, unlogged: then
                // the window was missed, and the next Blender is tried.
                if (!awaitCount(s, "did not prove it holds the secret", wrongProofBefore + 1)
                        || !awaitCount(s, "its hello is not one of channel protocol", notHelloBefore + 1)
                        || !awaitCount(s, "(the limit is " + HELLO_LIMIT + ")", capsBefore + 1)) {
                    s.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(120));
                    continue;
                }
                // The real worker still got in and runs jobs.
                assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(120))
                        .get("state").getAsString());
                return;
            }
            fail("never reached a worker channel before its Blender connected");
        }
    }

    @Test
    void theServerListensOnNoPortOnceItsWorkersHaveConnected() throws Exception {
        try (ServerProcess s = ServerProcess.start("--workers", "2")) {
            // A worker is counted free only once its Blender has connected, and its port is
            // closed before that (two jobs would not do: both may run on the first one ready).
            s.awaitConnectedWorkers(2, Duration.ofSeconds(120));
            assertEquals("COMPLETED", s.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(120))
                    .get("state").getAsString());
            List<String> listening = listeningSockets(s.process.pid());
            assertEquals(List.of(), listening, "the server must not keep a port open");
        }
    }

    private static int count(String text, String part) {
        int n = 0;
        for (int i = text.indexOf(part); i >= 0; i = text.indexOf(part, i + 1)) n++;
        return n;
    }

    /** The server's stderr reaches the test through a reader thread: give it a moment. */
    private static boolean awaitCount(ServerProcess s, String part, int atLeast) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 5_000;
        while (count(s.stderr(), part) < atLeast) {
            if (System.currentTimeMillis() > deadline) return false;
            Thread.sleep(20);
        }
        return true;
    }

    /** A well-formed frame of the worker channel, as an intruder who knows the format would send. */
    private static byte[] frame(String json) throws IOException {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        FrameCodec.write(out, JsonParser.parseString(json).getAsJsonObject());
        return out.toByteArray();
    }

    /** A hello of this server's channel protocol, well-formed in every field but the proof. */
    private static String hello(String worker, String proof) {
        JsonObject hello = new JsonObject();
        hello.addProperty("type", "hello");
        hello.addProperty("protocol", ChannelCodec.PROTOCOL);
        hello.addProperty("runtimeVersion", "0.0.0-intruder");
        hello.addProperty("worker", worker);
        hello.addProperty("pid", ProcessHandle.current().pid());
        hello.addProperty("blenderVersion", "3.4.1");
        hello.addProperty("pythonVersion", "3.10.12");
        hello.addProperty("proof", proof);
        return hello.toString();
    }

    /** What the intruder sends once it has the server's challenge nonce. */
    private interface Probe {
        byte[] answer(String nonce) throws IOException;
    }

    /**
     * Reads the server's challenge, sends the probe's answer, and expects the server to hang up,
     * at most saying why ("refused"): never "welcome", never a job.
     */
    private static void assertRefused(int port, Probe probe) throws IOException {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(15_000);
            DataInputStream in = new DataInputStream(socket.getInputStream());
            JsonObject challenge;
            try {
                challenge = FrameCodec.read(in);
            } catch (java.net.SocketException reset) {
                return; // closed on us before a word: refused (the awaitCount check tells if it was seen)
            }
            if (challenge == null) return;
            assertEquals("challenge", challenge.get("type").getAsString(), challenge.toString());
            DataOutputStream out = new DataOutputStream(socket.getOutputStream());
            try {
                out.write(probe.answer(challenge.get("nonce").getAsString()));
                out.flush();
            } catch (java.net.SocketException closed) {
                return; // hung up on us already
            }
            int refusals = 0;
            while (true) {
                JsonObject frame;
                try {
                    frame = FrameCodec.read(in);
                } catch (java.net.SocketException reset) {
                    break; // closed on us: refused
                }
                if (frame == null) break;
                String type = frame.has("type") ? frame.get("type").getAsString() : frame.toString();
                // Fails at once on "welcome" (or a job), not after waiting for a close that never comes.
                assertEquals("refused", type, "the server must refuse the connection, never welcome it or give it "
                        + "a job: " + frame);
                refusals++;
            }
            assertTrue(refusals <= 1, "one refusal, then the connection is closed");
        }
    }

    private static String environ(long pid, String name) {
        try {
            String all = new String(Files.readAllBytes(Path.of("/proc", Long.toString(pid), "environ")),
                    StandardCharsets.UTF_8);
            for (String entry : all.split("\0")) {
                if (entry.startsWith(name + "=")) return entry.substring(name.length() + 1);
            }
        } catch (IOException | RuntimeException gone) {
            // The process ended or is not ours to read.
        }
        return null;
    }

    /** TCP sockets in LISTEN state owned by the process (from /proc/PID/net/tcp{,6} and its fds). */
    private static List<String> listeningSockets(long pid) throws IOException {
        Set<String> inodes = new HashSet<>();
        try (var fds = Files.list(Path.of("/proc", Long.toString(pid), "fd"))) {
            for (Path fd : fds.toList()) {
                try {
                    String target = Files.readSymbolicLink(fd).toString();
                    if (target.startsWith("socket:[")) inodes.add(target.substring(8, target.length() - 1));
                } catch (IOException closedMeanwhile) {
                    // ignore
                }
            }
        }
        List<String> listening = new java.util.ArrayList<>();
        for (String table : List.of("tcp", "tcp6")) {
            Path file = Path.of("/proc", Long.toString(pid), "net", table);
            if (!Files.exists(file)) continue;
            for (String line : Files.readAllLines(file).subList(1, Files.readAllLines(file).size())) {
                String[] f = line.trim().split("\\s+");
                if (f.length > 9 && f[3].equals("0A") && inodes.contains(f[9])) listening.add(table + " " + f[1]);
            }
        }
        return listening;
    }
}
