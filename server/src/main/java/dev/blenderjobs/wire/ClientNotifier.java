package dev.blenderjobs.wire;

import dev.blenderjobs.jobs.JobEvents;
import dev.blenderjobs.jobs.JobState;
import dev.blenderjobs.jobs.JobView;
import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.JobStateChangedParams;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
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
    private volatile JobClient client;
    // Touched only on the sender thread.
    private final Map<String, JobProgressParams> pending = new HashMap<>();
    private final Map<String, Long> lastSent = new HashMap<>();

    public ClientNotifier(Duration interval) {
        this.intervalNanos = interval.toNanos();
        this.sender = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "client-notifier");
            t.setDaemon(true);
            return t;
        });
    }

    public void connect(JobClient client) {
        this.client = client;
    }

    @Override
    public void progress(String jobId, double progress, String message, long reportedAtMillis) {
        JobProgressParams params = new JobProgressParams(jobId, progress, message, reportedAtMillis);
        submit(() -> onProgress(params));
    }

    @Override
    public void stateChanged(JobView job, JobState previous) {
        JobStateChangedParams params = new JobStateChangedParams(job.id(), job.name(), job.state().name(),
                previous == null ? null : previous.name(), job.attempt(),
                job.failure() == null ? null : JobViews.errorInfo(job.failure(), false));
        submit(() -> {
            flushPending(job.id());
            if (job.state().isFinal()) lastSent.remove(job.id());
            send(() -> client.stateChanged(params));
        });
    }

    /** After close() (server stopping) there is nobody left to tell: events are dropped. */
    private void submit(Runnable task) {
        try {
            sender.execute(task);
        } catch (java.util.concurrent.RejectedExecutionException closed) {
            LOG.fine("notification dropped: the server is stopping");
        }
    }

    private void onProgress(JobProgressParams params) {
        long now = System.nanoTime();
        Long last = lastSent.get(params.jobId());
        boolean alreadyPending = pending.containsKey(params.jobId());
        if (!alreadyPending && (last == null || now - last >= intervalNanos)) {
            lastSent.put(params.jobId(), now);
            send(() -> client.progress(params));
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
        lastSent.put(jobId, System.nanoTime());
        send(() -> client.progress(params));
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
        sender.execute(() -> new HashMap<>(pending).keySet().forEach(this::flushPending));
        sender.shutdown();
        try {
            sender.awaitTermination(2, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
