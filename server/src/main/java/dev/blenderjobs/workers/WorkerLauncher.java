package dev.blenderjobs.workers;

/**
 * How workers are started and reached: the seam between where a worker lives and how the pool
 * uses it. {@code local.LocalLauncher} starts a Blender child process that connects back over
 * loopback; a cluster launcher would submit a pilot job that connects back over the network.
 * The pool sees only {@link Worker}s and the {@link WorkerListener} events.
 */
public interface WorkerLauncher {
    /**
     * Starts a worker in the background and returns at once; its life is reported to
     * {@code listener}. Called on the event loop: must not block.
     *
     * @param id unique for the server's life, e.g. {@code w1.3}
     */
    Worker launch(String id, WorkerListener listener);

    /** A few words for logs and getStats, e.g. "local". */
    String name();
}
