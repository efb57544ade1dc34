package dev.blenderjobs.jobs;

/** What the job manager announces; called on the event loop, implementations must not block. */
public interface JobEvents {
    void progress(String jobId, double progress, String message, long reportedAtMillis);

    void stateChanged(JobView job, JobState previous);

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
        public void stateChanged(JobView job, JobState previous) {
        }
    };
}
