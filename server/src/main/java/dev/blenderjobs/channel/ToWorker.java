package dev.blenderjobs.channel;

import dev.blenderjobs.model.JobSpec;

/**
 * Messages the server sends to a worker runtime: the closed set of the channel protocol
 * (ARCHITECTURE.md, "The worker channel"). Encoded by {@link ChannelCodec}.
 */
public sealed interface ToWorker {

    /** The first frame on a new connection: the worker proves it holds the secret by answering it. */
    record Challenge(String nonce) implements ToWorker {
    }

    /** The handshake succeeded: jobs may follow. */
    record Welcome(String worker) implements ToWorker {
    }

    /** The handshake failed (wrong protocol version, wrong proof); the server closes the connection. */
    record Refused(String reason) implements ToWorker {
    }

    /** Run one attempt of a job. The worker answers with progress messages and one Completed or Failed. */
    record Run(String jobId, int attempt, JobSpec spec, RunFiles files) implements ToWorker {
    }

    /** Exit after the current job (if any). */
    record Shutdown() implements ToWorker {
    }

    /**
     * One chunk of an input file of a job, sent before its {@link Run} to a worker that has no
     * access to the server's disk (a binary frame: the bytes travel raw). The worker writes the
     * file into a job folder of its own; {@code name} picks the file from a closed set
     * ({@link #INPUT_NAMES}), so the server never hands a worker a path on its machine.
     *
     * @param offset where {@code data} goes in the file: chunks arrive in order, without gaps
     * @param last   the file is complete after this chunk
     */
    record FileChunk(String jobId, String name, long offset, boolean last, byte[] data) implements ToWorker {
    }

    /** The inputs a {@link FileChunk} may carry: the {@link RunFiles} fields that name files. */
    java.util.Set<String> INPUT_NAMES = java.util.Set.of("script", "passedData", "library", "blendFile");

    /**
     * Where an attempt's files are, on the worker's machine. Chosen by the server from its own
     * layout, never by a client or a worker. For a worker that receives its inputs over the
     * channel ({@link FileChunk}) the paths are relative ("input/script.py", "work", "result"):
     * the worker resolves them in a job folder of its own.
     *
     * @param script     the script's source (a private copy)
     * @param passedData the job's passedData as a JSON file
     * @param library    the passedDataBlocks library (a private copy), or null
     * @param blendFile  the .blend to open (a private copy), or null for empty data
     * @param workDir    the script's current directory
     * @param resultDir  where python_data.json and data_blocks.blend are to be written
     */
    record RunFiles(String script, String passedData, String library, String blendFile, String workDir,
                    String resultDir) {
    }
}
