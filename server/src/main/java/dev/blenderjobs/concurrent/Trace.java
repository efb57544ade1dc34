package dev.blenderjobs.concurrent;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.logging.Logger;

/**
 * Where one job's time goes, stage by stage, for people measuring the server (bench/RESULTS.md):
 * with {@code BLENDER_JOBS_TRACE=1} in the server's environment, each stage a job passes through
 * (request read, intake, files written, queued, answered, run sent, started, outcome read,
 * checked, settled, recorded, told) is stamped with {@link System#nanoTime()}, and when the
 * client has been told the job's final state its timeline goes to the log at INFO. Off by
 * default: then a mark is one read of a final boolean.
 */
public final class Trace {
    private static final Logger LOG = Logger.getLogger(Trace.class.getName());
    public static final boolean ON = "1".equals(System.getenv("BLENDER_JOBS_TRACE"));
    private static final Map<String, List<Object[]>> TIMELINES = new ConcurrentHashMap<>();

    private Trace() {
    }

    /** Stamps {@code stage} for the job. Any thread. */
    public static void mark(String jobId, String stage) {
        if (ON) mark(jobId, stage, System.nanoTime());
    }

    /** Stamps {@code stage} with a time taken earlier (before the job had its id). */
    public static void mark(String jobId, String stage, long now) {
        if (!ON || jobId == null) return;
        List<Object[]> timeline = TIMELINES.computeIfAbsent(jobId, k -> new ArrayList<>());
        synchronized (timeline) {
            timeline.add(new Object[]{stage, now});
        }
    }

    /** The job's timeline is complete: logs it (ms since its first stamp) and forgets it. */
    public static void end(String jobId, String stage) {
        if (!ON || jobId == null) return;
        mark(jobId, stage);
        List<Object[]> timeline = TIMELINES.remove(jobId);
        if (timeline == null) return;
        StringBuilder line = new StringBuilder("trace ").append(jobId).append(':');
        synchronized (timeline) {
            long first = (long) timeline.get(0)[1];
            for (Object[] mark : timeline) {
                line.append(' ').append(mark[0]).append('=')
                        .append(String.format(java.util.Locale.ROOT, "%.3f", ((long) mark[1] - first) / 1e6));
            }
        }
        LOG.info(line.toString());
    }
}
