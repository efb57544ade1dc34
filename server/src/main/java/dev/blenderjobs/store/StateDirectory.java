package dev.blenderjobs.store;

import dev.blenderjobs.io.PrivateFiles;

import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The directory where jobs live, and the lock that makes it one server's at a time. Three
 * kinds: the explicit {@code --state-dir}; by default, a per-user data directory keyed by the
 * client's workspace, so that two editor windows on different projects never share one; and a
 * fresh temporary directory (deleted at exit) when there is no workspace, or when the
 * workspace's directory is held by another server. The lock is an OS file lock on
 * {@code server.lock}, released by the OS however the holder ends.
 */
public final class StateDirectory implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(StateDirectory.class.getName());
    static final String LOCK_FILE = "server.lock";

    private final Path path;
    private final boolean temporary;
    private final String note;
    private final FileChannel lockChannel;

    private StateDirectory(Path path, boolean temporary, String note, FileChannel lockChannel) {
        this.path = path;
        this.temporary = temporary;
        this.note = note;
        this.lockChannel = lockChannel;
    }

    /** The directory, absolute. */
    public Path path() {
        return path;
    }

    /** Deleted when the server exits: its jobs do not survive a restart. */
    public boolean temporary() {
        return temporary;
    }

    /** Why the server is not using the directory one would expect, or null. */
    public String note() {
        return note;
    }

    /** The explicit {@code --state-dir}: created (0700) and locked, or refused if another server holds it. */
    public static StateDirectory explicit(Path dir) throws IOException {
        Path abs = dir.toAbsolutePath().normalize();
        PrivateFiles.createPrivateDirectories(abs);
        FileChannel lock = lock(abs);
        if (lock == null) {
            throw new InUseException("The state directory " + abs + " is in use by another blender-jobs server"
                    + holderOf(abs) + "; give this one another --state-dir, or stop the other server first.");
        }
        return new StateDirectory(abs, false, null, lock);
    }

    /**
     * The default for a client that named its workspace: {@code <data home>/blender-jobs/
     * workspaces/<hash of the workspace>}. When another server holds it, or it cannot be made,
     * a temporary directory is used instead and {@link #note()} says why.
     */
    public static StateDirectory forWorkspace(String workspace, Path dataHome) {
        Path dir = dataHome.resolve("blender-jobs").resolve("workspaces").resolve(workspaceKey(workspace));
        try {
            PrivateFiles.createPrivateDirectories(dir);
            FileChannel lock = lock(dir);
            if (lock != null) {
                PrivateFiles.writeAtomically(dir.resolve("workspace.txt"), workspace + "\n");
                return new StateDirectory(dir, false, null, lock);
            }
            return temporary("The state directory " + dir + " of workspace " + workspace + " is in use by another "
                    + "blender-jobs server" + holderOf(dir) + ", so this server keeps its jobs in a temporary directory "
                    + "that is deleted when it exits.");
        } catch (IOException | RuntimeException e) {
            return temporary("The state directory " + dir + " of workspace " + workspace + " cannot be used (" + e
                    + "), so this server keeps its jobs in a temporary directory that is deleted when it exits.");
        }
    }

    /** A fresh private temporary directory, deleted at exit. */
    public static StateDirectory temporary(String note) {
        try {
            Path dir = PrivateFiles.createPrivateTempDirectory("blender-jobs-");
            if (note != null) LOG.warning(note);
            return new StateDirectory(dir.toAbsolutePath(), true, note, null);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot create a temporary state directory", e);
        }
    }

    /**
     * A stable, path-safe key for a workspace: the hash of its normalized URI. The workspace
     * string is the client's; it never becomes part of a path itself.
     */
    static String workspaceKey(String workspace) {
        String normalized = workspace.strip();
        try {
            URI uri = URI.create(normalized);
            if ("file".equalsIgnoreCase(uri.getScheme())) normalized = Path.of(uri).toAbsolutePath().normalize().toString();
        } catch (RuntimeException notAFileUri) {
            // Kept as given: any string names a workspace.
        }
        while (normalized.length() > 1 && (normalized.endsWith("/") || normalized.endsWith("\\"))) {
            normalized = normalized.substring(0, normalized.length() - 1);
        }
        try {
            byte[] hash = MessageDigest.getInstance("SHA-256").digest(normalized.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(hash, 0, 10);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every Java platform", e);
        }
    }

    /** Takes the directory's lock; null when another process holds it. */
    private static FileChannel lock(Path dir) throws IOException {
        Path lockFile = dir.resolve(LOCK_FILE);
        FileChannel channel = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.READ);
        FileLock lock;
        try {
            lock = channel.tryLock();
        } catch (OverlappingFileLockException e) {
            lock = null;
        }
        if (lock == null) {
            channel.close();
            return null;
        }
        channel.truncate(0);
        channel.write(ByteBuffer.wrap(("pid " + ProcessHandle.current().pid()).getBytes(StandardCharsets.UTF_8)));
        return channel; // the lock lives as long as its channel stays open
    }

    private static String holderOf(Path dir) {
        try {
            String holder = Files.readString(dir.resolve(LOCK_FILE)).strip();
            return holder.isEmpty() ? "" : " (" + holder + ")";
        } catch (IOException e) {
            return "";
        }
    }

    /** Releases the lock; deletes a temporary directory. */
    @Override
    public void close() {
        try {
            if (lockChannel != null) lockChannel.close();
        } catch (IOException e) {
            LOG.log(Level.FINE, "could not release the lock of " + path, e);
        }
        if (temporary) {
            try {
                PrivateFiles.deleteRecursively(path);
            } catch (IOException e) {
                LOG.log(Level.FINE, "could not delete " + path, e);
            }
        }
    }

    /** The explicit --state-dir is locked by another server. */
    public static final class InUseException extends IOException {
        InUseException(String message) {
            super(message);
        }
    }
}
