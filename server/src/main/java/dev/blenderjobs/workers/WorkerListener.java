package dev.blenderjobs.workers;

import dev.blenderjobs.channel.FromWorker;

/**
 * What a worker reports about itself, from its launcher's threads; implementations hand off to
 * the event loop. For one worker: at most one {@link #connected}, then messages, then exactly one
 * {@link #exited}, always last.
 */
public interface WorkerListener {
    /** The worker authenticated and is ready for jobs. */
    void connected(Worker worker, FromWorker.Hello hello);

    /**
     * A message whose shape the codec checked; a job's Completed or Failed arrives after that
     * job's console output is in its log, and a Completed after its result files were checked.
     */
    void message(Worker worker, FromWorker message);

    /** The worker broke the channel protocol; it is being killed (its exit follows). */
    void violation(Worker worker, String problem);

    void exited(Worker worker, WorkerExit exit);
}
