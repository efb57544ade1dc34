package dev.blenderjobs.jobs;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * Where a job's files live: {@code <stateDir>/jobs/<jobId>/}, named by the server-generated id
 * only. Client-given names never reach a path.
 * <pre>
 *   script.py           the script source as it was when the job was added
 *   input/passed.blend  private copy of passedDataBlocks.library
 *   input/scene.blend   private copy of blendFile
 *   work/               the script's current directory
 *   result/             python_data.json and data_blocks.blend
 *   log.txt             everything the job printed, all attempts
 * </pre>
 */
public final class JobFiles {
    private final Path jobsDir;

    public JobFiles(Path stateDir) {
        this.jobsDir = stateDir.resolve("jobs");
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

    /** Creates the job's directory and copies its inputs. Runs off the event loop. */
    public Inputs prepare(String jobId, JobSpec spec) throws IOException {
        Path dir = dirOf(jobId);
        createPrivateDirectories(dir.resolve("input"));
        Files.createDirectories(workDirOf(jobId));
        Files.createDirectories(resultDirOf(jobId));
        Files.writeString(dir.resolve("script.py"), spec.scriptSource());
        Path library = null;
        Path blend = null;
        if (spec.passedLibrary() != null) {
            library = dir.resolve("input/passed.blend");
            Files.copy(spec.passedLibrary(), library, StandardCopyOption.REPLACE_EXISTING);
        }
        if (spec.blendFile() != null) {
            blend = dir.resolve("input/scene.blend");
            Files.copy(spec.blendFile(), blend, StandardCopyOption.REPLACE_EXISTING);
        }
        return new Inputs(library, blend);
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

    /** Creates a directory (and parents) readable by this user only, where the OS supports it. */
    public static void createPrivateDirectories(Path dir) throws IOException {
        Files.createDirectories(dir);
        try {
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
        } catch (UnsupportedOperationException e) {
            // Not a POSIX file system (Windows): the per-user profile folder is already private.
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
