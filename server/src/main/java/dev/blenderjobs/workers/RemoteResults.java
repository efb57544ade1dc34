package dev.blenderjobs.workers;

import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ProtocolViolation;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * The result files of one attempt, received from a worker that does not share the server's disk
 * ({@link FromWorker.ResultChunk}s): each file grows under a {@code .part} name in the job's
 * result folder as its chunks arrive and is renamed into place after its last one, so memory
 * stays at one chunk and a reader never sees half a file. The folder is emptied when the
 * attempt's first chunk arrives (a retry never sees an earlier attempt's results). The Completed
 * that follows is then checked by {@link ResultCheck} exactly as a local worker's. Used on one
 * worker's channel reader thread only.
 */
public final class RemoteResults {
    /** The largest result file accepted from a worker. */
    public static final long MAX_FILE_BYTES = 16L * 1024 * 1024 * 1024;

    private final Path resultDir;
    private final String jobId;
    private boolean started;
    private String openName;
    private OutputStream open;
    private long written;

    /** For one attempt of {@code jobId}, writing into {@code resultDir} (the server's own path). */
    public RemoteResults(String jobId, Path resultDir) {
        this.jobId = jobId;
        this.resultDir = resultDir;
    }

    public static String fileOf(String name) {
        return switch (name) {
            case "pythonData" -> ResultCheck.PYTHON_DATA;
            case "dataBlocks" -> ResultCheck.DATA_BLOCKS;
            default -> throw new IllegalArgumentException(name);
        };
    }

    /** Writes one chunk; a chunk out of order, of another job, or past the size limit is a violation. */
    public void accept(FromWorker.ResultChunk chunk) throws ProtocolViolation {
        if (!chunk.jobId().equals(jobId)) {
            throw new ProtocolViolation("a result chunk for job " + chunk.jobId() + " while it ran job " + jobId);
        }
        try {
            if (!started) {
                clear();
                started = true;
            }
            if (chunk.offset() == 0) {
                if (open != null) throw new ProtocolViolation("a new result file before " + openName + " was complete");
                Path part = part(chunk.name());
                Files.deleteIfExists(part);
                open = Files.newOutputStream(part, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
                        LinkOption.NOFOLLOW_LINKS);
                openName = chunk.name();
                written = 0;
            }
            if (open == null || !chunk.name().equals(openName) || chunk.offset() != written) {
                throw new ProtocolViolation("a chunk of " + chunk.name() + " at offset " + chunk.offset()
                        + " out of order");
            }
            if (written + chunk.data().length > MAX_FILE_BYTES) {
                throw new ProtocolViolation("a result file larger than " + MAX_FILE_BYTES + " bytes");
            }
            open.write(chunk.data());
            written += chunk.data().length;
            if (chunk.last()) {
                open.close();
                open = null;
                Files.move(part(openName), resultDir.resolve(fileOf(openName)), StandardCopyOption.REPLACE_EXISTING,
                        StandardCopyOption.ATOMIC_MOVE);
                openName = null;
            }
        } catch (ProtocolViolation v) {
            abandon();
            throw v;
        } catch (IOException e) {
            abandon();
            // The server's disk, not the worker: but the result cannot be kept, and the Completed
            // that follows would not match; say so as the reason the attempt fails.
            throw new ProtocolViolation("a result the server could not store in " + resultDir + " (" + e + "); "
                    + "check the state directory's disk");
        }
    }

    /**
     * The attempt's outcome arrived: every file must be complete; an attempt that sent none has
     * its folder emptied now, so that nothing of an earlier attempt is taken for its result.
     */
    public void finish() throws ProtocolViolation {
        if (open != null) {
            String name = openName;
            abandon();
            throw new ProtocolViolation("an outcome before the result file " + name + " was complete");
        }
        if (!started) {
            try {
                clear();
            } catch (IOException e) {
                throw new ProtocolViolation("a result the server could not clear the way for (" + e + ")");
            }
        }
    }

    /** Closes and deletes a half-received file (the channel broke, or a chunk was refused). */
    public void abandon() {
        if (open != null) {
            try {
                open.close();
            } catch (IOException ignored) {
                // deleted below
            }
            open = null;
        }
        if (openName != null) {
            try {
                Files.deleteIfExists(part(openName));
            } catch (IOException ignored) {
                // a stray .part is never read: results are read under their final names only
            }
            openName = null;
        }
    }

    private Path part(String name) {
        return resultDir.resolve(fileOf(name) + ".part");
    }

    private void clear() throws IOException {
        Files.createDirectories(resultDir);
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(resultDir)) {
            for (Path p : entries) dev.blenderjobs.io.PrivateFiles.deleteRecursively(p);
        }
    }
}
