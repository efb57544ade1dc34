package dev.blenderjobs.it;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The Slurm harness itself, and the fact the Slurm executor stands on: a Blender started by
 * sbatch on a node connects back to a TCP server in this JVM, from the node's own address, with
 * the node's hostname. Also what cancel and fault tests rely on: scancel ends the Blender, a
 * killed node takes its Blender with it and comes back, sbatch refuses an unknown partition with
 * Slurm's message, and a DOWN partition holds jobs with a reason.
 *
 * <p>Timings (pilot start, cancel, cluster up/down) are printed, never asserted: see
 * test-fixtures/slurm/README.md for measured values.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SlurmHarnessIT {
    @RegisterExtension
    static final SlurmCluster cluster = new SlurmCluster();

    /** Hang guard for a pilot to connect: a cold Blender on a busy 2-core machine takes seconds, not minutes. */
    static final Duration CONNECT_GUARD = Duration.ofSeconds(90);
    /** Hang guard for a process to disappear after scancel / kill (Slurm's KillWait is 5 s here). */
    static final Duration GONE_GUARD = Duration.ofSeconds(30);

    private static final List<String> timings = new ArrayList<>();

    /**
     * The pilot: Blender connects to BJ_PILOT_HOST:BJ_PILOT_PORT (values from the environment,
     * never pasted into the source) and sends one JSON line about itself. With BJ_PILOT_HOLD=1 it
     * then stays connected until the test closes the socket or something kills it. Python 3.9
     * compatible, like the worker runtime.
     */
    static final String PILOT_PYTHON = String.join("\n",
            "import json, os, socket, time, bpy",
            "python_ms = int(time.time() * 1000)",
            "s = socket.create_connection((os.environ[\"BJ_PILOT_HOST\"], int(os.environ[\"BJ_PILOT_PORT\"])), timeout=30)",
            "hello = {\"host\": socket.gethostname(), \"version\": bpy.app.version_string, \"pid\": os.getpid(),",
            "         \"job\": os.environ.get(\"SLURM_JOB_ID\", \"\"),",
            "         \"scriptStartMs\": int(os.environ[\"BJ_SCRIPT_START_MS\"]), \"pythonMs\": python_ms}",
            "s.sendall((json.dumps(hello) + \"\\n\").encode())",
            "if os.environ.get(\"BJ_PILOT_HOLD\") == \"1\":",
            "    s.settimeout(600)",
            "    s.recv(1)",
            "s.close()");

    @AfterAll
    static void printTimings() {
        if (cluster.upTime() != null) System.err.println("[slurm-harness] upTime " + cluster.upTime().toMillis() + " ms");
        timings.forEach(t -> System.err.println("[slurm-harness] " + t));
    }

    @Test
    @Order(1)
    void aPilotOnEachNodeConnectsBackFromTheNodesAddressWithTheNodesHostname() throws Exception {
        try (PilotListener listener = new PilotListener(cluster.hostAddress())) {
            Path script = pilotScript();
            Map<String, Long> submittedAtMs = new HashMap<>();
            Map<String, String> jobIds = new HashMap<>();
            for (String node : List.of("node1", "node2")) {
                submittedAtMs.put(node, System.currentTimeMillis());
                jobIds.put(node, cluster.sbatch(listener.jobEnv(false), "-w", node, "-J", "bj-probe-" + node,
                        script.toString()));
            }
            Map<String, Arrival> byNode = new HashMap<>();
            for (int i = 0; i < 2; i++) {
                Arrival a = listener.next(CONNECT_GUARD);
                String node = a.hello().get("host").getAsString();
                assertTrue(jobIds.containsKey(node), "a pilot said it runs on " + node + ": " + a);
                assertFalse(byNode.containsKey(node), "two pilots from " + node);
                byNode.put(node, a);
            }
            for (String node : List.of("node1", "node2")) {
                Arrival a = byNode.get(node);
                assertEquals(cluster.nodeAddress(node), a.remoteAddress(), "the connection of " + node + "'s pilot: " + a);
                assertEquals(jobIds.get(node), a.hello().get("job").getAsString(), a.toString());
                assertTrue(a.hello().get("version").getAsString().matches("\\d+\\.\\d+.*"), a.toString());
                timings.add("pilot start, both nodes at once, " + node + ": " + startBreakdown(submittedAtMs.get(node), a)
                        + " (Blender " + a.hello().get("version").getAsString() + ")");
            }
            // Both pilots end by themselves and their jobs leave the queue as COMPLETED.
            for (String id : jobIds.values()) {
                awaitLeftQueue(id);
                assertEquals("COMPLETED", cluster.finalState(id));
            }
        }
    }

    @Test
    @Order(2)
    void scancelStopsARunningPilotsBlender() throws Exception {
        try (PilotListener listener = new PilotListener(cluster.hostAddress())) {
            long t0 = System.currentTimeMillis();
            String id = cluster.sbatch(listener.jobEnv(true), "-w", "node1", "-J", "bj-hold", pilotScript().toString());
            Arrival a = listener.next(CONNECT_GUARD);
            timings.add("pilot start, one node alone, node1: " + startBreakdown(t0, a));
            assertEquals(cluster.nodeAddress("node1"), a.remoteAddress());
            ProcessHandle blender = a.process();
            assertTrue(running(blender), "the pilot's Blender runs before scancel: " + a);
            assertEquals("RUNNING", cluster.squeueState(id));

            long c0 = System.nanoTime();
            cluster.scancel(id);
            awaitGone(blender, "Blender of cancelled job " + id);
            long gone = System.nanoTime();
            assertTrue(a.closedByPeerWithin(Duration.ofSeconds(5)), "the pilot's connection closed");
            awaitLeftQueue(id);
            timings.add("scancel -> Blender gone: " + ms(gone - c0) + " ms; -> job left squeue: " + ms(System.nanoTime() - c0) + " ms");
            assertEquals("CANCELLED", cluster.finalState(id));
        }
    }

    @Test
    @Order(3)
    void aKilledNodeTakesItsBlenderWithItAndStartNodeBringsItBack() throws Exception {
        try (PilotListener listener = new PilotListener(cluster.hostAddress())) {
            String id = cluster.sbatch(listener.jobEnv(true), "-w", "node2", "-J", "bj-hold", pilotScript().toString());
            Arrival a = listener.next(CONNECT_GUARD);
            assertEquals(cluster.nodeAddress("node2"), a.remoteAddress());
            ProcessHandle blender = a.process();

            long k0 = System.nanoTime();
            cluster.killNode("node2");
            awaitGone(blender, "Blender on killed node2");
            assertTrue(a.closedByPeerWithin(Duration.ofSeconds(5)), "the pilot's connection closed");
            long s0 = System.nanoTime();
            cluster.startNode("node2");
            timings.add("kill-node -> Blender gone: " + ms(s0 - k0) + " ms; start-node -> node idle again: "
                    + ms(System.nanoTime() - s0) + " ms");
            // Slurm only learns about the lost job ~30 s later ("missing from batch node") or
            // after SlurmdTimeout; cancel it so node2's CPU is free now.
            cluster.scancel(id);
            awaitLeftQueue(id);

            long t0 = System.currentTimeMillis();
            String again = cluster.sbatch(listener.jobEnv(false), "-w", "node2", "-J", "bj-probe", pilotScript().toString());
            Arrival b = listener.next(CONNECT_GUARD);
            assertEquals(cluster.nodeAddress("node2"), b.remoteAddress());
            assertEquals("node2", b.hello().get("host").getAsString());
            assertEquals(again, b.hello().get("job").getAsString());
            timings.add("pilot start on the restarted node2: " + startBreakdown(t0, b));
            awaitLeftQueue(again);
        }
    }

    @Test
    @Order(4)
    void sbatchRefusesAnUnknownPartitionWithSlurmsMessage() throws Exception {
        SlurmCluster.Result r = cluster.sbatchResult(Map.of(), "-p", "no-such-partition", "--wrap", "true");
        assertNotEquals(0, r.exitCode(), r.toString());
        assertTrue(r.stderr().contains("Invalid partition name specified"), r.toString());
        assertTrue(r.stdout().isBlank(), r.toString());
        timings.add("unknown partition: " + r.stderr().strip());
    }

    @Test
    @Order(5)
    void aJobInTheDownPartitionWaitsWithReasonPartitionDown() throws Exception {
        String id = cluster.sbatch(Map.of(), "-p", cluster.downPartition(), "--wrap", "true");
        try {
            String stateAndReason = "";
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            // The reason is set by the scheduler's next pass, which may be a moment after submit.
            while (System.nanoTime() < deadline) {
                stateAndReason = cluster.squeue("-h", "-j", id, "-o", "%T %r").strip();
                if (stateAndReason.equals("PENDING PartitionDown")) break;
                Thread.sleep(200);
            }
            assertEquals("PENDING PartitionDown", stateAndReason);
        } finally {
            cluster.scancel(id);
        }
        awaitLeftQueue(id);
    }

    // ---------------------------------------------------------------- helpers

    private static Path pilotScript() throws IOException {
        Path p = cluster.dir().resolve("jobs").resolve("pilot-probe.sh");
        if (!Files.exists(p)) {
            // The Python source goes in single quotes; it has none of its own.
            if (PILOT_PYTHON.contains("'")) throw new IllegalStateException("pilot source must not contain '");
            Files.writeString(p, "#!/bin/sh\n"
                    + "BJ_SCRIPT_START_MS=$(date +%s%3N) exec \"$BJ_BLENDER\" -b --factory-startup --python-exit-code 1 --python-expr '" + PILOT_PYTHON + "'\n");
        }
        return p;
    }

    private static void awaitLeftQueue(String id) throws Exception {
        long deadline = System.nanoTime() + GONE_GUARD.toNanos();
        while (!cluster.squeueState(id).isEmpty()) {
            if (System.nanoTime() > deadline) fail("job " + id + " still in squeue after " + GONE_GUARD + ": " + cluster.squeueState(id));
            Thread.sleep(100);
        }
    }

    private static void awaitGone(ProcessHandle p, String what) throws InterruptedException {
        long deadline = System.nanoTime() + GONE_GUARD.toNanos();
        while (running(p)) {
            if (System.nanoTime() > deadline) fail(what + " (pid " + p.pid() + ") still running after " + GONE_GUARD);
            Thread.sleep(20);
        }
    }

    /** Alive and not a zombie (an orphan killed with its node is reaped by init, maybe later). */
    static boolean running(ProcessHandle p) {
        if (!p.isAlive()) return false;
        try {
            for (String line : Files.readAllLines(Path.of("/proc", Long.toString(p.pid()), "status"))) {
                if (line.startsWith("State:")) return !line.contains("Z");
            }
        } catch (IOException gone) {
            return false;
        }
        return true;
    }

    /** sbatch -> connection, split at the batch script's start and at Python's start inside Blender (one clock: same machine). */
    private static String startBreakdown(long submittedAtMs, Arrival a) {
        long script = a.hello().get("scriptStartMs").getAsLong();
        long python = a.hello().get("pythonMs").getAsLong();
        return (a.acceptedAtMs() - submittedAtMs) + " ms (sbatch -> batch script " + (script - submittedAtMs)
                + " ms, Blender start to Python " + (python - script) + " ms, Python -> connected " + (a.acceptedAtMs() - python) + " ms)";
    }

    private static long ms(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(nanos);
    }

    /** One pilot's connection: where it came from, what it said, when it was accepted. */
    record Arrival(String remoteAddress, JsonObject hello, long acceptedAtMs, Socket socket, BufferedReader in) {
        ProcessHandle process() {
            long pid = hello.get("pid").getAsLong();
            return ProcessHandle.of(pid).orElseThrow(() -> new AssertionError("pilot pid " + pid + " not found: " + this));
        }

        /** True once the pilot's end closes the connection (its Blender exited or was killed). */
        boolean closedByPeerWithin(Duration d) throws IOException {
            socket.setSoTimeout((int) d.toMillis());
            try {
                return in.read() < 0;
            } catch (SocketTimeoutException stillOpen) {
                return false;
            } catch (SocketException reset) {
                return true;
            }
        }

        @Override
        public String toString() {
            return "pilot from " + remoteAddress + " said " + hello;
        }
    }

    /** The TCP server the pilots connect back to, bound to the bridge address (never a wildcard). */
    static final class PilotListener implements AutoCloseable {
        private final ServerSocket server;
        private final BlockingQueue<Object> arrivals = new LinkedBlockingQueue<>();
        private final List<Socket> accepted = new ArrayList<>();
        private final Thread acceptor;

        PilotListener(String bindAddress) throws IOException {
            server = new ServerSocket();
            server.bind(new InetSocketAddress(InetAddress.getByName(bindAddress), 0));
            acceptor = new Thread(this::acceptLoop, "pilot-listener");
            acceptor.setDaemon(true);
            acceptor.start();
        }

        Map<String, String> jobEnv(boolean hold) {
            return Map.of("BJ_PILOT_HOST", server.getInetAddress().getHostAddress(),
                    "BJ_PILOT_PORT", Integer.toString(server.getLocalPort()),
                    "BJ_PILOT_HOLD", hold ? "1" : "0",
                    "BJ_BLENDER", System.getenv().getOrDefault("BLENDER", "blender"));
        }

        private void acceptLoop() {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    long atMs = System.currentTimeMillis();
                    synchronized (accepted) {
                        accepted.add(s);
                    }
                    // One short line per pilot; a pilot that never sends it cannot hold this thread long.
                    s.setSoTimeout(30_000);
                    BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                    String line = in.readLine();
                    if (line == null) {
                        arrivals.add(new AssertionError("a connection from " + s.getInetAddress() + " closed without a hello"));
                        continue;
                    }
                    arrivals.add(new Arrival(s.getInetAddress().getHostAddress(), JsonParser.parseString(line).getAsJsonObject(),
                            atMs, s, in));
                } catch (IOException | RuntimeException e) {
                    if (!server.isClosed()) arrivals.add(new AssertionError("pilot listener: " + e, e));
                }
            }
        }

        Arrival next(Duration timeout) throws InterruptedException {
            Object o = arrivals.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (o == null) fail("no pilot connected to " + server.getLocalSocketAddress() + " within " + timeout);
            if (o instanceof AssertionError e) throw e;
            return (Arrival) o;
        }

        /** Closing every connection also ends any holding pilot still alive. */
        @Override
        public void close() throws IOException {
            server.close();
            synchronized (accepted) {
                for (Socket s : accepted) s.close();
            }
        }
    }
}
