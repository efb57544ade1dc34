package dev.blenderjobs.jobs;

import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.RemovalReason;

import java.util.concurrent.CompletableFuture;

/** What the job manager announces; called on the event loop, implementations must not block. */
public interface JobEvents {
    void progress(String jobId, double progress, String message, long reportedAtMillis);

    /** The job's new state; {@code previous} is null for a job just added. */
    void stateChanged(Job job, JobState previous);

    /** The job left the table (removeJob, replaceExisting, retention); its files are to go. */
    default void removed(String jobId, RemovalReason reason) {
    }

    /**
     * The job left the table and its files are to go: completes once its removal is on disk
     * (a restarted server cannot list it again), with what could not be deleted ("path: reason",
     * or null), or fails when the removal could not be made durable. Listeners that keep no
     * files see {@link #removed}.
     */
    default CompletableFuture<String> removing(String jobId, RemovalReason reason) {
        removed(jobId, reason);
        return CompletableFuture.completedFuture(null);
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

    /**
     * Something about the state directory a person should know, with a stable kind for
     * programs: {@code JOB_FILES_GONE} (a listed job's directory was deleted),
     * {@code RECORDS_UNREADABLE} (records skipped when the directory was opened).
     */
    default void warning(String kind, String message) {
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
