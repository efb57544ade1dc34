package dev.blenderjobs.workers;

import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ProtocolViolation;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.model.FailureKind;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Checks that what a worker says it wrote is what is on disk, before anyone trusts it: the
 * result files are regular files (not links), at the paths of the server's own layout, with the
 * size and SHA-256 the runtime reported. A script runs in the worker's process and can forge a
 * Completed message or tamper with the files; a mismatch is a protocol violation. Reads the
 * files, so it runs on the worker's reader thread, never on the event loop.
 */
public final class ResultCheck {
    public static final String PYTHON_DATA = "python_data.json";
    public static final String DATA_BLOCKS = "data_blocks.blend";

    private ResultCheck() {
    }

    public static void verify(FromWorker.Completed completed, ToWorker.RunFiles files) throws ProtocolViolation {
        Path dir = Path.of(files.resultDir());
        if (Files.isSymbolicLink(dir) || !Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
            throw new ProtocolViolation("a result, but the job's result directory was replaced by something else");
        }
        Path data = dir.resolve(PYTHON_DATA);
        long size = regularFileSize(data);
        if (size != completed.pythonDataBytes()) {
            throw new ProtocolViolation("a result whose " + PYTHON_DATA + " is " + size + " bytes on disk, not the "
                    + completed.pythonDataBytes() + " it reported (the file was changed after it was written)");
        }
        String sha = sha256(data);
        if (!sha.equals(completed.pythonDataSha256())) {
            throw new ProtocolViolation("a result whose " + PYTHON_DATA + " does not hash to what it reported "
                    + "(the file was changed after it was written)");
        }
        if (completed.dataBlocks() != null && !completed.dataBlocks().isEmpty()) {
            regularFileSize(dir.resolve(DATA_BLOCKS));
        }
    }

    /**
     * A failure as the client should read it. The runtime reports any failed result write as
     * RESULT_WRITE_FAILED with disk-space advice; when the job's whole directory is gone (its
     * script deleted it), that advice is wrong, so the message says what happened instead.
     */
    public static FromWorker.Failed explain(FromWorker.Failed failed, ToWorker.RunFiles files) {
        if (failed.kind() != FailureKind.RESULT_WRITE_FAILED) return failed;
        Path jobDir = Path.of(files.resultDir()).getParent();
        if (jobDir == null || Files.isDirectory(jobDir, LinkOption.NOFOLLOW_LINKS)) return failed;
        return new FromWorker.Failed(failed.jobId(), failed.kind(), "the job's results could not be written because "
                + "the job's directory " + jobDir + " was deleted while the job ran (by its script, or by hand), and "
                + "with it the job's inputs, log and result folder; nothing of the job is left on disk. A script "
                + "should keep to its working directory (and tempfile); run the job again.", failed.traceback());
    }

    private static long regularFileSize(Path file) throws ProtocolViolation {
        try {
            BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            if (!a.isRegularFile()) {
                throw new ProtocolViolation("a result whose " + file.getFileName() + " is not a regular file"
                        + (a.isSymbolicLink() ? " but a symbolic link" : ""));
            }
            return a.size();
        } catch (IOException e) {
            if (e instanceof ProtocolViolation v) throw v;
            throw new ProtocolViolation("a result whose " + file.getFileName() + " cannot be read: " + e.getMessage());
        }
    }

    /** SHA-256 of a file, in lowercase hex. */
    public static String sha256(Path file) throws ProtocolViolation {
        try (InputStream in = Files.newInputStream(file, LinkOption.NOFOLLOW_LINKS)) {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[256 * 1024];
            int n;
            while ((n = in.read(buf)) > 0) digest.update(buf, 0, n);
            return HexFormat.of().formatHex(digest.digest());
        } catch (IOException e) {
            throw new ProtocolViolation("a result whose " + file.getFileName() + " cannot be read: " + e.getMessage());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every Java 17", e);
        }
    }
}
