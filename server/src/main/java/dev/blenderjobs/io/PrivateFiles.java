package dev.blenderjobs.io;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

/** File helpers every layer needs: private folders, atomic replacement, recursive delete. */
public final class PrivateFiles {
    private PrivateFiles() {
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

    /**
     * Replaces {@code target} with {@code text} by writing a temporary file beside it and
     * renaming it over the target, so readers (and a restarted server) never see half a file.
     */
    public static void writeAtomically(Path target, String text) throws IOException {
        writeAtomically(target, text.getBytes(StandardCharsets.UTF_8));
    }

    public static void writeAtomically(Path target, byte[] bytes) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        try {
            Files.write(tmp, bytes);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
    }

    /**
     * Deletes a file or a whole tree as far as it can, and says what it could not: links are
     * removed, never followed; a folder its owner made unreadable or unwritable (a job's own
     * {@code chmod 000}) is made 0700 again first, which its owner may always do. Never throws
     * for what it could not delete.
     *
     * @return "path: reason" of the first few things left, empty when the whole tree is gone
     */
    public static List<String> deleteAll(Path root) {
        List<String> left = new ArrayList<>();
        if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) return left;
        try {
            Files.walkFileTree(root, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) {
                    deleteOne(file, left);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFileFailed(Path file, IOException exc) {
                    // A folder that cannot be listed: open it up (never through a link) and go on inside.
                    if (exc instanceof java.nio.file.AccessDeniedException && ownerAccess(file)) {
                        left.addAll(deleteAll(file));
                    } else {
                        note(left, file, exc);
                    }
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path dir, IOException exc) {
                    if (exc != null) note(left, dir, exc);
                    deleteOne(dir, left);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            note(left, root, e);
        }
        return left.size() > 5 ? new ArrayList<>(left.subList(0, 5)) : left;
    }

    private static void deleteOne(Path path, List<String> left) {
        try {
            Files.deleteIfExists(path);
        } catch (java.nio.file.DirectoryNotEmptyException e) {
            // What is left inside was noted already.
        } catch (java.nio.file.AccessDeniedException e) {
            // Its folder is not writable: make it so (its owner may), then try once more.
            Path parent = path.getParent();
            try {
                if (parent == null || !ownerAccess(parent)) throw e;
                Files.deleteIfExists(path);
            } catch (IOException again) {
                note(left, path, again);
            }
        } catch (IOException e) {
            note(left, path, e);
        }
    }

    /**
     * Gives a folder back to its owner (rwx------); false if it cannot. A link is never chmod-ed:
     * it is checked for just before. (The no-follow form of chmod opens the folder, which mode
     * 000 forbids. Only its owner can be refused access, and a link swapped in between could only
     * point chmod at files that owner may change anyway: root is never refused.)
     */
    private static boolean ownerAccess(Path dir) {
        try {
            if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) return false;
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private static void note(List<String> left, Path path, IOException e) {
        if (left.size() < 100) left.add(path + ": " + reason(e));
    }

    private static String reason(IOException e) {
        if (e instanceof java.nio.file.FileSystemException f && f.getReason() != null) return f.getReason();
        if (e instanceof java.nio.file.AccessDeniedException) return "Permission denied";
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }

    /** Deletes a file or a whole tree; links are removed, never followed. */
    public static void deleteRecursively(Path root) throws IOException {
        if (!Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
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
