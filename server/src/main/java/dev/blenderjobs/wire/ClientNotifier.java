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
import dev.blenderjobs.wire.messages.Messages.AddJobResult;
import com.google.gson.JsonElement;

import java.time.Duration;
import java.util.HashMap;
import java.util.concurrent.CompletableFuture;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Sends what the server tells its client without being asked, from its own thread, in order:
 * job notifications, LSP work-done progress ({@link WorkDoneReporter}), live logs
 * ({@link LogFollowers}) and the diagnostics of failed scripts ({@link ScriptDiagnostics}).
 * Progress is coalesced per job: the first report after a quiet {@code interval} goes out at
 * once, later ones at most once per interval, and a job's last value is always sent before its
 * next state change.
 */
public final class ClientNotifier implements JobEvents, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(ClientNotifier.class.getName());

    private final long intervalNanos;
    private final ScheduledExecutorService sender;
    private final LongSupplier nanoClock;
    private volatile JobClient client;
    /** The client declared textDocument.publishDiagnostics in initialize. */
    private volatile boolean diagnosticsWanted;
    /** While held, notifications wait here in order (LSP: nothing before the initialize answer). */
    private final Object gate = new Object();
    private java.util.List<Runnable> held;
    // Touched only on the sender thread.
    private final Map<String, JobProgressParams> pending = new HashMap<>();
    private final Map<String, Long> lastSent = new HashMap<>();
    private final WorkDoneTokens tokens;
    private final WorkDoneReporter workDone;
    private final ScriptDiagnostics diagnostics = new ScriptDiagnostics();
    private final LogFollowers logs = new LogFollowers(this);
    /**
     * Jobs whose addJob answer is not written yet, and their notifications made meanwhile, in
     * order. The intake completes the answer on its own thread once the job is posted to the
     * event loop, so the job's QUEUED (or any later) notification could otherwise overtake it.
     * Entries are added by {@link #holdUntilAnswered} before the job has any event; lists are
     * appended to and run only on the sender thread.
     */
    private final java.util.concurrent.ConcurrentHashMap<String, java.util.List<Runnable>> awaitingAnswer =
            new java.util.concurrent.ConcurrentHashMap<>();

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
        this.workDone = new WorkDoneReporter(this, tokens);
    }

    /** The jobs reported on server-created work-done tokens, shared with the endpoint that opens them. */
    WorkDoneTokens tokens() {
        return tokens;
    }

    /** The followers of live logs (followLog, unfollowLog). */
    LogFollowers logs() {
        return logs;
    }

    public void connect(JobClient client) {
        this.client = client;
    }

    JobClient client() {
        return client;
    }

    /** Whether the client shows diagnostics (textDocument.publishDiagnostics); from initialize. */
    void diagnostics(boolean wanted) {
        this.diagnosticsWanted = wanted;
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

    /**
     * A response was written to the client (WireLauncher calls this on the OutgoingQueue's
     * writer thread, right after writing it; so this only hands work on): what
     * must follow a particular answer goes now. The initialize answer opens the gate; an addJob
     * answer lets the job's work-done token be created; a followLog answer lets the job's
     * job/log notifications go.
     */
    public void answered(Object result) {
        if (result instanceof dev.blenderjobs.wire.messages.Messages.InitializeResult) {
            open();
        } else if (result instanceof AddJobResult added) {
            answerWritten(added.jobId());
            if (tokens.isOpen(added.jobId())) submit(() -> workDone.addJobAnswered(added.jobId(), added.name()));
        } else if (result instanceof dev.blenderjobs.wire.messages.Messages.FollowLogResult followed) {
            if (followed.following()) logs.answered(followed.jobId());
        }
    }

    /**
     * The job's notifications wait until its addJob answer is written ({@link #answered}) or
     * will never be ({@link #answerWritten} called by whoever saw it fail or be cancelled).
     * Call before the job can have any event.
     */
    public void holdUntilAnswered(String jobId) {
        awaitingAnswer.put(jobId, new java.util.ArrayList<>());
    }

    /**
     * The job's answer is written, or will never be: what waited is sent now, in order, and
     * later notifications of the job go at once. Any thread; a job not held is ignored.
     */
    public void answerWritten(String jobId) {
        // Nothing waited (the usual case: the answer is written long before the job's first
        // event reaches this thread): done here, without waking the sender.
        java.util.List<Runnable> waiting = awaitingAnswer.computeIfPresent(jobId, (k, l) -> l.isEmpty() ? null : l);
        if (waiting == null) return;
        // On the sender thread: a notification of the job that comes before this task finds
        // the job still held and queues behind the ones waiting.
        submit(() -> {
            java.util.List<Runnable> held = awaitingAnswer.remove(jobId);
            if (held != null) held.forEach(Runnable::run);
        });
    }

    /** A progress report waiting for its job's answer; a newer report replaces it (sender thread). */
    private final class HeldProgress implements Runnable {
        JobProgressParams params;

        HeldProgress(JobProgressParams params) {
            this.params = params;
        }

        @Override
        public void run() {
            onProgress(params);
        }
    }

    /** On the sender thread: runs the task now, or keeps it until the job's answer is written. */
    private void afterAnswer(String jobId, Runnable task) {
        if (awaitingAnswer.computeIfPresent(jobId, (k, l) -> {
            l.add(task);
            return l;
        }) == null) {
            task.run();
        }
    }

    /**
     * Sends {@code $/progress} on a client's token (LSP: valid only while the request that
     * carried it is pending); the future completes once it is handed to the outgoing queue (which
     * writes in order, so it precedes an answer queued after that), or dropped at stop.
     */
    CompletableFuture<Void> clientProgress(JsonElement token, WorkDoneProgressValue value) {
        CompletableFuture<Void> sent = new CompletableFuture<>();
        WorkDoneProgressParams params = new WorkDoneProgressParams(token, value);
        if (!submit(() -> {
            send(() -> client.workDoneProgress(params));
            sent.complete(null);
        })) {
            sent.complete(null);
        }
        return sent;
    }

    @Override
    public void progress(String jobId, double progress, String message, long reportedAtMillis) {
        JobProgressParams params = new JobProgressParams(jobId, progress, message, reportedAtMillis);
        submit(() -> {
            // Held (its answer not written yet, perhaps for long: a client that does not read):
            // reports in a row are kept as the latest one, so what waits stays a few entries.
            boolean held = awaitingAnswer.computeIfPresent(jobId, (k, waiting) -> {
                if (!waiting.isEmpty() && waiting.get(waiting.size() - 1) instanceof HeldProgress last) {
                    last.params = params;
                } else {
                    waiting.add(new HeldProgress(params));
                }
                return waiting;
            }) != null;
            if (!held) onProgress(params);
        });
    }

    @Override
    public void stateChanged(Job job, JobState previous) {
        JobStateChangedParams params = new JobStateChangedParams(job.jobId(), job.name(), job.state().name(),
                previous == null ? null : previous.name(), job.attempt(),
                job.error() == null ? null : JobViews.shortError(job.error()));
        submit(() -> afterAnswer(job.jobId(), () -> {
            flushPending(job.jobId());
            if (!job.state().isLive()) lastSent.remove(job.jobId());
            send(() -> client.stateChanged(params));
            workDone.stateChanged(job);
            if (diagnosticsWanted) {
                diagnostics.stateChanged(job).ifPresent(d -> send(() -> client.publishDiagnostics(d)));
            }
        }));
    }

    @Override
    public void removed(String jobId, RemovalReason reason) {
        // Only a resting job is removed: its last stateChanged already cleared its progress state.
        JobRemovedParams params = new JobRemovedParams(jobId, reason.name());
        submit(() -> afterAnswer(jobId, () -> {
            send(() -> client.jobRemoved(params));
            workDone.removed(jobId);
        }));
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

    /**
     * Runs the task on the sender thread, after everything submitted before it (held until open).
     *
     * @return false when it was dropped (the server is stopping)
     */
    boolean post(Runnable task) {
        return submit(task);
    }

    /** Runs the task on the sender thread after the delay (at open, if held until then). */
    void postAfter(Runnable task, Duration delay) {
        synchronized (gate) {
            if (held != null) {
                held.add(task);
                return;
            }
        }
        try {
            sender.schedule(fatalChecked(task), delay.toNanos(), TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException closed) {
            LOG.fine("notification dropped: the server is stopping");
        }
    }

    long nanoTime() {
        return nanoClock.getAsLong();
    }

    /** @return false when the task was dropped (the server is stopping) */
    private boolean submit(Runnable task) {
        synchronized (gate) {
            if (held != null) {
                held.add(task);
                return true;
            }
            return execute(task);
        }
    }

    /** The task, with an OutOfMemoryError (or another fatal error) reported to Fatal before it is rethrown. */
    private static Runnable fatalChecked(Runnable task) {
        return () -> {
            try {
                task.run();
            } catch (Throwable t) {
                dev.blenderjobs.concurrent.Fatal.check(t);
                throw t;
            }
        };
    }

    /** After close() (server stopping) there is nobody left to tell: events are dropped. */
    private boolean execute(Runnable task) {
        try {
            // The executor keeps a task's Throwable to itself: an OutOfMemoryError must not be.
            sender.execute(fatalChecked(task));
            return true;
        } catch (java.util.concurrent.RejectedExecutionException closed) {
            LOG.fine("notification dropped: the server is stopping");
            return false;
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
        workDone.progress(params);
    }

    /** Sends one message to the client, if one is connected; a failure is logged, never thrown. */
    void send(Runnable notification) {
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
