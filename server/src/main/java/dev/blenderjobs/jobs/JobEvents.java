package dev.blenderjobs.jobs;

/** What the job manager announces; called on the event loop, implementations must not block. */
public interface JobEvents {
    void progress(String jobId, double progress, String message, long reportedAtMillis);

    void stateChanged(JobView job, JobState previous);

    /** The job left the table (removeJob, replaceExisting, retention); its files are to go. */
    default void removed(String jobId) {
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
