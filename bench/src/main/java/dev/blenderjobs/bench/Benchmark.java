package dev.blenderjobs.bench;

import com.google.gson.JsonObject;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The benchmark of issue 3, measured in one run against the real server jar and real Blender:
 * trivial-job latency and throughput with warm workers and with a fresh Blender per job,
 * progress latency and cost, large results, and server memory after many jobs.
 * Usage: java -jar blender-jobs-bench.jar --jar SERVER_JAR [--quick] [--out FILE]; with --slurm, the
 * Slurm executor against the local one instead ({@link SlurmBench}).
 */
public final class Benchmark {
    static final String TRIVIAL = "python_data = {'ok': 1}";
    /** The JVM flags the README recommends for the server. */
    static final List<String> JVM_OPTIONS = List.of("-XX:+UseSerialGC", "-Xms32m", "-Xmx512m", "-Xmn24m",
            "-XX:TieredStopAtLevel=1");

    private final Path jar;
    private final boolean quick;
    private final List<String[]> rows = new ArrayList<>();

    Benchmark(Path jar, boolean quick) {
        this.jar = jar;
        this.quick = quick;
    }

    public static void main(String[] args) throws Exception {
        Path jar = Path.of("server/target/blender-jobs-server.jar");
        Path out = null;
        boolean quick = false;
        boolean slurm = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--jar" -> jar = Path.of(args[++i]);
                case "--out" -> out = Path.of(args[++i]);
                case "--quick" -> quick = true;
                case "--slurm" -> slurm = true;
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        String table = slurm ? new SlurmBench(jar, quick).run() : new Benchmark(jar, quick).run();
        System.out.println(table);
        if (out != null) {
            Files.createDirectories(out.toAbsolutePath().getParent());
            Files.writeString(out, table);
        }
        System.exit(0);
    }

    String run() throws Exception {
        int latencyJobs = quick ? 50 : 300;
        int throughputJobs = quick ? 100 : 500;
        int freshLatencyJobs = quick ? 5 : 30;
        int freshThroughputJobs = quick ? 10 : 60;
        int tableJobs = quick ? 1000 : 10_000;

        double[] warmLat;
        double warmTput;
        double idleRss;
        try (BenchServer s = new BenchServer(jar, List.of("--workers", "2"))) {
            s.call("initialize", new JsonObject());
            s.awaitWorkersReady(2);
            idleRss = s.residentBytes() / 1048576.0;
            latency(s, 50); // JIT warm-up of both sides, not reported
            warmLat = latency(s, latencyJobs);
            warmTput = throughput(s, throughputJobs);
            progressLatency(s);
            progressCost(s);
            bigResults(s);
        }
        double[] freshLat;
        double freshTput;
        try (BenchServer s = new BenchServer(jar, List.of("--workers", "2", "--max-jobs-per-worker", "1"))) {
            s.call("initialize", new JsonObject());
            s.awaitWorkersReady(2);
            latency(s, 2);
            freshLat = latency(s, freshLatencyJobs);
            freshTput = throughput(s, freshThroughputJobs);
        }
        rows.add(0, row("1. trivial job latency, warm workers (" + latencyJobs + " jobs, one at a time)",
                fmt(warmLat[0]) + " ms p50, " + fmt(warmLat[1]) + " ms p99", "p50 < 15 ms"));
        rows.add(1, row("2. throughput, warm, --workers 2 (" + throughputJobs + " jobs submitted at once)",
                fmt(warmTput) + " jobs/s", ">= 100 jobs/s"));
        rows.add(2, row("3a. trivial job latency, fresh Blender per job (" + freshLatencyJobs + " jobs)",
                fmt(freshLat[0]) + " ms p50, " + fmt(freshLat[1]) + " ms p99", ""));
        rows.add(3, row("3b. throughput, fresh Blender per job, --workers 2 (" + freshThroughputJobs + " jobs)",
                fmt(freshTput) + " jobs/s", ""));
        rows.add(4, row("3c. warm / fresh", "latency " + fmt(freshLat[0] / warmLat[0]) + "x lower, throughput "
                + fmt(warmTput / freshTput) + "x higher", "throughput >= 50x"));

        Path stateDir = Files.createTempDirectory("blender-jobs-bench-state");
        try (BenchServer s = new BenchServer(jar, List.of("--workers", "2", "--state-dir", stateDir.toString()))) {
            s.call("initialize", new JsonObject());
            s.awaitWorkersReady(2);
            double before = s.residentBytes() / 1048576.0;
            runMany(s, tableJobs);
            double after = s.residentBytes() / 1048576.0;
            rows.add(row("6. server RSS (JVM flags " + String.join(" ", JVM_OPTIONS) + "): idle / after " + tableJobs + " finished jobs kept in its table",
                    fmt(idleRss) + " MB / " + fmt(after) + " MB (just before: " + fmt(before) + " MB)", "< 200 MB"));
        }
        // A restart on the same state directory: every job is read back before initialize answers.
        try (BenchServer s = new BenchServer(jar, List.of("--workers", "2", "--state-dir", stateDir.toString()))) {
            long t0 = System.nanoTime();
            JsonObject init = s.call("initialize", new JsonObject()).getAsJsonObject();
            double ms = (System.nanoTime() - t0) / 1e6;
            int recovered = init.getAsJsonObject("recoveredJobs").get("jobs").getAsInt();
            if (recovered != tableJobs) throw new IllegalStateException("recovered " + recovered + " of " + tableJobs);
            rows.add(row("7. restart on a state directory with " + tableJobs + " finished jobs: initialize answered (all read back) / RSS after",
                    fmt(ms) + " ms / " + fmt(s.residentBytes() / 1048576.0) + " MB", "< 5 s"));
        }
        deleteTree(stateDir);
        StringBuilder sb = new StringBuilder();
        sb.append("| measure | result | target |\n|---|---|---|\n");
        for (String[] r : rows) sb.append("| ").append(String.join(" | ", r)).append(" |\n");
        sb.append("\nMachine: ").append(Runtime.getRuntime().availableProcessors()).append(" cores, ")
                .append(System.getProperty("os.name")).append(' ').append(System.getProperty("os.arch"))
                .append(", Java ").append(System.getProperty("java.version")).append('\n');
        return sb.toString();
    }

    /** addJob sent -> COMPLETED notification received, one job at a time; returns {p50, p99} in ms. */
    double[] latency(BenchServer s, int n) throws Exception {
        List<Double> ms = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long t0 = System.nanoTime();
            String id = s.call("addJob", json("scriptText", TRIVIAL)).getAsJsonObject().get("jobId").getAsString();
            BenchServer.Final f = s.finalOf(id).get(120, TimeUnit.SECONDS);
            check(f);
            ms.add((f.nanos() - t0) / 1e6);
        }
        Collections.sort(ms);
        return new double[]{percentile(ms, 50), percentile(ms, 99)};
    }

    /** n trivial jobs sent at once; jobs/s from the first send to the last COMPLETED. */
    double throughput(BenchServer s, int n) throws Exception {
        long t0 = System.nanoTime();
        List<CompletableFuture<Object>> sent = new ArrayList<>();
        for (int i = 0; i < n; i++) sent.add(s.send("addJob", json("scriptText", TRIVIAL)));
        long last = 0;
        for (CompletableFuture<Object> f : sent) {
            String id = ((com.google.gson.JsonElement) f.get(600, TimeUnit.SECONDS)).getAsJsonObject().get("jobId").getAsString();
            BenchServer.Final fin = s.finalOf(id).get(600, TimeUnit.SECONDS);
            check(fin);
            last = Math.max(last, fin.nanos());
        }
        return n / ((last - t0) / 1e9);
    }

    /** update_job_progress inside Blender -> job/progress at the client, on one clock (epoch). */
    void progressLatency(BenchServer s) throws Exception {
        int reports = quick ? 50 : 200;
        String script = String.join("\n",
                "import time",
                "for i in range(" + reports + "):",
                "    time.sleep(0.03)",
                "    update_job_progress((i + 1) / " + reports + ", '%.6f' % time.time())");
        String id = s.call("addJob", json("scriptText", script)).getAsJsonObject().get("jobId").getAsString();
        check(s.finalOf(id).get(120, TimeUnit.SECONDS));
        List<Double> ms = new ArrayList<>();
        synchronized (s.progress) {
            for (BenchServer.Progress p : s.progress) {
                if (!p.jobId().equals(id) || p.message() == null) continue;
                double sentMicros = Double.parseDouble(p.message()) * 1e6;
                ms.add((p.receivedEpochMicros() - sentMicros) / 1000.0);
            }
        }
        Collections.sort(ms);
        rows.add(row("4. progress latency, update_job_progress -> notification (" + ms.size() + " reports, 30 ms apart)",
                fmt(percentile(ms, 50)) + " ms p50, " + fmt(percentile(ms, 99)) + " ms p99", "p99 < 10 ms"));
    }

    /** Time of a 100,000-iteration loop with and without update_job_progress, inside Blender. */
    void progressCost(BenchServer s) throws Exception {
        String body = "    x = sum(j * j for j in range(20))";
        double without = scriptMs(s, "for i in range(100000):\n" + body);
        double with = scriptMs(s, "for i in range(100000):\n" + body + "\n    update_job_progress(i / 100000)");
        double bare = scriptMs(s, "for i in range(100000):\n    update_job_progress(i / 100000)");
        rows.add(row("progress cost: 100,000-iteration loop (body: a 20-term sum) without / with update_job_progress",
                fmt(without) + " ms / " + fmt(with) + " ms (+" + fmt((with - without) / without * 100) + " %); "
                        + fmt(bare * 1000 / 100000) + " us per bare call",
                "a few %"));
    }

    double scriptMs(BenchServer s, String script) throws Exception {
        double best = Double.MAX_VALUE;
        for (int i = 0; i < 3; i++) {
            String id = s.call("addJob", json("scriptText", script)).getAsJsonObject().get("jobId").getAsString();
            check(s.finalOf(id).get(120, TimeUnit.SECONDS));
            JsonObject job = s.call("getJob", json("jobId", id)).getAsJsonObject();
            best = Math.min(best, job.getAsJsonObject("timing").get("scriptMs").getAsDouble());
        }
        return best;
    }

    void bigResults(BenchServer s) throws Exception {
        String tenMb = String.join("\n",
                "python_data = {'rows': [{'i': i, 'name': 'row %08d' % i, 'v': [i * 0.5, i * 0.25, 1.0]} for i in range(160000)]}");
        long t0 = System.nanoTime();
        String id = s.call("addJob", json("scriptText", tenMb)).getAsJsonObject().get("jobId").getAsString();
        check(s.finalOf(id).get(300, TimeUnit.SECONDS));
        long t1 = System.nanoTime();
        // LSP4J parses the answer into a Gson tree (the parse a Java client pays); its size is
        // taken from the job, not by serializing the tree again.
        int rowsParsed = s.call("getPythonData", json("jobId", id)).getAsJsonObject().getAsJsonArray("rows").size();
        long t2 = System.nanoTime();
        long bytes = s.call("getJob", json("jobId", id)).getAsJsonObject().get("pythonDataBytes").getAsLong();
        rows.add(row("5a. python_data of " + fmt(bytes / 1048576.0) + " MB (" + rowsParsed + " rows): addJob -> COMPLETED "
                + "-> getPythonData parsed by LSP4J", fmt((t2 - t0) / 1e6) + " ms (job " + fmt((t1 - t0) / 1e6)
                + " ms, getPythonData " + fmt((t2 - t1) / 1e6) + " ms)", "see client_bench / data_clients_bench"));

        String grid = String.join("\n",
                "import bpy, bmesh",
                "mesh = bpy.data.meshes.new('Grid1M')",
                "bm = bmesh.new()",
                "bmesh.ops.create_grid(bm, x_segments=999, y_segments=999, size=10)",
                "bm.to_mesh(mesh)",
                "bm.free()",
                "obj = bpy.data.objects.new('Grid1M', mesh)",
                "bpy.context.scene.collection.objects.link(obj)",
                "python_data = {'vertices': len(mesh.vertices)}",
                "data_blocks = [obj]");
        t0 = System.nanoTime();
        id = s.call("addJob", json("scriptText", grid)).getAsJsonObject().get("jobId").getAsString();
        check(s.finalOf(id).get(300, TimeUnit.SECONDS));
        JsonObject blocks = s.call("getDataBlocks", json("jobId", id)).getAsJsonObject();
        t1 = System.nanoTime();
        int verts = s.call("getPythonData", json("jobId", id)).getAsJsonObject().get("vertices").getAsInt();
        String library = blocks.get("library").getAsString();
        long size = Files.size(Path.of(library));
        // And back in: a second job appends the library and counts the vertices.
        JsonObject passed = new JsonObject();
        passed.addProperty("library", library);
        JsonObject back = json("scriptText", "python_data = {'vertices': len(bpy.data.objects['Grid1M'].data.vertices)}");
        back.add("passedDataBlocks", passed);
        t2 = System.nanoTime();
        String id2 = s.call("addJob", back).getAsJsonObject().get("jobId").getAsString();
        check(s.finalOf(id2).get(300, TimeUnit.SECONDS));
        long t3 = System.nanoTime();
        int verts2 = s.call("getPythonData", json("jobId", id2)).getAsJsonObject().get("vertices").getAsInt();
        if (verts != verts2) throw new IllegalStateException("round trip lost vertices: " + verts + " vs " + verts2);
        rows.add(row("5b. data blocks: a " + verts + "-vertex mesh out (" + fmt(size / 1048576.0) + " MB .blend) and back in",
                "out " + fmt((t1 - t0) / 1e6) + " ms, back in " + fmt((t3 - t2) / 1e6) + " ms", ""));
    }

    void runMany(BenchServer s, int n) throws Exception {
        int batch = 500;
        for (int done = 0; done < n; done += batch) {
            List<CompletableFuture<Object>> sent = new ArrayList<>();
            for (int i = 0; i < batch; i++) sent.add(s.send("addJob", json("scriptText", TRIVIAL)));
            for (CompletableFuture<Object> f : sent) {
                String id = ((com.google.gson.JsonElement) f.get(600, TimeUnit.SECONDS)).getAsJsonObject().get("jobId").getAsString();
                check(s.finalOf(id).get(600, TimeUnit.SECONDS));
                s.forget(id);
            }
        }
    }

    static void deleteTree(Path root) throws java.io.IOException {
        try (var paths = Files.walk(root)) {
            for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }

    static void check(BenchServer.Final f) {
        if (!f.state().equals("COMPLETED")) throw new IllegalStateException("job did not complete: " + f.params());
    }

    static JsonObject json(String k, String v) {
        JsonObject o = new JsonObject();
        o.addProperty(k, v);
        return o;
    }

    static double percentile(List<Double> sorted, int p) {
        if (sorted.isEmpty()) return Double.NaN;
        int idx = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, idx)));
    }

    static String fmt(double d) {
        return d >= 100 ? String.format(Locale.ROOT, "%.0f", d) : String.format(Locale.ROOT, "%.2f", d);
    }

    static String[] row(String a, String b, String c) {
        return new String[]{a, b, c};
    }
}
