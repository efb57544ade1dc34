package dev.blenderjobs.it;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import org.eclipse.lsp4j.jsonrpc.Launcher;
import org.eclipse.lsp4j.jsonrpc.RemoteEndpoint;
import org.eclipse.lsp4j.jsonrpc.ResponseErrorException;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification;

import java.io.ByteArrayOutputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The real server jar as a child process, spoken to over its real stdin/stdout with LSP4J as
 * the client. Records every notification in arrival order and every byte of stdout, so tests
 * can check the stream holds nothing but well-framed JSON-RPC.
 */
final class ServerProcess implements AutoCloseable {
    /** Hang guard for one request; far above any expected time. */
    static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(60);

    record Notification(String method, JsonObject params, long receivedAtMillis) {
    }

    static {
        // The test client's LSP4J complains about every malformed-input answer it cannot match;
        // the assertions look at the raw stream instead.
        java.util.logging.Logger.getLogger("org.eclipse.lsp4j").setLevel(java.util.logging.Level.OFF);
    }

    final Process process;
    final RemoteEndpoint remote;
    private final List<Notification> notifications = new ArrayList<>();
    private final ByteArrayOutputStream rawStdout = new ByteArrayOutputStream();
    private final Path stderrFile;

    static Path jar() {
        String jar = System.getProperty("blenderjobs.serverJar", "target/blender-jobs-server.jar");
        Path p = Path.of(jar);
        if (!Files.isRegularFile(p)) fail("server jar not found at " + p.toAbsolutePath() + "; run mvn package first");
        return p;
    }

    static Path fixtures() {
        return Path.of(System.getProperty("blenderjobs.fixtures", "../test-fixtures")).toAbsolutePath().normalize();
    }

    static Path fixture(String relative) {
        Path p = fixtures().resolve(relative);
        if (!Files.exists(p)) fail("fixture missing: " + p);
        return p;
    }

    /** The answer to initialize, once {@link #start} sent it. */
    JsonObject initializeResult;

    /** Starts the server and sends initialize + initialized. */
    static ServerProcess start(String... args) throws Exception {
        return start(Map.of(), new JsonObject(), args);
    }

    /** Starts the server with extra environment variables and sends initialize (with params) + initialized. */
    static ServerProcess start(Map<String, String> env, JsonObject initializeParams, String... args) throws Exception {
        ServerProcess s = new ServerProcess(env, args);
        s.initializeResult = s.callObject("initialize", initializeParams);
        s.remote.notify("initialized", new JsonObject());
        return s;
    }

    /** Starts the server without initializing it. */
    static ServerProcess startRaw(String... args) throws Exception {
        return new ServerProcess(Map.of(), args);
    }

    /** Starts the server with these JVM flags (e.g. a small -Xmx) instead of -Xmx512m, and initializes it. */
    static ServerProcess startWithJvm(List<String> jvmFlags, String... args) throws Exception {
        ServerProcess s = new ServerProcess(Map.of(), jvmFlags, args);
        s.initializeResult = s.callObject("initialize", new JsonObject());
        s.remote.notify("initialized", new JsonObject());
        return s;
    }

    private ServerProcess(Map<String, String> env, String... args) throws IOException {
        this(env, List.of("-Xmx512m"), args);
    }

    private ServerProcess(Map<String, String> env, List<String> jvmFlags, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(javaBin()));
        cmd.addAll(jvmFlags);
        cmd.addAll(List.of("-jar", jar().toString()));
        cmd.addAll(List.of(args));
        stderrFile = Files.createTempFile("blender-jobs-it-stderr", ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        pb.redirectError(stderrFile.toFile());
        process = pb.start();
        InputStream recorded = new FilterInputStream(process.getInputStream()) {
            @Override
            public int read() throws IOException {
                awaitReading();
                int b = super.read();
                if (b >= 0) synchronized (rawStdout) { rawStdout.write(b); }
                return b;
            }

            @Override
            public int read(byte[] buf, int off, int len) throws IOException {
                awaitReading();
                int n = super.read(buf, off, len);
                if (n > 0) synchronized (rawStdout) { rawStdout.write(buf, off, n); }
                return n;
            }
        };
        Launcher<NoRemoteMethods> launcher = new Launcher.Builder<NoRemoteMethods>()
                .setLocalService(new Receiver())
                .setRemoteInterface(NoRemoteMethods.class)
                .setInput(recorded)
                .setOutput(process.getOutputStream())
                .setExecutorService(Executors.newCachedThreadPool(r -> {
                    Thread t = new Thread(r, "it-client");
                    t.setDaemon(true);
                    return t;
                }))
                .create();
        remote = launcher.getRemoteEndpoint();
        launcher.startListening();
    }

    /** While true, the client reads nothing from the server's stdout: the pipe fills and the server's writes block. */
    private boolean paused;

    /** Stops reading the server's stdout (a read already waiting for data may still take one chunk). */
    void pauseReading() {
        synchronized (rawStdout) {
            paused = true;
        }
    }

    void resumeReading() {
        synchronized (rawStdout) {
            paused = false;
            rawStdout.notifyAll();
        }
    }

    private void awaitReading() throws IOException {
        synchronized (rawStdout) {
            while (paused) {
                try {
                    rawStdout.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new java.io.InterruptedIOException();
                }
            }
        }
    }

    private static String javaBin() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    /**
     * Requests go through {@link RemoteEndpoint#request} by name; declaring them here tells
     * LSP4J to hand their results over as raw JSON.
     */
    interface NoRemoteMethods {
        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("initialize")
        CompletableFuture<JsonElement> initialize_(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("shutdown")
        CompletableFuture<JsonElement> shutdown(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("addJob")
        CompletableFuture<JsonElement> addJob(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("getProgress")
        CompletableFuture<JsonElement> getProgress(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("getPythonData")
        CompletableFuture<JsonElement> getPythonData(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("getDataBlocks")
        CompletableFuture<JsonElement> getDataBlocks(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("getJob")
        CompletableFuture<JsonElement> getJob(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("listJobs")
        CompletableFuture<JsonElement> listJobs(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("cancelJob")
        CompletableFuture<JsonElement> cancelJob(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("cancelAll")
        CompletableFuture<JsonElement> cancelAll(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("resumeJob")
        CompletableFuture<JsonElement> resumeJob(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("resumeAll")
        CompletableFuture<JsonElement> resumeAll(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("removeJob")
        CompletableFuture<JsonElement> removeJob(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("getStats")
        CompletableFuture<JsonElement> getStats(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("followLog")
        CompletableFuture<JsonElement> followLog(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("unfollowLog")
        CompletableFuture<JsonElement> unfollowLog(JsonElement params);

        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("noSuchMethod")
        CompletableFuture<JsonElement> noSuchMethod(JsonElement params);
    }

    /** Receives the server's notifications. */
    public final class Receiver {
        @JsonNotification("job/progress")
        public void progress(JsonObject params) {
            record("job/progress", params);
        }

        @JsonNotification("job/stateChanged")
        public void stateChanged(JsonObject params) {
            record("job/stateChanged", params);
        }

        @JsonNotification("$/progress")
        public void workDoneProgress(JsonObject params) {
            record("$/progress", params);
        }

        @JsonNotification("job/removed")
        public void jobRemoved(JsonObject params) {
            record("job/removed", params);
        }

        @JsonNotification("window/showMessage")
        public void showMessage(JsonObject params) {
            record("window/showMessage", params);
        }

        @JsonNotification("job/log")
        public void log(JsonObject params) {
            record("job/log", params);
        }

        @JsonNotification("textDocument/publishDiagnostics")
        public void publishDiagnostics(JsonObject params) {
            record("textDocument/publishDiagnostics", params);
        }

        /** The server's request for a work-done token: recorded like a notification, answered by {@link #onCreate}. */
        @org.eclipse.lsp4j.jsonrpc.services.JsonRequest("window/workDoneProgress/create")
        public CompletableFuture<Object> createWorkDoneProgress(JsonObject params) {
            record("window/workDoneProgress/create", params);
            return onCreate.apply(params);
        }
    }

    /** How the client answers window/workDoneProgress/create; by default at once with null (accepted). */
    volatile java.util.function.Function<JsonObject, CompletableFuture<Object>> onCreate =
            params -> CompletableFuture.completedFuture(null);

    private void record(String method, JsonObject params) {
        synchronized (notifications) {
            notifications.add(new Notification(method, params, System.currentTimeMillis()));
            notifications.notifyAll();
        }
    }

    /** Sends a request and returns its result; a JSON-RPC error is thrown as ResponseErrorException. */
    JsonElement call(String method, Object params) throws Exception {
        try {
            Object result = remote.request(method, params).get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            return (JsonElement) result;
        } catch (ExecutionException e) {
            if (e.getCause() instanceof ResponseErrorException r) throw r;
            throw e;
        } catch (TimeoutException e) {
            throw new AssertionError(method + " got no answer within " + REQUEST_TIMEOUT + "; server stderr:\n" + stderr(), e);
        }
    }

    JsonObject callObject(String method, Object params) throws Exception {
        return call(method, params).getAsJsonObject();
    }

    /** Sends a request that must fail, and returns its error. */
    ResponseError callError(String method, Object params) throws Exception {
        try {
            JsonElement r = call(method, params);
            throw new AssertionError(method + " should have failed but returned " + r);
        } catch (ResponseErrorException e) {
            return e.getResponseError();
        }
    }

    String addJob(JsonObject params) throws Exception {
        return callObject("addJob", params).get("jobId").getAsString();
    }

    /** Adds a job and waits for it to end; returns its final job/stateChanged params plus "jobId". */
    JsonObject runToEnd(JsonObject params, Duration timeout) throws Exception {
        String id = addJob(params);
        JsonObject done = awaitFinal(id, timeout);
        done.addProperty("jobId", id);
        return done;
    }

    /** Waits for the job's final job/stateChanged notification and returns its params. */
    JsonObject awaitFinal(String jobId, Duration timeout) throws InterruptedException {
        return awaitState(jobId, List.of("COMPLETED", "FAILED", "CANCELED"), timeout);
    }

    /** Waits for a job/stateChanged of the job into one of {@code states} and returns its params. */
    JsonObject awaitState(String jobId, List<String> states, Duration timeout) throws InterruptedException {
        Notification n = awaitNotification(x -> x.method().equals("job/stateChanged")
                && x.params().has("jobId") && x.params().get("jobId").getAsString().equals(jobId)
                && states.contains(x.params().get("state").getAsString()), timeout);
        return n.params();
    }

    Notification awaitNotification(Predicate<Notification> match, Duration timeout) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeout.toMillis();
        synchronized (notifications) {
            while (true) {
                for (Notification n : notifications) {
                    if (match.test(n)) return n;
                }
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    throw new AssertionError("no matching notification within " + timeout + "; got " + notifications.size()
                            + " notifications; server stderr:\n" + stderr());
                }
                notifications.wait(left);
            }
        }
    }

    List<Notification> notificationsFor(String jobId) {
        synchronized (notifications) {
            return notifications.stream().filter(n -> n.params().has("jobId")
                    && jobId.equals(n.params().get("jobId").getAsString())).toList();
        }
    }

    /** Every notification so far, in arrival order. */
    List<Notification> allNotifications() {
        synchronized (notifications) {
            return List.copyOf(notifications);
        }
    }

    /** LSP $/progress notifications carrying the token, in arrival order. */
    List<JsonObject> workDoneProgress(String token) {
        synchronized (notifications) {
            return notifications.stream().filter(n -> n.method().equals("$/progress")
                    && token.equals(n.params().get("token").getAsString())).map(n -> n.params().getAsJsonObject("value"))
                    .toList();
        }
    }

    String stderr() {
        try {
            String s = Files.readString(stderrFile, StandardCharsets.UTF_8);
            return s.length() > 20000 ? s.substring(s.length() - 20000) : s;
        } catch (IOException e) {
            return "(stderr unreadable: " + e + ")";
        }
    }

    /** Everything the server wrote to stdout so far, as text. */
    String rawStdout() {
        synchronized (rawStdout) {
            return rawStdout.toString(StandardCharsets.UTF_8);
        }
    }

    /** Checks that stdout so far is a sequence of Content-Length-framed JSON-RPC messages only. */
    void assertProtocolStreamClean() {
        byte[] all;
        synchronized (rawStdout) {
            all = rawStdout.toByteArray();
        }
        int pos = 0;
        int messages = 0;
        while (pos < all.length) {
            int headerEnd = indexOf(all, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII), pos);
            assertTrue(headerEnd > 0, "stdout has bytes that are not a framed message at offset " + pos + ": "
                    + preview(all, pos));
            String headers = new String(all, pos, headerEnd - pos, StandardCharsets.US_ASCII);
            int length = -1;
            for (String h : headers.split("\r\n")) {
                assertTrue(h.matches("(?i)(Content-Length|Content-Type): .*"), "unexpected header line \"" + h + "\" at " + pos);
                if (h.toLowerCase().startsWith("content-length:")) length = Integer.parseInt(h.substring(15).trim());
            }
            assertTrue(length >= 0, "message without Content-Length at offset " + pos);
            int bodyStart = headerEnd + 4;
            if (bodyStart + length > all.length) break; // the last message may still be arriving
            String body = new String(all, bodyStart, length, StandardCharsets.UTF_8);
            JsonObject msg = com.google.gson.JsonParser.parseString(body).getAsJsonObject();
            assertEquals("2.0", msg.get("jsonrpc").getAsString(), "not JSON-RPC 2.0: " + body);
            pos = bodyStart + length;
            messages++;
        }
        assertTrue(messages > 0, "no messages on stdout");
    }

    /** Every complete message the server wrote to stdout so far, in the order written. */
    List<JsonObject> rawMessages() {
        byte[] all;
        synchronized (rawStdout) {
            all = rawStdout.toByteArray();
        }
        List<JsonObject> out = new ArrayList<>();
        int pos = 0;
        while (pos < all.length) {
            int headerEnd = indexOf(all, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII), pos);
            if (headerEnd < 0) break;
            int length = -1;
            for (String h : new String(all, pos, headerEnd - pos, StandardCharsets.US_ASCII).split("\r\n")) {
                if (h.toLowerCase().startsWith("content-length:")) length = Integer.parseInt(h.substring(15).trim());
            }
            int bodyStart = headerEnd + 4;
            if (length < 0 || bodyStart + length > all.length) break;
            out.add(com.google.gson.JsonParser.parseString(new String(all, bodyStart, length, StandardCharsets.UTF_8))
                    .getAsJsonObject());
            pos = bodyStart + length;
        }
        return out;
    }

    private static String preview(byte[] all, int pos) {
        return new String(all, pos, Math.min(120, all.length - pos), StandardCharsets.UTF_8);
    }

    private static int indexOf(byte[] hay, byte[] needle, int from) {
        outer:
        for (int i = from; i <= hay.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }

    /**
     * Waits until {@code n} workers have a connected Blender (free or busy): a worker still
     * starting has no channel yet, so a test about connected workers must not race start-up.
     */
    void awaitConnectedWorkers(int n, Duration within) throws Exception {
        long deadline = System.currentTimeMillis() + within.toMillis();
        while (true) {
            JsonObject stats = callObject("getStats", new JsonObject());
            if (stats.get("freeWorkers").getAsInt() + stats.get("busyWorkers").getAsInt() >= n) return;
            if (System.currentTimeMillis() > deadline) fail(n + " workers never connected: " + stats + "\n" + stderr());
            Thread.sleep(50);
        }
    }

    /** All Blender processes that are children (at any depth) of the server. */
    List<ProcessHandle> blenderProcesses() {
        return process.descendants().filter(ProcessHandle::isAlive).toList();
    }

    /** Sends shutdown and exit and waits for the process; returns its exit code. */
    int shutdownAndExit() throws Exception {
        call("shutdown", null);
        remote.notify("exit", null);
        if (!process.waitFor(30, TimeUnit.SECONDS)) throw new AssertionError("server did not exit after exit");
        return process.exitValue();
    }

    @Override
    public void close() throws Exception {
        resumeReading();
        List<ProcessHandle> children = process.descendants().toList();
        if (process.isAlive()) {
            try {
                remote.request("shutdown", null).get(10, TimeUnit.SECONDS);
                remote.notify("exit", null);
            } catch (Exception ignored) {
                // Already gone or wedged: killed below.
            }
            if (!process.waitFor(15, TimeUnit.SECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        }
        children.forEach(ProcessHandle::destroyForcibly);
        Files.deleteIfExists(stderrFile);
    }
}
