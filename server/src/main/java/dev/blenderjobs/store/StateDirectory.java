package dev.blenderjobs.store;

import dev.blenderjobs.io.PrivateFiles;

import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The directory where jobs live, and the lock that makes it one server's at a time. Three
 * kinds: the explicit {@code --state-dir}; by default, a per-user data directory keyed by the
 * client's workspace, so that two editor windows on different projects never share one; and a
 * fresh temporary directory (deleted at exit) when there is no workspace, or when the
 * workspace's directory is held by another server. The lock is an OS file lock on
 * {@code server.lock}, released by the OS however the holder ends; see {@link Lock} for why a
 * deleted {@code server.lock} does not let a second server in.
 */
public final class StateDirectory implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(StateDirectory.class.getName());
    static final String LOCK_FILE = "server.lock";
    /** How often the holder checks that {@code server.lock} is still its own. */
    static final Duration GUARD_PERIOD = Duration.ofMillis(100);
    /**
     * How long a server that had to create {@code server.lock} in an existing directory waits
     * for an earlier holder to take the name back before it trusts its lock: ten guard periods.
     */
    static final Duration CLAIM_WAIT = Duration.ofSeconds(1);

    private final Path path;
    private final boolean temporary;
    private final String note;
    private final Lock lock;

    private StateDirectory(Path path, boolean temporary, String note, Lock lock) {
        this.path = path;
        this.temporary = temporary;
        this.note = note;
        this.lock = lock;
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

    /**
     * The explicit {@code --state-dir}: created (0700) and locked, or refused if another server
     * holds it ({@link InUseException}) or it cannot be used ({@link UnusableException}).
     */
    public static StateDirectory explicit(Path dir) throws IOException {
        return explicit(dir, GUARD_PERIOD, CLAIM_WAIT);
    }

    static StateDirectory explicit(Path dir, Duration guardPeriod, Duration claimWait) throws IOException {
        Path abs = dir.toAbsolutePath().normalize();
        Lock lock;
        try {
            boolean existed = Files.isDirectory(abs);
            PrivateFiles.createPrivateDirectories(abs);
            lock = Lock.acquire(abs, existed, guardPeriod, claimWait);
            if (lock != null) probeWritable(abs, lock);
        } catch (IOException | RuntimeException e) {
            throw new UnusableException(abs, e);
        }
        if (lock == null) {
            throw new InUseException("The state directory " + abs + " is in use by another blender-jobs server"
                    + holderOf(abs) + "; give this one another --state-dir, or stop the other server first.");
        }
        return new StateDirectory(abs, false, null, lock);
    }

    /** The directory must take new files (server.lock may exist and be writable in a read-only directory). */
    private static void probeWritable(Path dir, Lock lock) throws IOException {
        try {
            Files.delete(Files.createTempFile(dir, ".write-test-", ".tmp"));
        } catch (IOException | RuntimeException e) {
            lock.release();
            throw e;
        }
    }

    /**
     * The default for a client that named its workspace: {@code <data home>/blender-jobs/
     * workspaces/<hash of the workspace>}. When another server holds it, or it cannot be made,
     * a temporary directory is used instead and {@link #note()} says why.
     */
    public static StateDirectory forWorkspace(String workspace, Path dataHome) {
        Path dir = dataHome.resolve("blender-jobs").resolve("workspaces").resolve(workspaceKey(workspace));
        try {
            boolean existed = Files.isDirectory(dir);
            PrivateFiles.createPrivateDirectories(dir);
            Lock lock = Lock.acquire(dir, existed, GUARD_PERIOD, CLAIM_WAIT);
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

    private static String holderOf(Path dir) {
        Claim holder = Claim.parse(Lock.readOrNull(dir.resolve(LOCK_FILE)));
        return holder == null ? "" : " (pid " + holder.pid() + ")";
    }

    /** Checks at once that server.lock is still this server's (the guard does it every period); for tests. */
    void checkLock() {
        if (lock != null) lock.check();
    }

    /** The claim written in this server's server.lock; for tests. */
    String lockClaim() {
        return lock == null ? null : lock.claim.text();
    }

    /** Releases the lock; deletes a temporary directory. */
    @Override
    public void close() {
        if (lock != null) lock.release();
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

    /** The explicit --state-dir cannot be created, locked or written: a message for people, no stack trace. */
    public static final class UnusableException extends IOException {
        UnusableException(Path dir, Exception cause) {
            super("The state directory " + dir + " cannot be used: " + reason(cause) + ". blender-jobs keeps its "
                    + "jobs and their results there, so it must be a directory this user can create and write to. "
                    + "Check the path, its permissions and that its file system is mounted writable and not full; "
                    + "or start the server with another --state-dir, or without one (a directory per client "
                    + "workspace).", cause);
        }

        private static String reason(Exception e) {
            if (e instanceof java.nio.file.AccessDeniedException a) return "permission denied (" + a.getFile() + ")";
            if (e instanceof java.nio.file.FileAlreadyExistsException f) return f.getFile() + " exists and is not a directory";
            if (e instanceof java.nio.file.FileSystemException f) {
                return f.getFile() + (f.getReason() != null ? ": " + f.getReason() : "");
            }
            return e.getMessage() != null ? e.getMessage() : e.toString();
        }
    }

    /** What a holder writes in server.lock: its pid, since when it holds the directory, and a nonce. */
    record Claim(long pid, long since, String nonce) {
        static Claim mine() {
            byte[] random = new byte[8];
            new java.security.SecureRandom().nextBytes(random);
            return new Claim(ProcessHandle.current().pid(), System.currentTimeMillis(), HexFormat.of().formatHex(random));
        }

        String text() {
            return "pid " + pid + "\nsince " + since + "\nclaim " + nonce + "\n";
        }

        /** Older claims win a conflict: the server that came first keeps the directory. */
        boolean olderThan(Claim other) {
            return since != other.since ? since < other.since : nonce.compareTo(other.nonce) < 0;
        }

        boolean holderAlive() {
            return ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
        }

        /** The claim in a lock file's text; null if there is none (also an older server's "pid N" alone). */
        static Claim parse(String text) {
            if (text == null) return null;
            long pid = -1;
            long since = -1;
            String nonce = null;
            for (String line : text.split("\n")) {
                String[] kv = line.strip().split(" ", 2);
                if (kv.length != 2) continue;
                try {
                    switch (kv[0]) {
                        case "pid" -> pid = Long.parseLong(kv[1]);
                        case "since" -> since = Long.parseLong(kv[1]);
                        case "claim" -> nonce = kv[1];
                        default -> { }
                    }
                } catch (NumberFormatException e) {
                    return null;
                }
            }
            if (pid < 0) return null;
            // The claim line is written last: a text without it is an older server's "pid N", or a
            // claim read half-written (truncate, then write), whose "since 17" may be the start of
            // "since 1795...". Either way its age is unknown, so it never counts as the older claim.
            if (nonce == null) return new Claim(pid, Long.MAX_VALUE, "");
            return new Claim(pid, since < 0 ? Long.MAX_VALUE : since, nonce);
        }
    }

    /**
     * The OS lock on {@code server.lock}, made to survive the file's deletion.
     *
     * <p>An OS file lock belongs to the file (the inode), not to its name: delete
     * {@code server.lock} while a server holds it, and the next server creates a new file of that
     * name, locks it without conflict and shares the directory. Java cannot lock a directory, and
     * any other file we could lock can be deleted the same way. So the holder watches its name:
     * every {@link #GUARD_PERIOD} it checks that {@code server.lock} is still the file it locked
     * (same file key, same claim) and, if it was deleted or replaced, takes the name back at once
     * (a new locked file renamed over the name, atomically). And a server that has to create
     * {@code server.lock} in a directory that already existed (the one moment a deleted lock can
     * fool it) waits {@link #CLAIM_WAIT}, ten guard periods, before trusting its lock: if a
     * holder is alive, it has taken the name back by then, and the newcomer refuses the
     * directory. A holder that finds an older live claim in the name (it came second, past a
     * guard that was stalled for the whole wait) does not fight it and logs SEVERE. Linux and
     * macOS; on Windows an open file cannot be deleted, so the question does not arise.
     */
    static final class Lock {
        private final Path dir;
        private final Path file;
        private final ScheduledExecutorService guard;
        // Touched by the guard thread (and tests, through check()); synchronized.
        private FileChannel channel;
        private Object key;
        private Claim claim;
        private boolean conflictLogged;

        private Lock(Path dir, FileChannel channel, Object key, Claim claim, Duration guardPeriod) {
            this.dir = dir;
            this.file = dir.resolve(LOCK_FILE);
            this.channel = channel;
            this.key = key;
            this.claim = claim;
            this.guard = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "state-dir-lock");
                t.setDaemon(true);
                return t;
            });
            long period = guardPeriod.toMillis();
            guard.scheduleWithFixedDelay(this::check, period, period, TimeUnit.MILLISECONDS);
        }

        /**
         * Takes {@code dir}'s lock; null when another live server holds it.
         *
         * @param dirExisted the directory was there before this server: a missing server.lock in it
         *                   may have been deleted under a running server
         */
        static Lock acquire(Path dir, boolean dirExisted, Duration guardPeriod, Duration claimWait) throws IOException {
            Path file = dir.resolve(LOCK_FILE);
            FileChannel channel;
            boolean created;
            try {
                channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
                        StandardOpenOption.READ);
                created = true;
            } catch (java.nio.file.FileAlreadyExistsException exists) {
                try {
                    channel = FileChannel.open(file, StandardOpenOption.WRITE, StandardOpenOption.READ);
                } catch (java.nio.file.NoSuchFileException justDeleted) {
                    return acquire(dir, dirExisted, guardPeriod, claimWait); // replaced under us: look again
                }
                created = false;
            }
            // The file's key at once, before locking and writing (an fsync can take a while): a
            // holder whose check finds this new file under the name renames its own over it, and
            // a key read after that would be the holder's, letting this server believe it won.
            Object key = keyOf(file);
            if (!tryLock(channel)) {
                channel.close();
                return null;
            }
            Claim claim = Claim.mine();
            write(channel, claim);
            if (created && dirExisted && !claimWait.isZero()) {
                // We made server.lock in a directory that existed: a holder may be alive with its
                // name deleted. Give it the time to take the name back.
                LOG.info(file + " was missing; waiting " + claimWait.toMillis() + " ms to see whether a running "
                        + "server takes it back");
                try {
                    Thread.sleep(claimWait.toMillis());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                // By file key, never by opening the name: closing any other descriptor of a file
                // releases this process's locks on it (POSIX), ours included.
                if (key == null || !key.equals(keyOf(file))) {
                    channel.close();
                    LOG.warning(file + " had been deleted while another server still held " + dir + "; that server "
                            + "took it back, so this one leaves the directory to it");
                    return null;
                }
            }
            return new Lock(dir, channel, key, claim, guardPeriod);
        }

        /** Whether server.lock is still ours; if it was deleted or replaced, takes it back. */
        synchronized void check() {
            if (channel == null) return; // released
            try {
                Object now = keyOf(file);
                if (now != null && now.equals(key)) {
                    // Still our file. Read it through our own channel: opening the name again and
                    // closing that descriptor would release our lock (POSIX drops all of a
                    // process's locks on a file when any of its descriptors is closed).
                    if (!claim.text().equals(read(channel))) write(channel, claim); // overwritten in place
                    return;
                }
                // Another file (or none) under the name: reading it cannot touch our lock.
                Claim other = Claim.parse(readOrNull(file));
                if (other != null && other.holderAlive() && other.olderThan(claim)) {
                    if (!conflictLogged) {
                        conflictLogged = true;
                        LOG.severe("This server (pid " + claim.pid() + ") took the state directory " + dir + " after "
                                + "its server.lock had been deleted, while server pid " + other.pid() + " still uses it. "
                                + "Two servers must not share a state directory: stop this one.");
                    }
                    return;
                }
                retake();
                if (other != null && other.pid() != claim.pid() && other.holderAlive()) {
                    LOG.severe(file + " had been deleted and server pid " + other.pid() + " locked a new one; this "
                            + "server, which holds the directory since before, took " + LOCK_FILE + " back. A server "
                            + "still starting then refuses the directory; one already running logs that it must be "
                            + "stopped.");
                } else {
                    LOG.warning(file + " was deleted or replaced while this server holds " + dir + "; it was re-created "
                            + "(delete it only when no server runs)");
                }
            } catch (IOException | RuntimeException e) {
                LOG.log(Level.WARNING, "could not check or re-create " + file + "; trying again", e);
            }
        }

        /** A new locked file with our claim, renamed over the name: the name is never missing or unlocked. */
        private void retake() throws IOException {
            Path fresh = Files.createTempFile(dir, LOCK_FILE + ".", ".new");
            FileChannel next = FileChannel.open(fresh, StandardOpenOption.WRITE, StandardOpenOption.READ);
            try {
                if (!tryLock(next)) throw new IOException("could not lock " + fresh);
                write(next, claim);
                Object nextKey = keyOf(fresh);
                Files.move(fresh, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                FileChannel old = channel;
                channel = next;
                key = nextKey;
                old.close(); // the old file is gone; its lock with it
            } catch (IOException | RuntimeException e) {
                next.close();
                Files.deleteIfExists(fresh);
                throw e;
            }
        }

        synchronized void release() {
            guard.shutdownNow();
            if (channel == null) return;
            try {
                channel.close();
            } catch (IOException e) {
                LOG.log(Level.FINE, "could not release the lock of " + dir, e);
            }
            channel = null;
        }

        private static boolean tryLock(FileChannel channel) throws IOException {
            try {
                return channel.tryLock() != null;
            } catch (OverlappingFileLockException heldInThisJvm) {
                return false;
            }
        }

        private static void write(FileChannel channel, Claim claim) throws IOException {
            channel.truncate(0);
            channel.write(ByteBuffer.wrap(claim.text().getBytes(StandardCharsets.UTF_8)), 0);
            channel.force(false);
        }

        private static String read(FileChannel channel) throws IOException {
            ByteBuffer buf = ByteBuffer.allocate((int) Math.min(4096, channel.size()));
            channel.read(buf, 0);
            return new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8);
        }

        private static Object keyOf(Path file) {
            try {
                return Files.readAttributes(file, java.nio.file.attribute.BasicFileAttributes.class).fileKey();
            } catch (IOException e) {
                return null;
            }
        }

        /** A lock file's text; never call it on a file this process holds locked (see {@link #check}). */
        static String readOrNull(Path file) {
            try {
                return Files.readString(file, StandardCharsets.UTF_8);
            } catch (IOException | RuntimeException e) {
                return null;
            }
        }
    }
}
