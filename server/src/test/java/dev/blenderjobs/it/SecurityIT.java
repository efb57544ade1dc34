package dev.blenderjobs.it;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
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
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The worker channel is reachable only by the server's own workers: its loopback port is open
 * only while a Blender starts, and a peer that does not present that Blender's secret is
 * refused. The test plays the intruder in that window, with the real server and real Blender.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class SecurityIT {

    @Test
    void aConnectionToTheWorkerChannelWithoutTheSecretIsRefused() throws Exception {
        // One job per worker, so that each job starts a new Blender: another window if one is missed.
        try (ServerProcess s = ServerProcess.start("--workers", "1", "--max-jobs-per-worker", "1")) {
            Set<Long> seen = new HashSet<>();
            for (int tries = 0; tries < 5; tries++) {
                long deadline = System.currentTimeMillis() + 60_000;
                Integer port = null;
                while (port == null && System.currentTimeMillis() < deadline) {
                    for (ProcessHandle p : s.blenderProcesses()) {
                        if (seen.contains(p.pid())) continue;
                        String value = environ(p.pid(), "BLENDER_JOBS_PORT");
                        if (value != null) {
                            seen.add(p.pid());
                            port = Integer.parseInt(value);
                        }
                    }
                    if (port == null) Thread.sleep(2);
                }
                if (port == null) fail("no starting Blender found; server stderr:\n" + s.stderr());
                int refusedBefore = count(s.stderr(), "did not present the worker's secret");
                int capsBefore = count(s.stderr(), "limit 65536");
                try {
                    assertRefused(port, frame("{\"type\": \"hello\", \"secret\": \"not-the-secret\"}"));
                    assertRefused(port, frame("{\"type\": \"hello\"}"));
                    // An HTTP request read as a frame header asks for ~1 GB: refused unread.
                    assertRefused(port, "GET / HTTP/1.0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                } catch (ConnectException missed) {
                    // The worker connected first and the port closed: try the next Blender.
                    s.runToEnd(Json.of("scriptText", "python_data = {}"), Duration.ofSeconds(120));
                    continue;
                }
                // Each refusal is logged before the connection is closed. A probe that queued
                // behind the real worker is reset unread when the port closes, unlogged: then
                // the window was missed, and the next Blender is tried.
                if (!awaitCount(s, "did not present the worker's secret", refusedBefore + 2)
                        || !awaitCount(s, "limit 65536", capsBefore + 1)) {
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
        dev.blenderjobs.workers.FrameCodec.write(out, com.google.gson.JsonParser.parseString(json).getAsJsonObject());
        return out.toByteArray();
    }

    /** Sends the bytes and expects the server to hang up without a word. */
    private static void assertRefused(int port, byte[] bytes) throws IOException {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(15_000);
            DataOutputStream out = new DataOutputStream(socket.getOutputStream());
            out.write(bytes);
            out.flush();
            InputStream in = socket.getInputStream();
            int first;
            try {
                first = in.read();
            } catch (java.net.SocketException reset) {
                return; // closed on us: refused
            }
            assertEquals(-1, first, "the server must close the connection, not answer it");
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
