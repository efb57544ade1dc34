package dev.blenderjobs.jobs;

import dev.blenderjobs.concurrent.Threads;
import dev.blenderjobs.io.PrivateFiles;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Job folders made ahead of need, on a thread of their own, so that addJob creates no file or
 * folder before it answers, and a run none either (the result's temporary is made here too;
 * what is still created on a job's way: its log, if it prints, and the files of a retry).
 *
 * <p>Why: creating a file or a folder (a new inode) costs about 0.3 ms of CPU on the ext4 disks
 * of the machines this was measured on (bench/RESULTS.md), while writing into an existing file
 * or renaming costs a few microseconds; a trivial job used to create nine, four of them before
 * its answer. A spare folder holds everything a job's folder starts with: the input files,
 * the record and its spare ({@link JobFiles#writeRecord}), and the {@code work/} and
 * {@code result/} folders the runtime uses. The intake fills one in and renames it to the
 * job's name, which is also what commits the job: a folder named after a job always has its
 * record.
 *
 * <p>Spares live in {@code <stateDir>/spare-folders/} (a server deletes those an earlier one
 * left), on the same file system as {@code jobs/}, so that moving one there is a rename. When
 * none is ready (a burst took them all, or the disk refused), the intake makes the job's
 * folder itself, as before: spares only move work off the path, they are never waited for.
 */
final class SpareFolders implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(SpareFolders.class.getName());
    /** What a spare folder holds: the files a job's intake writes into, and the runtime's folders. */
    static final List<String> FILES = List.of("script.py", "passed_data.json", "job.json", JobFiles.SPARE_RECORD);
    static final List<String> FOLDERS = List.of("work", "result");
    /** The file the runtime writes python_data into before renaming it (it keeps it when clearing result/). */
    private static final String RESULT_SPARE_NAME = dev.blenderjobs.workers.ResultCheck.PYTHON_DATA + ".tmp";
    static final String RESULT_SPARE = "result/" + RESULT_SPARE_NAME;
    /** What intact() expects: the entries of a spare, of its result/, and the files it checks. */
    private static final java.util.Set<String> EXPECTED = java.util.stream.Stream.concat(FILES.stream(),
            FOLDERS.stream()).collect(java.util.stream.Collectors.toUnmodifiableSet());
    private static final java.util.Set<String> RESULT_EXPECTED = java.util.Set.of(RESULT_SPARE_NAME);
    private static final List<String> FILES_CHECKED = java.util.stream.Stream.concat(FILES.stream(),
            java.util.stream.Stream.of(RESULT_SPARE)).toList();

    /**
     * The names in a folder, by java.io.File.list (one native call, no Path per entry): on the
     * intake's path before every answer, where a DirectoryStream per folder cost more.
     */
    private static java.util.Set<String> names(Path folder) throws IOException {
        String[] names = folder.toFile().list();
        if (names == null) throw new IOException("cannot list " + folder);
        return java.util.Set.of(names);
    }

    private final Path dir;
    private final Path jobsDir;
    private final int count;
    private final String runTag = Long.toHexString(System.nanoTime());
    private final AtomicInteger made = new AtomicInteger();
    private final ConcurrentLinkedQueue<Path> ready = new ConcurrentLinkedQueue<>();
    private final AtomicInteger readyCount = new AtomicInteger();
    private final Thread maker;
    private volatile boolean closed;

    SpareFolders(Path dir, Path jobsDir, int count) {
        this.dir = dir;
        this.jobsDir = jobsDir;
        this.count = count;
        this.maker = Threads.daemonThread("job-folders", this::run);
        maker.start();
    }

    /** Spares made whole and ready to be taken (tests wait for them: a folder may be half made). */
    int ready() {
        return readyCount.get();
    }

    /** A spare folder, now the caller's; null when none is ready (the caller makes its own). */
    Path take() {
        try {
            for (Path spare; (spare = ready.poll()) != null; ) {
                readyCount.decrementAndGet();
                if (intact(spare)) return spare;
                LOG.warning("a spare job folder (" + spare + ") was changed after it was made, by a job's script or "
                        + "by hand; it is deleted, not used");
                PrivateFiles.deleteAll(spare);
            }
            return null;
        } finally {
            // Refilled from half empty, several in a row, not one after every job: making a
            // spare creates nine inodes, and done while a job is on its way it slowed that job's
            // own file operations (the folder's rename into jobs/ took 0.13 ms instead of 0.04).
            if (readyCount.get() <= count / 2) LockSupport.unpark(maker);
        }
    }

    /**
     * Whether a spare is still as it was made: exactly its files and folders, the folders real
     * and holding nothing else (work/ nothing, result/ its one spare), the files empty files of
     * their own, not links a job's script put there (the spare folders are in the state
     * directory, where a script could reach them, and a file linked to another job's record, or
     * an input/ linked to another job's, would have the intake write into it). What a script
     * changes between this check and the rename is the job's own risk, as its own folder is.
     */
    static boolean intact(Path spare) {
        try {
            if (!Files.isDirectory(spare, LinkOption.NOFOLLOW_LINKS)) return false;
            if (!names(spare).equals(EXPECTED)) return false;
            for (String f : FOLDERS) {
                Path folder = spare.resolve(f);
                java.util.Set<String> expected = f.equals("result") ? RESULT_EXPECTED : java.util.Set.of();
                if (!Files.isDirectory(folder, LinkOption.NOFOLLOW_LINKS) || !names(folder).equals(expected)) return false;
            }
            for (String f : FILES_CHECKED) {
                Path file = spare.resolve(f);
                try {
                    Map<String, Object> a = Files.readAttributes(file, "unix:mode,nlink,size", LinkOption.NOFOLLOW_LINKS);
                    if (((Integer) a.get("mode") & 0170000) != 0100000 || (Integer) a.get("nlink") != 1
                            || (Long) a.get("size") != 0) {
                        return false;
                    }
                } catch (UnsupportedOperationException | IllegalArgumentException e) { // no unix view (Windows)
                    if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) return false;
                }
            }
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private void run() {
        int failures = 0;
        while (!closed) {
            if (readyCount.get() >= count) {
                LockSupport.park(this);
                continue;
            }
            try {
                ready.add(make());
                readyCount.incrementAndGet();
                failures = 0;
            } catch (IOException | RuntimeException e) {
                // Disk full or the folder unwritable: the intake makes its own folders (and says
                // what is wrong); this thread tries again later rather than spinning.
                if (failures++ == 0) LOG.log(Level.FINE, "could not make a spare job folder", e);
                LockSupport.parkNanos(this, TimeUnit.SECONDS.toNanos(Math.min(30, 1L << Math.min(failures, 5))));
            }
        }
    }

    private Path make() throws IOException {
        Path spare = dir.resolve(runTag + "-" + made.incrementAndGet());
        try {
            Files.createDirectories(jobsDir);
            Files.createDirectories(dir);
            Files.createDirectory(spare);
            for (String f : FILES) Files.createFile(spare.resolve(f));
            for (String f : FOLDERS) Files.createDirectory(spare.resolve(f));
            Files.createFile(spare.resolve(RESULT_SPARE));
            return spare;
        } catch (IOException | RuntimeException e) {
            PrivateFiles.deleteAll(spare);
            throw e;
        }
    }

    /** Stops making spares and deletes those not taken. */
    @Override
    public void close() {
        closed = true;
        LockSupport.unpark(maker);
        try {
            maker.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (Path spare; (spare = ready.poll()) != null; ) PrivateFiles.deleteAll(spare);
        try {
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            // A spare taken by an addJob still in progress: the next server deletes it.
        }
    }
}
