package dev.blenderjobs.workers;

import dev.blenderjobs.channel.ToWorker;

import java.time.Duration;
import java.util.OptionalLong;

/**
 * A worker as the pool uses it: one Blender running the runtime, reached over its channel,
 * whatever started it and wherever it runs. Made by a {@link WorkerLauncher}, which reports its
 * life to a {@link WorkerListener}. Every method returns at once (none blocks on the worker),
 * except {@link #awaitGone}, which is for server shutdown only.
 */
public interface Worker {
    /** The id it was started as, e.g. {@code w1.3} (slot 1, third process). */
    String id();

    /** Its Blender's process id (on its own machine), or -1 before it is known. */
    long pid();

    /** Its resident memory, when it can be measured cheaply. */
    OptionalLong residentBytes();

    /** Hands it one attempt; the job's console output goes to {@code log}. Call only when connected. */
    void run(ToWorker.Run run, JobLog log);

    /** Asks it to exit after its current job; kills it if it has not after a grace period. */
    void stop();

    /** Kills it and everything it started, now. */
    void kill();

    /**
     * When its lease on its machine ends (a pilot's walltime), in epoch milliseconds, as far as
     * it is known; a conservative (early) estimate is fine. Empty for a worker without one.
     */
    default java.util.OptionalLong endsAtMillis() {
        return OptionalLong.empty();
    }

    /**
     * Whether what it was last sent (a run, with the job's input files a pilot receives over its
     * channel before it) has gone out to it. The pool's take timeout (answer a run with
     * {@code started}) counts from then: a worker cannot take a run that is still on its way. A
     * worker whose runs are small messages says true at once.
     */
    default boolean delivered() {
        return true;
    }

    /** The batch-system job it runs in, for getStats; null for a worker that is not one. */
    default BatchJob batchJob() {
        return null;
    }

    /**
     * Waits up to {@code grace} for it to exit (after {@link #stop}), then kills it and everything
     * it started, and waits until they are gone (about a second more at most).
     */
    void awaitGone(Duration grace);
}
