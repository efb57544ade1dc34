package dev.blenderjobs.wire;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.blenderjobs.concurrent.Threads;
import dev.blenderjobs.concurrent.Trace;
import dev.blenderjobs.jobs.JobException;
import dev.blenderjobs.jobs.JobManager;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.Fields;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobRequest;
import dev.blenderjobs.model.JobResult;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.wire.messages.AddJobParams;
import dev.blenderjobs.wire.messages.Messages.AddJobResult;
import dev.blenderjobs.wire.messages.Messages.CancelAllResult;
import dev.blenderjobs.wire.messages.Messages.CancelJobResult;
import dev.blenderjobs.wire.messages.Messages.Capabilities;
import dev.blenderjobs.wire.messages.Messages.DataBlocksResult;
import dev.blenderjobs.wire.messages.Messages.FollowLogResult;
import dev.blenderjobs.wire.messages.Messages.UnfollowLogResult;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressValue;
import dev.blenderjobs.wire.messages.Messages.InitializeResult;
import dev.blenderjobs.wire.messages.Messages.ListJobsResult;
import dev.blenderjobs.wire.messages.Messages.ProgressResult;
import dev.blenderjobs.wire.messages.Messages.RemoveJobResult;
import dev.blenderjobs.wire.messages.Messages.ResumeAllResult;
import dev.blenderjobs.wire.messages.Messages.ResumeJobResult;
import dev.blenderjobs.wire.messages.Messages.StatsResult;
import dev.blenderjobs.wire.messages.JsonFile;
import org.eclipse.lsp4j.jsonrpc.ResponseErrorException;
import org.eclipse.lsp4j.jsonrpc.messages.ResponseError;
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification;
import org.eclipse.lsp4j.jsonrpc.services.JsonRequest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * Where every request and notification of the wire is handled. Handlers never block LSP4J's
 * reader thread: they validate cheap things inline, hand file work to {@code io} and job work
 * to the {@link JobManager}, and return futures.
 */
public final class JobServerEndpoint {
    private static final Logger LOG = Logger.getLogger(JobServerEndpoint.class.getName());

    /** Every request method, in protocol.md order; also the "requests" capability. */
    public static final List<String> REQUESTS = List.of("initialize", "shutdown", "addJob", "getProgress",
            "getPythonData", "getDataBlocks", "getJob", "listJobs", "cancelJob", "cancelAll", "resumeJob", "resumeAll",
            "removeJob", "getStats", "followLog", "unfollowLog");
    /** Every notification the server sends (JobClient's methods); also the "notifications" capability. */
    public static final List<String> NOTIFICATIONS = List.of("job/progress", "job/stateChanged", "job/removed",
            "job/log", "$/progress", "window/showMessage", "textDocument/publishDiagnostics");

    /** What the endpoint reports in initialize and needs to exit. */
    public interface Host {
        /**
         * Opens the state directory (on the first call) and describes the server.
         *
         * @param workspace the client's workspace (first workspace folder, rootUri or rootPath), or null
         */
        CompletableFuture<InitializeResult> initialize(String workspace, Capabilities capabilities);

        /** Stops workers and exits the process with the code; never returns. */
        void exit(int code);
    }

    private final JobManager jobs;
    private final ExecutorService io;
    /**
     * addJob's checks and file copies run here, on one thread, so that jobs are queued in the
     * order the client sent them (FIFO) even though the work is off the reader thread.
     */
    private final ExecutorService intake = java.util.concurrent.Executors.newSingleThreadExecutor(
            r -> Threads.daemonThread("job-intake", r));
    private final Host host;
    private final ClientNotifier notifier;
    private final WorkDoneTokens tokens;
    private final long maxMessageBytes;
    private final long maxInputBytes;
    private volatile boolean initialized;
    private volatile boolean shutdownRequested;
    /** The client declared capabilities.window.workDoneProgress in initialize. */
    private volatile boolean workDoneProgress;

    public JobServerEndpoint(JobManager jobs, ExecutorService io, Host host, ClientNotifier notifier,
                             long maxMessageBytes) {
        this(jobs, io, host, notifier, maxMessageBytes, Long.MAX_VALUE);
    }

    /** @param maxInputBytes largest file addJob copies into a job (--max-input-size) */
    public JobServerEndpoint(JobManager jobs, ExecutorService io, Host host, ClientNotifier notifier,
                             long maxMessageBytes, long maxInputBytes) {
        this.jobs = jobs;
        this.io = io;
        this.host = host;
        this.notifier = notifier;
        this.tokens = notifier.tokens();
        this.maxMessageBytes = maxMessageBytes;
        this.maxInputBytes = maxInputBytes;
    }

    // ------------------------------------------------------------------ lifecycle

    /**
     * Opens the state directory, which depends on the client's workspace, so job requests are
     * accepted only once this has answered (before that they get -32002).
     */
    @JsonRequest
    public CompletableFuture<InitializeResult> initialize(JsonObject params) {
        String workspace;
        try {
            workspace = workspaceOf(params);
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(translate(e));
        }
        workDoneProgress = declares(params, "window", "workDoneProgress");
        notifier.diagnostics(declares(params, "textDocument", "publishDiagnostics"));
        Capabilities caps = new Capabilities(REQUESTS, NOTIFICATIONS,
                Arrays.stream(JobState.values()).map(Enum::name).toList(),
                Arrays.stream(FailureKind.values()).map(Enum::name).toList(), maxMessageBytes);
        return host.initialize(workspace, caps).handle((result, error) -> {
            if (error != null) throw translate(error);
            initialized = true;
            return result;
        });
    }

    /**
     * The workspace that keys the default state directory: LSP's first workspace folder, else
     * rootUri, else the deprecated rootPath. A label only: the server hashes it, never uses it
     * as a path.
     */
    static String workspaceOf(JsonObject params) {
        Fields p = Fields.of("initialize", params);
        if (p.has("workspaceFolders")) {
            JsonElement folders = p.raw().get("workspaceFolders");
            if (!folders.isJsonArray()) throw p.invalid("workspaceFolders", "must be an array of {uri, name}, got "
                    + Fields.describe(folders));
            if (!folders.getAsJsonArray().isEmpty()) {
                JsonElement first = folders.getAsJsonArray().get(0);
                JsonElement uri = first.isJsonObject() ? first.getAsJsonObject().get("uri") : null;
                if (uri == null || !uri.isJsonPrimitive() || !uri.getAsJsonPrimitive().isString()
                        || uri.getAsString().isBlank()) {
                    throw p.invalid("workspaceFolders", "must hold objects with a \"uri\" string, got "
                            + Fields.describe(first));
                }
                return uri.getAsString();
            }
        }
        String rootUri = p.optionalString("rootUri");
        if (rootUri != null && !rootUri.isBlank()) return rootUri;
        String rootPath = p.optionalString("rootPath");
        return rootPath != null && !rootPath.isBlank() ? rootPath : null;
    }

    @JsonNotification
    public void initialized(JsonObject params) {
        LOG.fine("client initialized");
    }

    /** Cancels every unfinished job; the client then sends exit. Result: null, as in LSP. */
    @JsonRequest
    public CompletableFuture<Object> shutdown() {
        shutdownRequested = true;
        return jobs.shutdown("the client sent shutdown").thenApply(n -> null);
    }

    @JsonNotification
    public void exit() {
        int code = shutdownRequested ? 0 : 1;
        Thread t = new Thread(() -> host.exit(code), "exit");
        t.start();
    }

    // ------------------------------------------------------------------ jobs

    /**
     * Adds a job. The params arrive as {@link AddJobParams}: passedData was read as the message
     * streamed in, checked and kept as text, never as a tree. With the client's
     * {@code workDoneToken} (LSP: valid while this request is pending), the request itself is
     * reported on it: begin before the work, end before the answer. With
     * {@code "workDoneProgress": true} the job is reported on a token of the server's own, created
     * once this answer is written ({@link ClientNotifier#answered}).
     */
    @JsonRequest
    public CompletableFuture<AddJobResult> addJob(AddJobParams params) {
        boolean lspProgress = workDoneProgress;
        long received = Trace.ON ? System.nanoTime() : 0;
        AddJobParams given = params == null ? AddJobParams.of(null) : params;
        // One intake thread does parse and submit (which writes the inputs and queues the job)
        // for one addJob at a time, in the order the requests arrived. The answer is chained
        // onto one future made here, before the intake starts, and completed by the intake as
        // soon as the job's record is on disk (JobManager.submit): LSP4J's answer is handed to
        // the outgoing queue by the intake before the loop is even woken, instead of after a
        // hop through it (which cost 0.1 ms and more: the woken loop took the intake's CPU). The
        // loop may then take the job and tell of it before the answer is written: the job's
        // notifications are held in the notifier until it is, or is known never to be (failed,
        // or cancelled by the client).
        String id = JobManager.newJobId();
        notifier.holdUntilAnswered(id);
        CompletableFuture<AddJobResult> result = guard(() -> {
            CompletableFuture<Job> answer = new CompletableFuture<>();
            intake.execute(() -> {
                try {
                    JobRequest request = AddJobRequest.parse(given, lspProgress, maxInputBytes);
                    JsonElement token = request.workDoneToken();
                    if (token != null) {
                        String title = "Adding Blender job" + (request.spec().name() != null
                                ? " " + request.spec().name() : "");
                        notifier.clientProgress(token, new WorkDoneProgressValue("begin", title, false, null, null));
                    }
                    Trace.mark(id, "received", received);
                    Trace.mark(id, "parsed");
                    if (request.workDoneProgress()) tokens.open(id);
                    // Not waited for here: the intake takes the next addJob while the event loop
                    // queues this one (posts run in order, so FIFO holds).
                    java.util.function.Consumer<CompletableFuture<Job>> attach = submitted -> submitted.handle((job, error) -> {
                        if (error != null) {
                            tokens.close(id);
                            CompletionException failure = error instanceof CompletionException c ? c
                                    : new CompletionException(error);
                            if (token == null) return CompletableFuture.<Job>failedFuture(failure);
                            // The end goes out before the error answer, then the token is done.
                            return notifier.clientProgress(token, new WorkDoneProgressValue("end", null, null,
                                    "not added: " + translate(error).getMessage(), null)).<Job>thenApply(v -> {
                                        throw failure;
                                    });
                        }
                        if (token == null) return CompletableFuture.completedFuture(job);
                        String how = "queued as " + job.jobId();
                        return notifier.clientProgress(token, new WorkDoneProgressValue("end", null, null, how, null))
                                .thenApply(v -> job);
                    }).thenCompose(f -> f).whenComplete((job, error) -> {
                        if (error != null) answer.completeExceptionally(error);
                        else answer.complete(job);
                    });
                    try {
                        jobs.submit(id, request, attach);
                    } catch (RuntimeException e) {
                        attach.accept(CompletableFuture.failedFuture(e));
                    }
                } catch (Throwable t) {
                    answer.completeExceptionally(t);
                }
            });
            return answer.thenApply(job -> new AddJobResult(job.jobId(), job.name(), job.state().name(), job.attempt()));
        });
        result.whenComplete((added, error) -> {
            if (error != null) notifier.answerWritten(id); // no AddJobResult will be written for it
        });
        return result;
    }

    @JsonRequest
    public CompletableFuture<ProgressResult> getProgress(JsonObject params) {
        return guard(() -> jobs.get(jobId("getProgress", params)).thenApply(JobViews::progress));
    }

    /**
     * The value the script left in python_data, streamed from the job's result file as it is
     * (never held in memory: {@link JsonFile}). The file is opened without following a link,
     * and checked against the size and SHA-256 the job reported before it is sent, so that a
     * file changed or damaged since (truncated, emptied by a thread the job left behind,
     * replaced by a link) is never sent as the answer; what is sent is the file that was checked.
     */
    @JsonRequest
    public CompletableFuture<JsonFile> getPythonData(JsonObject params) {
        return guard(() -> jobs.finished(jobId("getPythonData", params)).thenApplyAsync(job -> {
            Path file = jobs.files().pythonDataOf(job.jobId());
            JobResult r = job.result();
            java.nio.channels.FileChannel channel;
            long size;
            String sha;
            try {
                channel = java.nio.channels.FileChannel.open(realFile(file), java.nio.file.StandardOpenOption.READ,
                        LinkOption.NOFOLLOW_LINKS);
                size = channel.size();
                sha = size == r.pythonDataBytes() && r.pythonDataSha256() != null ? sha256(channel) : null;
            } catch (IOException | RuntimeException e) {
                throw new JobException(JobException.Reason.JOB_FILES_UNAVAILABLE,
                        "The python data of job " + job.jobId() + " could not be read from " + file + ": " + e.getMessage()
                                + ". Was the job's directory changed by hand? Run the job again to get its result.",
                        jobData(job.jobId()));
            }
            String problem = null;
            if (size != r.pythonDataBytes()) {
                problem = "it is " + size + " bytes, but the job wrote " + r.pythonDataBytes();
            } else if (r.pythonDataSha256() != null && !r.pythonDataSha256().equals(sha)) {
                problem = "its content is not what the job wrote (the SHA-256 differs)";
            }
            if (problem != null) {
                closeQuietly(channel);
                throw new JobException(JobException.Reason.RESULT_DAMAGED, "The python data of job " + job.jobId()
                        + " (" + file + ") was changed or damaged after the job completed: " + problem + ". Run the "
                        + "job again to get its result.", jobData(job.jobId()));
            }
            // Written by the worker runtime with json.dumps and checked above: valid JSON, sent as it is.
            return new JsonFile(channel, size);
        }, io));
    }

    private static void closeQuietly(java.nio.channels.FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // Read-only.
        }
    }

    /** SHA-256 of the whole file, read in chunks from the open channel (hex). */
    private static String sha256(java.nio.channels.FileChannel channel) throws IOException {
        try {
            java.security.MessageDigest digest = java.security.MessageDigest.getInstance("SHA-256");
            java.nio.ByteBuffer buffer = java.nio.ByteBuffer.allocate(256 * 1024);
            long position = 0;
            int n;
            while ((n = channel.read(buffer, position)) > 0) {
                buffer.flip();
                digest.update(buffer);
                buffer.clear();
                position += n;
            }
            return java.util.HexFormat.of().formatHex(digest.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every Java 17", e);
        }
    }

    private static JsonObject jobData(String jobId) {
        JsonObject data = new JsonObject();
        data.addProperty("jobId", jobId);
        return data;
    }

    /** The file itself, refusing a symbolic link (a job could point its result anywhere). */
    private static Path realFile(Path file) throws IOException {
        if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(Files.isSymbolicLink(file) ? "it is a symbolic link, not the file the job wrote"
                    : "it is missing or not a regular file");
        }
        return file;
    }

    @JsonRequest
    public CompletableFuture<DataBlocksResult> getDataBlocks(JsonObject params) {
        return guard(() -> jobs.finished(jobId("getDataBlocks", params))
                .thenApply(job -> JobViews.dataBlocks(job, jobs.files())));
    }

    @JsonRequest
    public CompletableFuture<JsonObject> getJob(JsonObject params) {
        // The log's tail may be read from its file: on the I/O executor, not the event loop.
        // A finished job's failures may be summaries in the table: the whole is read from its record.
        return guard(() -> jobs.inspect(jobId("getJob", params)).thenApplyAsync(i -> JobViews.detail(
                i.detailsOnDisk() ? jobs.files().withRecordedDetails(i.job()) : i.job(),
                jobs.files(), i.log().file(), i.log().tail()), io));
    }

    @JsonRequest
    public CompletableFuture<ListJobsResult> listJobs(JsonObject params) {
        return guard(() -> {
            Fields p = Fields.of("listJobs", params);
            p.allowOnly(Set.of("state", "states", "name"));
            Set<JobState> states = EnumSet.noneOf(JobState.class);
            if (p.has("state")) states.add(state(p, "state", p.requiredString("state")));
            if (p.has("states")) {
                JsonElement e = p.raw().get("states");
                if (!e.isJsonArray()) throw p.invalid("states", "must be an array of job states");
                for (JsonElement s : e.getAsJsonArray()) {
                    if (!s.isJsonPrimitive() || !s.getAsJsonPrimitive().isString()) {
                        throw p.invalid("states", "must be an array of job states, got " + Fields.describe(s));
                    }
                    states.add(state(p, "states", s.getAsString()));
                }
            }
            String name = p.optionalString("name");
            return jobs.list(states).thenApply(all -> {
                List<Job> kept = name == null ? all : all.stream().filter(j -> name.equals(j.name())).toList();
                return new ListJobsResult(kept.stream().map(JobViews::summary).toList(), kept.size());
            });
        });
    }

    @JsonRequest
    public CompletableFuture<CancelJobResult> cancelJob(JsonObject params) {
        return guard(() -> jobs.cancel(jobId("cancelJob", params)).thenApply(e -> new CancelJobResult(
                e.getKey().jobId(), e.getKey().state().name(), e.getValue().name(),
                !e.getValue().isFinal() && e.getKey().state() == JobState.CANCELED)));
    }

    @JsonRequest
    public CompletableFuture<CancelAllResult> cancelAll(JsonObject params) {
        return guard(() -> {
            Fields.of("cancelAll", params).allowOnly(Set.of());
            return jobs.cancelAll().thenApply(CancelAllResult::new);
        });
    }

    @JsonRequest
    public CompletableFuture<ResumeJobResult> resumeJob(JsonObject params) {
        return guard(() -> jobs.resume(jobId("resumeJob", params)).thenApply(job -> new ResumeJobResult(job.jobId(),
                job.state().name(), JobState.INTERRUPTED.name())));
    }

    @JsonRequest
    public CompletableFuture<ResumeAllResult> resumeAll(JsonObject params) {
        return guard(() -> {
            Fields.of("resumeAll", params).allowOnly(Set.of());
            return jobs.resumeAll().thenApply(ids -> new ResumeAllResult(ids.size(), ids));
        });
    }

    @JsonRequest
    public CompletableFuture<RemoveJobResult> removeJob(JsonObject params) {
        return guard(() -> jobs.remove(jobId("removeJob", params)).thenApply(r -> new RemoveJobResult(r.job().jobId(),
                true, r.leftBehind())));
    }

    /**
     * The job's console so far (a bounded tail) and, while the job has not come to rest, its
     * output from then on as job/log notifications, sent after this answer.
     */
    @JsonRequest
    public CompletableFuture<FollowLogResult> followLog(JsonObject params) {
        // The tail is read from the log file: on the I/O executor, not the event loop.
        return guard(() -> jobs.inspect(jobId("followLog", params))
                .thenApplyAsync(i -> notifier.logs().follow(i.job().jobId(), i.log()), io));
    }

    @JsonRequest
    public CompletableFuture<UnfollowLogResult> unfollowLog(JsonObject params) {
        // Answered from the notifier's thread once the follow is gone: no job/log follows the answer.
        return guard(() -> jobs.get(jobId("unfollowLog", params)).thenCompose(job -> notifier.logs()
                .unfollow(job.jobId()).thenApply(wasFollowing -> new UnfollowLogResult(job.jobId(), false))));
    }

    @JsonRequest
    public CompletableFuture<StatsResult> getStats(JsonObject params) {
        return guard(() -> jobs.stats().thenApply(s -> new StatsResult(s.queued(), s.active(), s.completed(),
                s.failed(), s.canceled(), s.interrupted(), s.total(), s.executor(), s.workers(), s.freeWorkers(),
                s.busyWorkers(), s.workerDetails())));
    }

    /**
     * LSP: the user canceled a work-done progress in the client's UI. Cancels the job reported
     * on that token, one the server created for it (a notification: nothing is answered).
     */
    @JsonNotification("window/workDoneProgress/cancel")
    public void cancelWorkDoneProgress(JsonObject params) {
        JsonElement token = params == null ? null : params.get("token");
        if (token == null || !initialized) return;
        String jobId = tokens.jobOf(token);
        if (jobId != null) jobs.cancel(jobId);
    }

    // ------------------------------------------------------------------ helpers

    /**
     * Whether the client declared {@code capabilities.<area>.<capability>}: true, or any object
     * (LSP's textDocument.publishDiagnostics is an object of options).
     */
    static boolean declares(JsonObject params, String area, String capability) {
        try {
            JsonElement v = params.getAsJsonObject("capabilities").getAsJsonObject(area).get(capability);
            if (v == null || v.isJsonNull()) return false;
            if (v.isJsonObject()) return true;
            return v.isJsonPrimitive() && v.getAsJsonPrimitive().isBoolean() && v.getAsBoolean();
        } catch (RuntimeException absent) {
            return false;
        }
    }

    private static String jobId(String method, JsonObject params) {
        Fields p = Fields.of(method, params);
        p.allowOnly(Set.of("jobId"));
        return p.requiredString("jobId");
    }

    private static JobState state(Fields p, String field, String value) {
        try {
            return JobState.valueOf(value);
        } catch (IllegalArgumentException e) {
            String states = String.join(", ", Arrays.stream(JobState.values()).map(Enum::name).toList());
            throw p.invalid(field, "must name job states (" + states + "), got \"" + value + "\"");
        }
    }

    /**
     * Checks the lifecycle, runs the handler and turns job exceptions into JSON-RPC errors.
     * A handler that throws (even an Error) yields an error response, never a dead reader.
     */
    private <T> CompletableFuture<T> guard(Supplier<CompletableFuture<T>> handler) {
        if (!initialized) {
            return CompletableFuture.failedFuture(new ResponseErrorException(new ResponseError(
                    ErrorCodes.SERVER_NOT_INITIALIZED, "The server is not initialized; send initialize first.", null)));
        }
        if (shutdownRequested) {
            return CompletableFuture.failedFuture(new ResponseErrorException(new ResponseError(
                    ErrorCodes.INVALID_REQUEST, "The server is shutting down (shutdown was requested); only exit is "
                    + "accepted now.", null)));
        }
        CompletableFuture<T> future;
        try {
            future = handler.get();
        } catch (Throwable t) {
            future = CompletableFuture.failedFuture(t);
        }
        return future.handle((value, error) -> {
            if (error == null) return value;
            throw translate(error);
        });
    }

    static RuntimeException translate(Throwable error) {
        Throwable cause = error;
        while (cause instanceof CompletionException && cause.getCause() != null) cause = cause.getCause();
        dev.blenderjobs.concurrent.Fatal.check(cause); // an OutOfMemoryError ends the server, loudly
        if (cause instanceof ResponseErrorException r) return r;
        if (cause instanceof Fields.InvalidFieldException f) {
            JsonObject data = new JsonObject();
            data.addProperty("field", f.field());
            data.addProperty("reason", f.reason());
            return new ResponseErrorException(new ResponseError(ErrorCodes.INVALID_PARAMS, f.getMessage(), data));
        }
        if (cause instanceof JobException j) {
            return new ResponseErrorException(new ResponseError(ErrorCodes.of(j.reason()), j.getMessage(),
                    errorData(j)));
        }
        LOG.log(java.util.logging.Level.SEVERE, "request failed unexpectedly", cause);
        return new ResponseErrorException(new ResponseError(ErrorCodes.INTERNAL_ERROR,
                "Internal error: " + cause + ". This is a bug in blender-jobs; the server log has details.", null));
    }

    private static JsonObject errorData(JobException j) {
        JsonObject data = j.data() instanceof JsonObject o ? o.deepCopy() : new JsonObject();
        data.addProperty("errorKind", j.reason().name());
        return data;
    }
}
