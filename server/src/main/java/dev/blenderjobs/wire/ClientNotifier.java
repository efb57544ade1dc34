package dev.blenderjobs.wire;

import dev.blenderjobs.concurrent.Threads;
import dev.blenderjobs.jobs.JobEvents;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.RemovalReason;
import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.JobRemovedParams;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;
import dev.blenderjobs.wire.messages.Messages.ShowMessageParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressValue;
import com.google.gson.JsonElement;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Sends job notifications to the client from its own thread, in order. Progress is coalesced
 * per job: the first report after a quiet {@code interval} goes out at once, later ones at most
 * once per interval, and a job's last value is always sent before its next state change.
 */
public final class ClientNotifier implements JobEvents, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(ClientNotifier.class.getName());

    private final long intervalNanos;
    private final ScheduledExecutorService sender;
    private final LongSupplier nanoClock;
    private volatile JobClient client;
    /** While held, notifications wait here in order (LSP: nothing before the initialize answer). */
    private final Object gate = new Object();
    private java.util.List<Runnable> held;
    // Touched only on the sender thread.
    private final Map<String, JobProgressParams> pending = new HashMap<>();
    private final Map<String, Long> lastSent = new HashMap<>();
    /** Jobs whose LSP work-done progress has begun: jobId -> the client's token. */
    private final Map<String, JsonElement> workDone = new HashMap<>();
    private final WorkDoneTokens tokens;

    public ClientNotifier(Duration interval) {
        this(interval, new WorkDoneTokens());
    }

    ClientNotifier(Duration interval, WorkDoneTokens tokens) {
        this(interval, tokens, Executors.newSingleThreadScheduledExecutor(r -> Threads.daemonThread("client-notifier", r)),
                System::nanoTime);
    }

    /**
     * With a given sender and clock (nanoseconds, like {@link System#nanoTime()}): tests drive
     * both by hand instead of sleeping. The sender must run its tasks one at a time, in order.
     */
    ClientNotifier(Duration interval, WorkDoneTokens tokens, ScheduledExecutorService sender, LongSupplier nanoClock) {
        this.intervalNanos = interval.toNanos();
        this.tokens = tokens;
        this.sender = sender;
        this.nanoClock = nanoClock;
    }

    /** The work-done tokens of jobs, shared with the endpoint that binds them. */
    WorkDoneTokens tokens() {
        return tokens;
    }

    public void connect(JobClient client) {
        this.client = client;
    }

    /** Keeps notifications back until {@link #open()}; call before any event. */
    public void hold() {
        synchronized (gate) {
            if (held == null) held = new java.util.ArrayList<>();
        }
    }

    /** Sends what was held, in order, and everything after at once. Called once initialize has answered. */
    public void open() {
        synchronized (gate) {
            if (held == null) return;
            java.util.List<Runnable> waiting = held;
            held = null;
            waiting.forEach(this::execute);
        }
    }

    @Override
    public void progress(String jobId, double progress, String message, long reportedAtMillis) {
        JobProgressParams params = new JobProgressParams(jobId, progress, message, reportedAtMillis);
        submit(() -> onProgress(params));
    }

    @Override
    public void stateChanged(Job job, JobState previous) {
        JobStateChangedParams params = new JobStateChangedParams(job.jobId(), job.name(), job.state().name(),
                previous == null ? null : previous.name(), job.attempt(),
                job.error() == null ? null : JobViews.shortError(job.error()));
        submit(() -> {
            flushPending(job.jobId());
            if (!job.state().isLive()) lastSent.remove(job.jobId());
            send(() -> client.stateChanged(params));
            workDoneState(job);
        });
    }

    @Override
    public void removed(String jobId, RemovalReason reason) {
        // Only a resting job is removed: its last stateChanged already cleared its progress state.
        JobRemovedParams params = new JobRemovedParams(jobId, reason.name());
        submit(() -> send(() -> client.jobRemoved(params)));
    }

    @Override
    public void recordsNotSaved(String message) {
        ShowMessageParams params = new ShowMessageParams(ShowMessageParams.WARNING, message, "RECORDS_NOT_SAVED");
        submit(() -> send(() -> client.showMessage(params)));
    }

    @Override
    public void recordsSavedAgain(String message) {
        ShowMessageParams params = new ShowMessageParams(ShowMessageParams.INFO, message, "RECORDS_SAVED_AGAIN");
        submit(() -> send(() -> client.showMessage(params)));
    }

    @Override
    public void warning(String kind, String message) {
        ShowMessageParams params = new ShowMessageParams(ShowMessageParams.WARNING, message, kind);
        submit(() -> send(() -> client.showMessage(params)));
    }

    /** window/showMessage of type error (1), e.g. SERVER_OUT_OF_MEMORY just before the server ends. */
    public void error(String kind, String message) {
        ShowMessageParams params = new ShowMessageParams(ShowMessageParams.ERROR, message, kind);
        submit(() -> send(() -> client.showMessage(params)));
    }

    private void submit(Runnable task) {
        synchronized (gate) {
            if (held != null) {
                held.add(task);
                return;
            }
            execute(task);
        }
    }

    /** After close() (server stopping) there is nobody left to tell: events are dropped. */
    private void execute(Runnable task) {
        try {
            // The executor keeps a task's Throwable to itself: an OutOfMemoryError must not be.
            sender.execute(() -> {
                try {
                    task.run();
                } catch (Throwable t) {
                    dev.blenderjobs.concurrent.Fatal.check(t);
                    throw t;
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException closed) {
            LOG.fine("notification dropped: the server is stopping");
        }
    }

    private void onProgress(JobProgressParams params) {
        long now = nanoClock.getAsLong();
        Long last = lastSent.get(params.jobId());
        boolean alreadyPending = pending.containsKey(params.jobId());
        if (!alreadyPending && (last == null || now - last >= intervalNanos)) {
            lastSent.put(params.jobId(), now);
            sendProgress(params);
            return;
        }
        pending.put(params.jobId(), params);
        if (!alreadyPending) {
            long delay = Math.max(0, last + intervalNanos - now);
            sender.schedule(() -> flushPending(params.jobId()), delay, TimeUnit.NANOSECONDS);
        }
    }

    private void flushPending(String jobId) {
        JobProgressParams params = pending.remove(jobId);
        if (params == null) return;
        lastSent.put(jobId, nanoClock.getAsLong());
        sendProgress(params);
    }

    private void sendProgress(JobProgressParams params) {
        send(() -> client.progress(params));
        JsonElement token = workDone.get(params.jobId());
        if (token != null) {
            int percent = (int) Math.round(params.progress() * 100);
            send(() -> client.workDoneProgress(new WorkDoneProgressParams(token,
                    new WorkDoneProgressValue("report", null, null, params.message(), percent))));
        }
    }

    /** LSP work-done progress: begin when the job is first seen, end when it rests. */
    private void workDoneState(Job job) {
        JsonElement token = tokens.tokenOf(job.jobId());
        if (token == null) return;
        if (!workDone.containsKey(job.jobId()) && job.state().isLive()) {
            workDone.put(job.jobId(), token);
            String title = "Blender job " + (job.name() != null ? job.name() : job.jobId());
            send(() -> client.workDoneProgress(new WorkDoneProgressParams(token,
                    new WorkDoneProgressValue("begin", title, true, job.state().name().toLowerCase(), 0))));
        } else if (!job.state().isLive()) {
            tokens.release(job.jobId());
            if (workDone.remove(job.jobId()) == null) return;
            String message = job.state().name().toLowerCase()
                    + (job.state().carriesError() && job.error() != null ? ": " + job.error().message() : "");
            send(() -> client.workDoneProgress(new WorkDoneProgressParams(token,
                    new WorkDoneProgressValue("end", null, null, message, null))));
        }
    }

    private void send(Runnable notification) {
        if (client == null) return;
        try {
            notification.run();
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "could not send a notification to the client", e);
        }
    }

    /** Sends what is pending and stops; waits briefly so the last notifications are written. */
    @Override
    public void close() {
        execute(() -> new HashMap<>(pending).keySet().forEach(this::flushPending));
        sender.shutdown();
        try {
            sender.awaitTermination(2, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
