package dev.blenderjobs.jobs;

/** The life of a job. COMPLETED, FAILED and CANCELED are final. */
public enum JobState {
    QUEUED, ACTIVE, COMPLETED, FAILED, CANCELED;

    public boolean isFinal() {
        return this == COMPLETED || this == FAILED || this == CANCELED;
    }
}
