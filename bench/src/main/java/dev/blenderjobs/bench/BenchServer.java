package dev.blenderjobs.bench;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import org.eclipse.lsp4j.jsonrpc.Launcher;
import org.eclipse.lsp4j.jsonrpc.RemoteEndpoint;
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification;
import org.eclipse.lsp4j.jsonrpc.services.JsonRequest;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/** The server jar as a child process, driven over stdio by LSP4J; records when things arrive. */
final class BenchServer implements AutoCloseable {

    interface Methods {
        @JsonRequest("initialize") CompletableFuture<JsonElement> initialize_(JsonElement p);
        @JsonRequest("shutdown") CompletableFuture<JsonElement> shutdown(JsonElement p);
        @JsonRequest("addJob") CompletableFuture<JsonElement> addJob(JsonElement p);
        @JsonRequest("getJob") CompletableFuture<JsonElement> getJob(JsonElement p);
        @JsonRequest("getPythonData") CompletableFuture<JsonElement> getPythonData(JsonElement p);
        @JsonRequest("getDataBlocks") CompletableFuture<JsonElement> getDataBlocks(JsonElement p);
        @JsonRequest("getStats") CompletableFuture<JsonElement> getStats(JsonElement p);
        @JsonRequest("removeJob") CompletableFuture<JsonElement> removeJob(JsonElement p);
    }

    /** A final state and when it arrived (System.nanoTime). */
    record Final(String state, long nanos, JsonObject params) {
    }

    /** A progress notification: its message and when it arrived (epoch micros). */
    record Progress(String jobId, String message, long receivedEpochMicros) {
    }

    final Process process;
    final RemoteEndpoint remote;
    private final ConcurrentHashMap<String, CompletableFuture<Final>> finals = new ConcurrentHashMap<>();
    final List<Progress> progress = java.util.Collections.synchronizedList(new ArrayList<>());

    BenchServer(Path jar, List<String> args) throws IOException {
        this(jar, args, java.util.Map.of());
    }

    /** With extra environment variables (SLURM_CONF, PATH for --executor slurm). */
    BenchServer(Path jar, List<String> args, java.util.Map<String, String> env) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        cmd.addAll(Benchmark.JVM_OPTIONS);
        cmd.addAll(List.of("-jar", jar.toString()));
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        Path log = Files.createTempFile("bench-server", ".log");
        pb.redirectError(log.toFile());
        process = pb.start();
        Launcher<Methods> launcher = new Launcher.Builder<Methods>()
                .setLocalService(new Receiver())
                .setRemoteInterface(Methods.class)
                .setInput(process.getInputStream())
                .setOutput(process.getOutputStream())
                .setExecutorService(Executors.newCachedThreadPool(r -> {
                    Thread t = new Thread(r, "bench-client");
                    t.setDaemon(true);
                    return t;
                }))
                .create();
        remote = launcher.getRemoteEndpoint();
        launcher.startListening();
    }

    public final class Receiver {
        @JsonNotification("job/progress")
        public void progress(JsonObject p) {
            Instant now = Instant.now();
            long micros = now.getEpochSecond() * 1_000_000L + now.getNano() / 1000;
            JsonElement m = p.get("message");
            progress.add(new Progress(p.get("jobId").getAsString(), m == null ? null : m.getAsString(), micros));
        }

        @JsonNotification("job/stateChanged")
        public void stateChanged(JsonObject p) {
            String state = p.get("state").getAsString();
            if (state.equals("COMPLETED") || state.equals("FAILED") || state.equals("CANCELED")) {
                finalOf(p.get("jobId").getAsString()).complete(new Final(state, System.nanoTime(), p));
            }
        }
    }

    CompletableFuture<Final> finalOf(String jobId) {
        return finals.computeIfAbsent(jobId, k -> new CompletableFuture<>());
    }

    void forget(String jobId) {
        finals.remove(jobId);
    }

    JsonElement call(String method, Object params) throws Exception {
        return (JsonElement) remote.request(method, params).get(600, TimeUnit.SECONDS);
    }

    CompletableFuture<Object> send(String method, Object params) {
        return remote.request(method, params);
    }

    /** Waits until every worker slot has a ready Blender (getStats freeWorkers). */
    void awaitWorkersReady(int workers) throws Exception {
        long deadline = System.currentTimeMillis() + 120_000;
        while (System.currentTimeMillis() < deadline) {
            JsonObject stats = call("getStats", new JsonObject()).getAsJsonObject();
            if (stats.get("freeWorkers").getAsInt() >= workers) return;
            Thread.sleep(100);
        }
        throw new IllegalStateException("workers did not become ready");
    }

    long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc", Long.toString(process.pid()), "status"))) {
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.substring(6).trim().split("\\s+")[0]) * 1024;
        }
        return -1;
    }

    @Override
    public void close() throws Exception {
        try {
            remote.request("shutdown", null).get(30, TimeUnit.SECONDS);
            remote.notify("exit", null);
        } catch (Exception ignored) {
            // killed below
        }
        if (!process.waitFor(20, TimeUnit.SECONDS)) {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
        }
    }
}
