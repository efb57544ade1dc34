package dev.blenderjobs.workers;

/** What the pool tells its owner; always called on the event loop thread. */
public interface WorkerEvents {
    /** A worker became idle: queued jobs may be dispatched. */
    void workerAvailable();

    void progress(String jobId, int attempt, double progress, String message, long reportedAtMillis);

    void attemptFinished(String jobId, int attempt, AttemptOutcome outcome);

    /** Workers keep failing to start; jobs waiting for one should fail with this message. */
    void workersFailing(String message);
}
