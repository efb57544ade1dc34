package dev.blenderjobs.model;

/**
 * The life of a job. COMPLETED, FAILED and CANCELED are final. INTERRUPTED is a resting state:
 * the server stopped (or died) while the job was QUEUED or ACTIVE, and {@code resumeJob} puts
 * it back in the queue.
 */
public enum JobState {
    QUEUED, ACTIVE, COMPLETED, FAILED, CANCELED, INTERRUPTED;

    public boolean isFinal() {
        return this == COMPLETED || this == FAILED || this == CANCELED;
    }

    /** The states whose job carries an error saying why (FAILED, INTERRUPTED). */
    public boolean carriesError() {
        return this == FAILED || this == INTERRUPTED;
    }

    /** Waiting for or holding a worker: what cancel stops and what a server stop interrupts. */
    public boolean isLive() {
        return this == QUEUED || this == ACTIVE;
    }
}
