package dev.blenderjobs.jobs;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

/**
 * Where a job's files live: {@code <stateDir>/jobs/<jobId>/}, named by the server-generated id
 * only. Client-given names never reach a path.
 * <pre>
 *   job.json            the job's state ({@link JobRecord}), rewritten atomically on each change
 *   spec.json           what the job runs with ({@link StoredSpec}), written once at addJob
 *   script.py           the script source as it was when the job was added
 *   input/passed.blend  private copy of passedDataBlocks.library
 *   input/scene.blend   private copy of blendFile
 *   work/               the script's current directory
 *   result/             python_data.json and data_blocks.blend
 *   log.txt             everything the job printed, all attempts (log.txt.part while it runs)
 * </pre>
 * Every file a restarted server reads after a job's creation is written to a temporary name
 * and renamed into place (job.json, the results, the log), so a server killed at any moment
 * leaves either the old content or the new, never a mix. The files written at addJob (inputs,
 * script.py, spec.json) come before the job's first job.json, which commits them. Likewise the
 * runtime renames the results into place, and the log is renamed to log.txt, before the record
 * that says COMPLETED. A log.txt.part left by a killed server is renamed when it is read back.
 */
public final class JobFiles {
    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();
    private static final String ID_PATTERN = "job-[0-9a-f]{12}";

    private final Path stateDir;
    private final Path jobsDir;

    public JobFiles(Path stateDir) {
        this.stateDir = stateDir;
        this.jobsDir = stateDir.resolve("jobs");
    }

    public Path stateDir() {
        return stateDir;
    }

    /**
     * What a job runs with, kept so that an interrupted job can run again after a restart.
     * The inputs themselves are the private copies beside it (script.py, input/).
     */
    public record StoredSpec(int format, String name, String scriptPath, double timeoutSeconds,
                             JsonObject passedData, JsonObject passedNames, int maxAttempts, boolean freshProcess) {
    }

    public Path dirOf(String jobId) {
        if (!jobId.matches("[A-Za-z0-9-]+")) throw new IllegalArgumentException("not a job id: " + jobId);
        return jobsDir.resolve(jobId);
    }

    public Path logOf(String jobId) {
        return dirOf(jobId).resolve("log.txt");
    }

    public Path workDirOf(String jobId) {
        return dirOf(jobId).resolve("work");
    }

    public Path resultDirOf(String jobId) {
        return dirOf(jobId).resolve("result");
    }

    /** Inputs copied into the job's directory. */
    public record Inputs(Path passedLibrary, Path blendFile) {
    }

    /**
     * Creates the job's directory, copies its inputs and, last, writes its first record
     * (QUEUED): a directory without one is an addJob that never finished. Runs off the event loop.
     */
    public Inputs prepare(String jobId, JobSpec spec, long createdAt) throws IOException {
        Path dir = dirOf(jobId);
        createPrivateDirectories(dir.resolve("input"));
        Files.createDirectories(workDirOf(jobId));
        Files.createDirectories(resultDirOf(jobId));
        Files.writeString(dir.resolve("script.py"), spec.scriptSource());
        // Not renamed into place: job.json, written last, is what commits the job's files.
        Files.writeString(dir.resolve("spec.json"), GSON.toJson(new StoredSpec(JobRecord.FORMAT, spec.name(),
                spec.scriptPath() == null ? null : spec.scriptPath().toString(), spec.timeoutSeconds(),
                spec.passedData(), spec.passedNames(), spec.maxAttempts(), spec.freshProcess())));
        Path library = null;
        Path blend = null;
        if (spec.passedLibrary() != null) {
            library = passedLibraryOf(jobId);
            Files.copy(spec.passedLibrary(), library, StandardCopyOption.REPLACE_EXISTING);
        }
        if (spec.blendFile() != null) {
            blend = blendFileOf(jobId);
            Files.copy(spec.blendFile(), blend, StandardCopyOption.REPLACE_EXISTING);
        }
        writeRecord(JobRecord.queued(jobId, spec, createdAt));
        return new Inputs(library, blend);
    }

    /** The private copies of a job's inputs that exist on disk. */
    public Inputs existingInputs(String jobId) {
        Path library = passedLibraryOf(jobId);
        Path blend = blendFileOf(jobId);
        return new Inputs(Files.isRegularFile(library) ? library : null, Files.isRegularFile(blend) ? blend : null);
    }

    private Path passedLibraryOf(String jobId) {
        return dirOf(jobId).resolve("input/passed.blend");
    }

    private Path blendFileOf(String jobId) {
        return dirOf(jobId).resolve("input/scene.blend");
    }

    public Path pythonDataOf(String jobId) {
        return resultDirOf(jobId).resolve("python_data.json");
    }

    /** Writes the job's record; its directory must exist (a removed job's record is not revived). */
    public void writeRecord(JobRecord record) throws IOException {
        Path dir = dirOf(record.id());
        if (!Files.isDirectory(dir)) throw new NoSuchFileException(dir.toString(), null, "the job's directory is gone");
        writeAtomically(dir.resolve("job.json"), GSON.toJson(record));
    }

    /** The job's record, or an exception saying why it cannot be read. */
    public JobRecord readRecord(String jobId) throws IOException {
        JobRecord r = read(dirOf(jobId).resolve("job.json"), JobRecord.class);
        if (r.format() != JobRecord.FORMAT || !jobId.equals(r.id()) || r.state() == null) {
            throw new IOException("job.json of " + jobId + " is not a format-" + JobRecord.FORMAT + " record of that job");
        }
        return r;
    }

    /** The spec of an interrupted job, rebuilt from spec.json and script.py, to run it again. */
    public JobSpec readSpec(String jobId) throws IOException {
        StoredSpec s = read(dirOf(jobId).resolve("spec.json"), StoredSpec.class);
        if (s.format() != JobRecord.FORMAT) throw new IOException("spec.json of " + jobId + " has an unknown format");
        String source = Files.readString(dirOf(jobId).resolve("script.py"), StandardCharsets.UTF_8);
        return new JobSpec(s.name(), s.scriptPath() == null ? null : Path.of(s.scriptPath()), source,
                s.timeoutSeconds(), s.passedData() == null ? new JsonObject() : s.passedData(), null, s.passedNames(),
                null, Math.max(1, s.maxAttempts()), s.freshProcess(), false, null);
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

    private static <T> T read(Path file, Class<T> type) throws IOException {
        String text = Files.readString(file, StandardCharsets.UTF_8);
        try {
            T value = GSON.fromJson(text, type);
            if (value == null) throw new IOException(file + " is empty");
            return value;
        } catch (JsonParseException | IllegalArgumentException e) {
            throw new IOException(file + " is not readable JSON: " + e.getMessage(), e);
        }
    }

    /**
     * Replaces {@code target} with {@code text} by writing a temporary file beside it and
     * renaming it over the target, so readers (and a restarted server) never see half a file.
     */
    public static void writeAtomically(Path target, String text) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        try {
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
    }

    /** Empties the result folder before a new attempt, so a retry never sees an old result. */
    public void clearResults(String jobId) throws IOException {
        Path results = resultDirOf(jobId);
        deleteRecursively(results);
        Files.createDirectories(results);
    }

    public void delete(String jobId) throws IOException {
        deleteRecursively(dirOf(jobId));
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

    /** Creates a directory (and parents) readable by this user only, where the OS supports it. */
    public static void createPrivateDirectories(Path dir) throws IOException {
        Files.createDirectories(dir);
        try {
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
        } catch (UnsupportedOperationException e) {
            // Not a POSIX file system (Windows): the per-user profile folder is already private.
        }
    }

    /** A fresh temporary directory readable by this user only. */
    public static Path createPrivateTempDirectory(String prefix) throws IOException {
        try {
            return Files.createTempDirectory(prefix,
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (UnsupportedOperationException e) {
            return Files.createTempDirectory(prefix); // Windows: the user's temp folder is private
        }
    }

    public static void deleteRecursively(Path root) throws IOException {
        if (!Files.exists(root)) return;
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.deleteIfExists(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                Files.deleteIfExists(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }
}
