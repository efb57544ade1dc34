package dev.blenderjobs.jobs;

import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.RemovalReason;

/** What the job manager announces; called on the event loop, implementations must not block. */
public interface JobEvents {
    void progress(String jobId, double progress, String message, long reportedAtMillis);

    /** The job's new state; {@code previous} is null for a job just added. */
    void stateChanged(Job job, JobState previous);

    /** The job left the table (removeJob, replaceExisting, retention); its files are to go. */
    default void removed(String jobId, RemovalReason reason) {
    }

    /**
     * Job records cannot be written (disk full, directory unwritable): the jobs go on, but a
     * restart would not know their latest state. Once per spell of failures; the message says
     * what failed and what to do.
     */
    default void recordsNotSaved(String message) {
    }

    /** After {@link #recordsNotSaved}: every job's latest state is on disk again. */
    default void recordsSavedAgain(String message) {
    }

    /** No-op listener, for tests and tools. */
    JobEvents NONE = new JobEvents() {
        @Override
        public void progress(String jobId, double progress, String message, long reportedAtMillis) {
        }

        @Override
        public void stateChanged(Job job, JobState previous) {
        }
    };
}
