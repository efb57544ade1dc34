package dev.blenderjobs.jobs;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.io.PrivateFiles;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobRequest;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.workers.ResultCheck;

import java.io.IOException;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Where a job's files live, and the format of its record: {@code <stateDir>/jobs/<jobId>/},
 * named by the server-generated id only. Client-given names never reach a path.
 * <pre>
 *   job.json              the job's record: {"format": 2, "job": {@link Job}}, rewritten atomically on each change
 *   job.json.spare        the inode of the record before: the next record is written into it (see writeRecord)
 *   script.py             the script source as it was when the job was added
 *   passed_data.json      passedData, as JSON
 *   input/passed.blend    private copy of passedDataBlocks.library
 *   input/scene.blend     private copy of blendFile
 *   work/                 the script's current directory
 *   result/               python_data.json and data_blocks.blend
 *   log.txt               everything the job printed, all attempts (log.txt.part while it runs)
 * </pre>
 * Every file a restarted server reads after a job's creation is written to a temporary name
 * and renamed into place (job.json, the results, the log), so a server killed at any moment
 * leaves either the old content or the new, never a mix. The inputs written at addJob come
 * before the job's first job.json, which commits them; when the job's folder was a spare made
 * ahead ({@link SpareFolders}), all of it is written under the spare's name and the folder is
 * renamed to the job's last. Likewise the runtime renames the results
 * into place, and the log is renamed to log.txt, before the record that says COMPLETED. A
 * log.txt.part left by a killed server is renamed when it is read back.
 */
public final class JobFiles {
    /** The format of job.json this server writes; format 1 (0.1.0) is read and converted by the store. */
    public static final int FORMAT = 2;
    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();
    private static final String ID_PATTERN = "job-[0-9a-f]{12}";
    /** A removed job's directory is renamed to this prefix first; no job id starts with it. */
    static final String TOMBSTONE_PREFIX = ".removed-";
    /** Largest job.json read back; a record is a few KB (its data-block names and errors at most a few MB). */
    public static final long MAX_RECORD_BYTES = 16L * 1024 * 1024;

    /** The spare inode a record is written into before it is renamed over job.json. */
    static final String SPARE_RECORD = "job.json.spare";

    private final Path stateDir;
    private final Path jobsDir;
    private volatile SpareFolders spares;

    public JobFiles(Path stateDir) {
        this.stateDir = stateDir;
        this.jobsDir = stateDir.resolve("jobs");
    }

    public Path stateDir() {
        return stateDir;
    }

    /**
     * Starts keeping {@code count} job folders ready ahead of need in {@code spare-folders/}
     * ({@link SpareFolders}), after deleting those an earlier server left there.
     */
    public void keepSpareFolders(int count) {
        if (spares != null || count <= 0) return;
        Path dir = stateDir.resolve("spare-folders");
        List<String> left = PrivateFiles.deleteAll(dir);
        if (!left.isEmpty()) {
            java.util.logging.Logger.getLogger(JobFiles.class.getName()).warning("could not delete the spare job "
                    + "folders an earlier server left (jobs are not affected): " + String.join("; ", left));
        }
        spares = new SpareFolders(dir, jobsDir, count);
    }

    /** Spare folders ready to be taken; 0 when none are kept. For tests. */
    int sparesReady() {
        SpareFolders s = spares;
        return s == null ? 0 : s.ready();
    }

    /** Stops making spare folders and deletes those left. */
    public void close() {
        SpareFolders s = spares;
        spares = null;
        if (s != null) s.close();
    }

    public Path dirOf(String jobId) {
        if (!jobId.matches("[A-Za-z0-9-]+")) throw new IllegalArgumentException("not a job id: " + jobId);
        return jobsDir.resolve(jobId);
    }

    public Path logOf(String jobId) {
        return dirOf(jobId).resolve("log.txt");
    }

    public Path scriptOf(String jobId) {
        return dirOf(jobId).resolve("script.py");
    }

    public Path passedDataOf(String jobId) {
        return dirOf(jobId).resolve("passed_data.json");
    }

    public Path libraryOf(String jobId) {
        return dirOf(jobId).resolve("input/passed.blend");
    }

    public Path blendFileOf(String jobId) {
        return dirOf(jobId).resolve("input/scene.blend");
    }

    public Path workDirOf(String jobId) {
        return dirOf(jobId).resolve("work");
    }

    public Path resultDirOf(String jobId) {
        return dirOf(jobId).resolve("result");
    }

    public Path pythonDataOf(String jobId) {
        return resultDirOf(jobId).resolve(ResultCheck.PYTHON_DATA);
    }

    public Path dataBlocksOf(String jobId) {
        return resultDirOf(jobId).resolve(ResultCheck.DATA_BLOCKS);
    }

    /** Where the worker finds an attempt's files: all in the job's directory, chosen here. */
    public ToWorker.RunFiles runFiles(String jobId, JobSpec spec) {
        return new ToWorker.RunFiles(scriptOf(jobId).toString(), passedDataOf(jobId).toString(),
                spec.passedDataBlocks() == null ? null : libraryOf(jobId).toString(),
                spec.blendFile() == null ? null : blendFileOf(jobId).toString(),
                workDirOf(jobId).toString(), resultDirOf(jobId).toString());
    }

    /**
     * Creates the job's directory, writes and copies its inputs and, last, its first record
     * (QUEUED): a directory without one is an addJob that never finished. Runs off the event loop.
     */
    public void prepare(JobRequest request, Job first) throws IOException {
        String id = first.jobId();
        Path dir = dirOf(id);
        // One folder, under the state directory's private (0700) one: a spare made ahead (no
        // file is created here then), or a new one; input/ only when there is a library or a
        // .blend to copy; work/ and result/ are the runtime's (a new folder gets them when an
        // attempt runs).
        SpareFolders s = spares;
        Path spare = s == null ? null : s.take();
        if (spare != null) {
            try {
                fill(spare, request, first, true);
            } catch (IOException | RuntimeException e) {
                PrivateFiles.deleteAll(spare);
                throw e;
            }
            try {
                Files.move(spare, dir, StandardCopyOption.ATOMIC_MOVE);
                return;
            } catch (java.nio.file.AtomicMoveNotSupportedException e) {
                // jobs/ on another file system than spare-folders/ (a link or a mount): the
                // job's own folder is made here, from now on too.
                PrivateFiles.deleteAll(spare);
                java.util.logging.Logger.getLogger(JobFiles.class.getName()).info("job folders are made at addJob "
                        + "from now on: a spare folder could not be moved to " + dir + " (" + e + ")");
                if (spares == s) {
                    spares = null;
                    s.close();
                }
            } catch (IOException | RuntimeException e) {
                PrivateFiles.deleteAll(spare);
                throw e;
            }
        }
        Files.createDirectories(jobsDir);
        Files.createDirectory(dir); // a new folder: never one that exists (a job's)
        fill(dir, request, first, false);
    }

    /**
     * Writes the job's inputs and, last, its first record into {@code into}: into a spare's empty
     * job.json directly ({@code spare}: nobody reads the folder before it is renamed to the job's
     * name, which commits it), else by {@link #replaceRecord}.
     */
    private void fill(Path into, JobRequest request, Job first, boolean spare) throws IOException {
        // Not renamed into place: job.json, written last, is what commits the job's files
        // (and with a spare, the rename of the folder to the job's name after it).
        // A spare's files are there, empty (checked when it was taken); a new folder's are not.
        overwrite(into.resolve("script.py"), request.scriptSource().getBytes(StandardCharsets.UTF_8),
                LinkOption.NOFOLLOW_LINKS);
        try (FileChannel channel = FileChannel.open(into.resolve("passed_data.json"), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS)) {
            java.io.OutputStream out = new java.io.BufferedOutputStream(Channels.newOutputStream(channel), 8192);
            request.passedData().writeTo(out);
            out.flush();
            channel.truncate(channel.position());
        }
        checkRoomFor(into, request.libraryToCopy(), request.blendToCopy());
        if (request.libraryToCopy() != null || request.blendToCopy() != null) {
            Files.createDirectory(into.resolve("input")); // new: never a link a script put there
        }
        if (request.libraryToCopy() != null) {
            Files.copy(request.libraryToCopy(), into.resolve("input/passed.blend"), StandardCopyOption.REPLACE_EXISTING);
        }
        if (request.blendToCopy() != null) {
            Files.copy(request.blendToCopy(), into.resolve("input/scene.blend"), StandardCopyOption.REPLACE_EXISTING);
        }
        if (spare) {
            overwrite(into.resolve("job.json"), recordBytes(first), LinkOption.NOFOLLOW_LINKS);
        } else {
            replaceRecord(into, recordBytes(first));
        }
    }

    /**
     * Refuses copies the disk has no room for, before writing any of them: a copy that fails
     * half-way would fill the disk for every other job first.
     */
    private static void checkRoomFor(Path dir, Path... copies) throws IOException {
        long needed = 0;
        for (Path c : copies) if (c != null) needed += Files.size(c);
        if (needed == 0) return;
        long free = Files.getFileStore(dir).getUsableSpace();
        long margin = 64L * 1024 * 1024; // left for records and logs
        if (needed + margin > free) {
            throw new IOException("the copies of the job's inputs need " + (needed >> 20) + " MB, and the disk of the "
                    + "state directory has " + (free >> 20) + " MB free (the server keeps 64 MB for records and logs)");
        }
    }

    /**
     * Whether the inputs an attempt needs are all on disk, so that an interrupted job can run
     * again after a restart.
     */
    public boolean hasInputs(Job job) {
        String id = job.jobId();
        return Files.isRegularFile(scriptOf(id)) && Files.isRegularFile(passedDataOf(id))
                && (job.spec().passedDataBlocks() == null || Files.isRegularFile(libraryOf(id)))
                && (job.spec().blendFile() == null || Files.isRegularFile(blendFileOf(id)));
    }

    /** Writes the job's record; its directory must exist (a removed job's record is not revived). */
    public void writeRecord(Job job) throws IOException {
        Path dir = dirOf(job.jobId());
        if (!Files.isDirectory(dir)) throw new NoSuchFileException(dir.toString(), null, "the job's directory is gone");
        replaceRecord(dir, recordBytes(job));
    }

    private static byte[] recordBytes(Job job) {
        JsonObject record = new JsonObject();
        record.addProperty("format", FORMAT);
        record.add("job", GSON.toJsonTree(job));
        return GSON.toJson(record).getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Replaces {@code dir/job.json} atomically, without creating a file when it can: creating
     * one costs about 0.3 ms of CPU on the measured disks, writing into an existing one and
     * renaming a few microseconds. The record is written into the spare inode
     * ({@value #SPARE_RECORD}; a new temporary file when there is none yet), the old record is
     * kept by a second name (a hard link), the spare is renamed over job.json, and the old
     * record's inode becomes the next spare. A server killed at any step leaves job.json whole,
     * old or new; what is left besides (job.json.old, a half-written spare) is overwritten by the
     * next record, and read only when job.json is no JSON ({@link #readEarlierRecord}, which
     * takes only a whole record of this job). A spare that cannot be written (disk full) is deleted,
     * so that the next try starts from a new file. Without hard links (some file systems) the
     * old inode is simply freed. A reader that opened job.json may find its file rewritten two
     * records later (it has become the spare): {@link #withRecordedDetails} checks what it read.
     */
    private static void replaceRecord(Path dir, byte[] bytes) throws IOException {
        Path record = dir.resolve("job.json");
        Path spare = dir.resolve(SPARE_RECORD);
        Path temporary = dir.resolve("job.json.tmp");
        Path old = dir.resolve("job.json.old");
        Path next = reusable(spare) ? spare : temporary;
        boolean kept = false;
        try {
            if (next == temporary) {
                // A new file of its own: never one a job linked there.
                Files.deleteIfExists(temporary);
                Files.write(temporary, bytes, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            } else {
                overwrite(next, bytes); // the spare may be a link to a device (the /dev/full fault test)
            }
            if (Files.exists(record, LinkOption.NOFOLLOW_LINKS)) {
                try {
                    Files.deleteIfExists(old);
                    Files.createLink(old, record);
                    kept = true;
                } catch (IOException | UnsupportedOperationException e) {
                    // No hard links here: job.json's old inode is freed by the rename below.
                }
            }
            Files.move(next, record, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(next);
            } catch (IOException again) {
                e.addSuppressed(again);
            }
            throw e;
        }
        // The record is saved: keeping the old inode as the next spare is best effort (a job
        // may have put a folder where it goes), never a failure of this write.
        if (kept) {
            try {
                Files.move(old, spare, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException | RuntimeException e) {
                try {
                    Files.deleteIfExists(old);
                } catch (IOException ignored) {
                    // Left beside the record; deleted by the next write's link (read only when job.json is torn).
                }
            }
        }
    }

    /**
     * Writes {@code bytes} into the file (made when it is not there) over what it held, then cuts
     * off what is left of that: never opened with O_TRUNC. On ext4 a truncating open costs about
     * 30 µs on an empty file and 110 µs (40 µs of CPU) on one with data, while a write over the
     * old bytes and a truncation of the rest cost a few µs (bench/RESULTS.md, issue 14, fourth
     * session); a trivial job paid it six times, three of them before its answer.
     */
    static void overwrite(Path file, byte[] bytes, java.nio.file.OpenOption... options) throws IOException {
        java.util.Set<java.nio.file.OpenOption> open = new java.util.HashSet<>(List.of(options));
        open.add(StandardOpenOption.CREATE);
        open.add(StandardOpenOption.WRITE);
        try (FileChannel channel = FileChannel.open(file, open)) {
            java.nio.ByteBuffer buffer = java.nio.ByteBuffer.wrap(bytes);
            while (buffer.hasRemaining()) channel.write(buffer);
            channel.truncate(bytes.length); // a no-op unless the file held more
        }
    }

    /**
     * Whether a record may be written into this spare: a file of its own (one link: not another
     * record or file a job linked there), or a symbolic link to a character device (the fault
     * tests link it to /dev/full, as on a full disk); never through a link to a file (another
     * job's record), a folder, or a FIFO (opening it to write would block the store's thread
     * until a reader came).
     */
    private static boolean reusable(Path spare) {
        try {
            java.util.Map<String, Object> a = Files.readAttributes(spare, "unix:mode,nlink", LinkOption.NOFOLLOW_LINKS);
            int type = (Integer) a.get("mode") & 0170000;
            if (type == 0120000) {
                return ((Integer) Files.getAttribute(spare, "unix:mode") & 0170000) == 0020000;
            }
            return type == 0100000 && (Integer) a.get("nlink") == 1;
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            return Files.isRegularFile(spare, LinkOption.NOFOLLOW_LINKS); // no unix view (Windows)
        } catch (IOException e) {
            return false; // absent
        }
    }

    /** A record file that is not a JSON object: torn by a power cut, or garbled. */
    public static final class NotJson extends IOException {
        NotJson(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** The record's JSON, or an exception saying why it cannot be read ({@link NotJson} when it is no JSON object). */
    public JsonObject readRecordJson(String jobId) throws IOException {
        return readJsonObject(dirOf(jobId).resolve("job.json"));
    }

    /**
     * The job of an earlier record kept beside job.json (job.json.old, then the spare), for a
     * job.json that cannot be read; null if none is a record of this job. Records are written
     * over an earlier record's bytes without fsync (see {@link #overwrite}), so after a power
     * cut job.json may hold a mix of two records; the record before it is then the latest state
     * that can be known (RELIABILITY.md: a power cut can lose the last state changes).
     */
    public Job readEarlierRecord(String jobId) {
        for (String name : List.of("job.json.old", SPARE_RECORD)) {
            try {
                JsonObject record = readJsonObject(dirOf(jobId).resolve(name));
                if (record.has("format") && record.get("format").isJsonPrimitive()
                        && record.get("format").getAsInt() == FORMAT) {
                    return jobOf(jobId, record);
                }
            } catch (IOException | RuntimeException e) {
                // absent, empty, torn too, or another job's: not a record of this job
            }
        }
        return null;
    }

    private static JsonObject readJsonObject(Path file) throws IOException {
        // Checked before reading: one huge (or endless: a link to /dev/zero) record must not
        // take the heap, and with it every other job of the state directory.
        java.nio.file.attribute.BasicFileAttributes attrs = Files.readAttributes(file,
                java.nio.file.attribute.BasicFileAttributes.class, java.nio.file.LinkOption.NOFOLLOW_LINKS);
        if (!attrs.isRegularFile()) {
            throw new IOException(file + " is not a regular file" + (attrs.isSymbolicLink() ? " but a symbolic link" : ""));
        }
        if (attrs.size() > MAX_RECORD_BYTES) {
            throw new IOException(file + " is " + attrs.size() + " bytes, and a record is at most " + MAX_RECORD_BYTES
                    + " bytes: it is not a record this server wrote");
        }
        String text = Files.readString(file, StandardCharsets.UTF_8);
        try {
            JsonElement tree = JsonParser.parseString(text);
            if (!tree.isJsonObject()) throw new NotJson(file + " is not a JSON object", null);
            return tree.getAsJsonObject();
        } catch (JsonParseException | IllegalStateException e) {
            throw new NotJson(file + " is not readable JSON: " + e.getMessage(), e);
        }
    }

    /**
     * The job with the whole failures of its record ({@code error}, {@code earlierErrors}) when
     * the record on disk is of this very state; the job as given otherwise. For getJob of a
     * finished job whose failures the table keeps as summaries. Reads a file: not on the loop.
     */
    public Job withRecordedDetails(Job job) {
        try {
            Job onDisk = jobOf(job.jobId(), readRecordJson(job.jobId()));
            if (onDisk.state() != job.state() || onDisk.attempt() != job.attempt()
                    || onDisk.finishedAt() != job.finishedAt()) {
                return job;
            }
            return new Job(job.jobId(), job.spec(), job.state(), job.progress(), job.progressMessage(), job.attempt(),
                    job.createdAt(), job.startedAt(), job.finishedAt(), onDisk.error(), onDisk.earlierErrors(),
                    job.workerPid(), job.result());
        } catch (IOException | RuntimeException e) {
            return job;
        }
    }

    /** A format-2 record's job, checked to be a record of that job. */
    public static Job jobOf(String jobId, JsonObject record) throws IOException {
        try {
            Job job = GSON.fromJson(record.get("job"), Job.class);
            if (job == null || !jobId.equals(job.jobId()) || job.state() == null || job.spec() == null) {
                throw new IOException("job.json of " + jobId + " is not a record of that job");
            }
            return job;
        } catch (JsonParseException | IllegalArgumentException e) {
            throw new IOException("job.json of " + jobId + " does not hold a job: " + e.getMessage(), e);
        }
    }

    /** The ids of the job directories present, in no particular order. */
    public List<String> listJobIds() throws IOException {
        List<String> ids = new ArrayList<>();
        if (!Files.isDirectory(jobsDir)) return ids;
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(jobsDir)) {
            for (Path d : dirs) {
                String name = d.getFileName().toString();
                if (name.matches(ID_PATTERN) && Files.isDirectory(d)) ids.add(name);
            }
        }
        return ids;
    }

    /**
     * Removes a job for good: renames its directory to a tombstone name in one atomic step (a
     * restarted server ignores tombstones and deletes what is left of them), then deletes it.
     * When the rename is impossible, the record is deleted instead (a directory without one is
     * deleted at the next start). Either way the job cannot come back once this returns.
     *
     * @return what could not be deleted ("path: reason; ..."), or null when nothing is left
     * @throws IOException when neither step worked: the job would come back after a restart
     */
    public String remove(String jobId) throws IOException {
        Path dir = dirOf(jobId);
        if (!Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return null;
        Path tomb = jobsDir.resolve(TOMBSTONE_PREFIX + jobId + "-" + Long.toHexString(System.nanoTime()));
        try {
            Files.move(dir, tomb, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException renameFailed) {
            try {
                Files.deleteIfExists(dir.resolve("job.json"));
            } catch (IOException e) {
                e.addSuppressed(renameFailed);
                throw e;
            }
            tomb = dir;
        }
        List<String> left = PrivateFiles.deleteAll(tomb);
        return left.isEmpty() ? null : String.join("; ", left);
    }

    /** Deletes what is left of removed jobs (tombstones); returns what still could not be deleted. */
    public List<String> cleanTombstones() throws IOException {
        List<String> left = new ArrayList<>();
        if (!Files.isDirectory(jobsDir)) return left;
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(jobsDir, TOMBSTONE_PREFIX + "*")) {
            for (Path d : dirs) left.addAll(PrivateFiles.deleteAll(d));
        }
        return left;
    }

    public void delete(String jobId) throws IOException {
        PrivateFiles.deleteRecursively(dirOf(jobId));
    }

    /** Deletes the job's directory; a failure is logged, not thrown (nothing waits on it). */
    public void deleteQuietly(String jobId) {
        try {
            delete(jobId);
        } catch (IOException e) {
            java.util.logging.Logger.getLogger(JobFiles.class.getName())
                    .log(java.util.logging.Level.WARNING, "could not delete the files of job " + jobId, e);
        }
    }
}
