package dev.blenderjobs.channel;

import com.google.gson.JsonObject;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.Timing;

import java.util.EnumSet;
import java.util.Set;

/**
 * Messages a worker runtime sends: the closed set of the channel protocol. {@link ChannelCodec}
 * builds them only from frames whose every field has the right type and range, so code that
 * receives one can trust its shape (not its honesty: a script can forge any of them).
 */
public sealed interface FromWorker {

    /** The kinds of failure a runtime may report; the others are decided by the server. */
    Set<FailureKind> REPORTABLE = EnumSet.of(FailureKind.SCRIPT_ERROR, FailureKind.SCRIPT_EXITED,
            FailureKind.RESULT_NOT_SERIALIZABLE, FailureKind.RESULT_WRITE_FAILED, FailureKind.SETUP_FAILED,
            FailureKind.WORKER_ERROR);

    /**
     * The job a message is about; null for the messages about the worker itself (hello, idle, and
     * a pilot's console output between jobs).
     */
    String jobId();

    /**
     * The answer to {@link ToWorker.Challenge}.
     *
     * @param protocol       the channel protocol version the runtime speaks ({@link ChannelCodec#PROTOCOL})
     * @param runtimeVersion the blender-jobs version the runtime comes from
     * @param worker         the worker id it was started as
     * @param proof          HMAC-SHA256 (hex) of "nonce:worker" keyed with the worker's secret
     */
    record Hello(int protocol, String runtimeVersion, String worker, long pid, String blenderVersion,
                 String pythonVersion, String proof) implements FromWorker {
        @Override
        public String jobId() {
            return null;
        }
    }

    /**
     * The runtime took the run it was sent: its main loop is alive and reading its channel. It
     * must come within seconds of the run (the pool kills a worker that stays silent), before any
     * other message about the job.
     */
    record Started(String jobId) implements FromWorker {
    }

    /** update_job_progress, coalesced by the runtime. */
    record Progress(String jobId, double progress, String message, long reportedAt) implements FromWorker {
    }

    /**
     * The attempt finished and its results are in the run's result directory.
     *
     * @param dataBlocks {collection: [names]} written to data_blocks.blend, or null when none
     * @param timing     setupMs, scriptMs, collectMs, resetMs
     */
    record Completed(String jobId, long pythonDataBytes, String pythonDataSha256, JsonObject dataBlocks,
                     Timing timing) implements FromWorker {
    }

    /** The attempt failed inside the runtime (the script raised, results not serializable...). */
    record Failed(String jobId, FailureKind kind, String message, String traceback) implements FromWorker {
    }

    /**
     * After a job's outcome: the worker has cleaned up after the job and may take the next one,
     * or, with {@code recycle}, must be replaced because the job left something that cannot be
     * undone in a running process (a thread still running, a patched standard module...).
     *
     * @param recycle what the job left, for the log; null when the worker is clean
     */
    record Idle(String recycle) implements FromWorker {
        @Override
        public String jobId() {
            return null;
        }
    }

    /**
     * Console output of a worker whose console is not a pipe to the server (a pilot on a cluster
     * node): raw bytes, in order, of the job {@code jobId}, or of the worker itself outside any
     * job when {@code jobId} is null. A job's output all arrives before its Completed or Failed.
     */
    record Console(String jobId, byte[] data) implements FromWorker {
    }

    /**
     * One chunk of a result file, sent by a worker that has no access to the server's disk before
     * its Completed; {@code name} is "pythonData" or "dataBlocks" ({@link #RESULT_NAMES}). The
     * receiver writes the chunks into the job's result folder, and the Completed that follows is
     * checked against those files as for a local worker.
     */
    record ResultChunk(String jobId, String name, long offset, boolean last, byte[] data) implements FromWorker {
    }

    /** The result files a {@link ResultChunk} may carry. */
    Set<String> RESULT_NAMES = Set.of("pythonData", "dataBlocks");
}
