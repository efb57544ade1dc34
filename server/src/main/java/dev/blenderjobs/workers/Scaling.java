package dev.blenderjobs.workers;

import java.time.Duration;

/**
 * How many workers the pool keeps, and for how long each may live.
 * <ul>
 *   <li>{@link #fixed}: always {@code n} workers, all started at once and each replaced as soon
 *       as it exits (the local executor: Blender child processes that live as long as they
 *       are useful).</li>
 *   <li>Otherwise the pool is <em>dynamic</em>: it keeps at least {@code min} workers, starts
 *       more while jobs wait and none is free (up to {@code max}), releases one that has been
 *       idle for {@code idleRelease}, and treats a worker whose lease ends ({@link
 *       Worker#endsAtMillis}, a pilot's walltime) as a resource that runs out: it never gives a
 *       worker a job whose timeout is longer than the time the worker has left, and a worker
 *       with less than {@code drainMargin} left takes no more jobs, finishes the one it runs and
 *       is released, with a replacement started when it is needed.</li>
 * </ul>
 *
 * @param min         workers kept even when nothing waits
 * @param max         workers at most (draining ones not counted: their replacements overlap them)
 * @param idleRelease how long a worker may stay idle before it is released (above {@code min});
 *                    null = never
 * @param lifetime    how long a worker's lease lasts from its start (a pilot's walltime), for
 *                    refusing jobs that could never fit; null = unbounded
 * @param drainMargin a worker with less time left than this takes no more jobs
 */
public record Scaling(int min, int max, Duration idleRelease, Duration lifetime, Duration drainMargin) {
    /** Time a result needs to travel back after a job's timeout, on top of the timeout itself. */
    public static final Duration RESULT_ALLOWANCE = Duration.ofSeconds(5);
    /**
     * Part of a lease a worker may spend starting (a pilot's walltime runs from its start on the
     * node, Blender's start-up included), at most a quarter of the lease: a job whose timeout does
     * not fit in the rest is refused rather than left waiting for a worker that never has time.
     */
    public static final Duration START_ALLOWANCE = Duration.ofSeconds(15);

    public Scaling {
        if (min < 0 || max < 1 || min > max) {
            throw new IllegalArgumentException("scaling needs 0 <= min <= max and max >= 1, got min " + min + ", max " + max);
        }
        if (drainMargin == null || drainMargin.isNegative()) throw new IllegalArgumentException("drainMargin " + drainMargin);
    }

    /** Always {@code n} workers, started at once and replaced when they exit. */
    public static Scaling fixed(int n) {
        return new Scaling(n, n, null, null, Duration.ZERO);
    }

    /** Whether workers come and go (anything but {@link #fixed}). */
    public boolean dynamic() {
        return min < max || idleRelease != null || lifetime != null;
    }
}
