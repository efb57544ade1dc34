package dev.blenderjobs.bench;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.blenderjobs.bench.Benchmark.check;
import static dev.blenderjobs.bench.Benchmark.fmt;
import static dev.blenderjobs.bench.Benchmark.json;
import static dev.blenderjobs.bench.Benchmark.percentile;
import static dev.blenderjobs.bench.Benchmark.row;

/**
 * The Slurm executor against the local one, in one run on the real two-node test cluster of
 * test-fixtures/slurm/cluster.sh (driven directly: this module cannot see the test classes):
 * pilot start (sbatch to worker ready), trivial-job latency and throughput through two warm
 * pilots and through two local workers (alternating, so both see the same machine), and a 10 MB
 * result coming back from a node.
 * Usage: java -jar blender-jobs-bench.jar --jar SERVER_JAR --slurm [--quick] [--out FILE]
 */
final class SlurmBench {
    private final Path jar;
    private final boolean quick;
    private final Path clusterScript;
    private final List<String[]> rows = new ArrayList<>();
    private Map<String, String> env = Map.of();
    private Path dir;

    SlurmBench(Path jar, boolean quick) {
        this.jar = jar;
        this.quick = quick;
        this.clusterScript = Path.of("test-fixtures/slurm/cluster.sh").toAbsolutePath();
    }

    String run() throws Exception {
        dir = Files.createTempDirectory("bench-slurm-");
        String load = loadAverage();
        long t0 = System.nanoTime();
        script("up", dir.toString());
        double upMs = (System.nanoTime() - t0) / 1e6;
        try {
            env = parseEnv(script("env", dir.toString()));
            measure();
        } finally {
            script("down", dir.toString());
            Benchmark.deleteTree(dir);
        }
        StringBuilder sb = new StringBuilder();
        sb.append("| measure | result | target |\n|---|---|---|\n");
        for (String[] r : rows) sb.append("| ").append(String.join(" | ", r)).append(" |\n");
        sb.append("\nCluster up in ").append(fmt(upMs)).append(" ms. Load average (1, 5, 15 min) before: ").append(load)
                .append("; after: ").append(loadAverage()).append(". ").append(Runtime.getRuntime().availableProcessors())
                .append(" cores, Java ").append(System.getProperty("java.version")).append('\n');
        return sb.toString();
    }

    private void measure() throws Exception {
        int latencyJobs = quick ? 60 : 300;
        int throughputJobs = quick ? 200 : 500;
        String host = env.get("BJ_SLURM_HOST_ADDR");
        List<String> slurmArgs = List.of("--executor", "slurm", "--listen", host, "--slurm-partition",
                env.get("BJ_SLURM_PARTITION"), "--workers", "2");

        // 1. Pilot start: initialize (the pool starts its minimum of 2) -> each pilot connected.
        List<Double> starts = new ArrayList<>();
        for (int round = 0; round < (quick ? 2 : 4); round++) {
            List<String> args = new ArrayList<>(slurmArgs);
            args.addAll(List.of("--slurm-min-pilots", "2"));
            try (BenchServer s = new BenchServer(jar, args, env)) {
                long t0 = System.nanoTime();
                s.call("initialize", new JsonObject());
                Map<String, Double> readyAt = new HashMap<>();
                long deadline = System.currentTimeMillis() + 120_000;
                while (readyAt.size() < 2 && System.currentTimeMillis() < deadline) {
                    JsonObject stats = s.call("getStats", new JsonObject()).getAsJsonObject();
                    for (JsonElement e : stats.getAsJsonArray("workerDetails")) {
                        JsonObject w = e.getAsJsonObject();
                        if (w.get("state").getAsString().equals("IDLE")) {
                            readyAt.putIfAbsent(w.get("worker").getAsString(), (System.nanoTime() - t0) / 1e6);
                        }
                    }
                    Thread.sleep(10);
                }
                if (readyAt.size() < 2) throw new IllegalStateException("pilots did not connect");
                starts.addAll(readyAt.values());
            }
        }
        Collections.sort(starts);
        rows.add(row("S1. pilot start, two at once on two nodes (initialize -> sbatch -> Blender on the node -> "
                        + "connected and ready; " + starts.size() + " pilots in " + starts.size() / 2 + " rounds)",
                "min " + fmt(starts.get(0)) + " ms, median " + fmt(percentile(starts, 50)) + " ms, max "
                        + fmt(starts.get(starts.size() - 1)) + " ms", ""));

        // 2 + 3. Latency and throughput, local and Slurm at the same time (alternating blocks).
        List<String> pilots = new ArrayList<>(slurmArgs);
        pilots.addAll(List.of("--slurm-min-pilots", "2", "--max-jobs-per-worker", "100000"));
        try (BenchServer local = new BenchServer(jar, List.of("--workers", "2", "--max-jobs-per-worker", "100000"), Map.of());
             BenchServer slurm = new BenchServer(jar, pilots, env)) {
            local.call("initialize", new JsonObject());
            slurm.call("initialize", new JsonObject());
            local.awaitWorkersReady(2);
            slurm.awaitWorkersReady(2);
            latency(local, 50); // warm-up of both JVMs and both channels, not reported
            latency(slurm, 50);
            List<Double> lLocal = new ArrayList<>();
            List<Double> lSlurm = new ArrayList<>();
            for (int block = 0; block < latencyJobs / 50; block++) {
                lLocal.addAll(latency(local, 50));
                lSlurm.addAll(latency(slurm, 50));
            }
            Collections.sort(lLocal);
            Collections.sort(lSlurm);
            double pl = percentile(lLocal, 50);
            double ps = percentile(lSlurm, 50);
            rows.add(row("S2. trivial job latency, addJob sent -> COMPLETED received, one at a time (" + lSlurm.size()
                            + " jobs each, alternating blocks of 50)",
                    "Slurm pilots " + fmt(ps) + " ms p50, " + fmt(percentile(lSlurm, 99)) + " ms p99; local "
                            + fmt(pl) + " ms p50, " + fmt(percentile(lLocal, 99)) + " ms p99; difference "
                            + fmt(ps - pl) + " ms", "p50 within 2 ms of local"));
            double tLocal1 = throughput(local, throughputJobs);
            double tSlurm1 = throughput(slurm, throughputJobs);
            double tLocal2 = throughput(local, throughputJobs);
            double tSlurm2 = throughput(slurm, throughputJobs);
            rows.add(row("S3. throughput, " + throughputJobs + " trivial jobs sent at once, two workers (two one-CPU "
                            + "nodes / the server's two cores), two rounds each",
                    "Slurm pilots " + fmt(tSlurm1) + " / " + fmt(tSlurm2) + " jobs/s; local " + fmt(tLocal1) + " / "
                            + fmt(tLocal2) + " jobs/s", ">= 100 jobs/s"));

            // 4. A 10 MB result: the same job locally and on a pilot; the difference is the trip back.
            String tenMb = "python_data = {'text': 'x' * 10000000}";
            List<Double> bigLocal = new ArrayList<>();
            List<Double> bigSlurm = new ArrayList<>();
            List<Double> onNode = new ArrayList<>();
            for (int i = 0; i < (quick ? 3 : 5); i++) {
                bigLocal.add(jobMs(local, tenMb)[0]);
                double[] r = jobMs(slurm, tenMb);
                bigSlurm.add(r[0]);
                onNode.add(r[1]);
            }
            Collections.sort(bigLocal);
            Collections.sort(bigSlurm);
            Collections.sort(onNode);
            double back = percentile(bigSlurm, 50) - percentile(onNode, 50);
            rows.add(row("S4. a 10 MB python_data (10,000,011 bytes): addJob -> COMPLETED, median of "
                            + bigSlurm.size(),
                    "Slurm " + fmt(percentile(bigSlurm, 50)) + " ms, of which " + fmt(percentile(onNode, 50))
                            + " ms in Blender on the node (setup + script + writing the result); the rest, "
                            + fmt(back) + " ms, is dispatch, the 10 MB back over the channel, its SHA-256 check "
                            + "and the notification. Local: " + fmt(percentile(bigLocal, 50)) + " ms",
                    "back from the node <= 500 ms"));
        }
    }

    /** addJob -> COMPLETED, one at a time; returns the latencies in ms. */
    private static List<Double> latency(BenchServer s, int n) throws Exception {
        List<Double> ms = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long t0 = System.nanoTime();
            String id = s.call("addJob", json("scriptText", Benchmark.TRIVIAL)).getAsJsonObject().get("jobId").getAsString();
            BenchServer.Final f = s.finalOf(id).get(120, TimeUnit.SECONDS);
            check(f);
            ms.add((f.nanos() - t0) / 1e6);
            s.forget(id);
        }
        return ms;
    }

    private static double throughput(BenchServer s, int n) throws Exception {
        long t0 = System.nanoTime();
        List<CompletableFuture<Object>> sent = new ArrayList<>();
        for (int i = 0; i < n; i++) sent.add(s.send("addJob", json("scriptText", Benchmark.TRIVIAL)));
        long last = 0;
        for (CompletableFuture<Object> f : sent) {
            String id = ((JsonElement) f.get(600, TimeUnit.SECONDS)).getAsJsonObject().get("jobId").getAsString();
            BenchServer.Final fin = s.finalOf(id).get(600, TimeUnit.SECONDS);
            check(fin);
            last = Math.max(last, fin.nanos());
            s.forget(id);
        }
        return n / ((last - t0) / 1e9);
    }

    /** {total ms, ms in Blender (setup + script + collect)} of one job. */
    private static double[] jobMs(BenchServer s, String script) throws Exception {
        long t0 = System.nanoTime();
        String id = s.call("addJob", json("scriptText", script)).getAsJsonObject().get("jobId").getAsString();
        BenchServer.Final f = s.finalOf(id).get(300, TimeUnit.SECONDS);
        check(f);
        double total = (f.nanos() - t0) / 1e6;
        JsonObject timing = s.call("getJob", json("jobId", id)).getAsJsonObject().getAsJsonObject("timing");
        double inBlender = timing.get("setupMs").getAsDouble() + timing.get("scriptMs").getAsDouble()
                + timing.get("collectMs").getAsDouble();
        long bytes = s.call("getJob", json("jobId", id)).getAsJsonObject().get("pythonDataBytes").getAsLong();
        if (bytes != 10_000_011) throw new IllegalStateException("python_data of " + bytes + " bytes");
        return new double[]{total, inBlender};
    }

    private String script(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("bash", clusterScript.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
        pb.environment().put("BJ_SLURM_OWNER_PID", Long.toString(ProcessHandle.current().pid()));
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0) {
            throw new IllegalStateException("cluster.sh " + String.join(" ", args) + " failed");
        }
        return out;
    }

    /** cluster.sh env: export NAME='value' lines; PATH comes as "dir:$PATH". */
    static Map<String, String> parseEnv(String text) {
        Map<String, String> m = new HashMap<>();
        for (String line : text.split("\n")) {
            line = line.strip();
            if (!line.startsWith("export ")) continue;
            String a = line.substring(7);
            int eq = a.indexOf('=');
            String v = a.substring(eq + 1);
            if (v.length() >= 2 && (v.charAt(0) == '\'' || v.charAt(0) == '"')) v = v.substring(1, v.length() - 1);
            m.put(a.substring(0, eq), v.replace("$PATH", System.getenv().getOrDefault("PATH", "")));
        }
        return m;
    }

    static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).split(" ");
            return f[0] + ", " + f[1] + ", " + f[2];
        } catch (IOException e) {
            return "unknown";
        }
    }
}
