package dev.blenderjobs.io;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Deleting what a job left: links never followed, folders it locked opened again by their owner. */
class PrivateFilesTest {

    /**
     * A job's {@code chmod 000} on a folder stops its owner (not root) from listing and deleting
     * it. Root ignores mode bits, so under root the check runs as user nobody (setpriv), with
     * PrivateFiles copied where nobody can read it.
     */
    @Test
    void aFolderItsOwnerMadeUnreadableIsOpenedAndDeleted() throws Exception {
        Path root = Files.createTempDirectory("private-files-test");
        try {
            Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxr-xr-x"));
            Path job = root.resolve("jobs/job"); // jobs/ belongs to the user, as a state directory's does
            Files.createDirectories(job.resolve("work/sub/deeper"));
            Files.writeString(job.resolve("job.json"), "{}");
            Files.writeString(job.resolve("work/sub/kept.txt"), "x");
            Files.writeString(job.resolve("work/sub/deeper/f"), "y");
            Files.createSymbolicLink(job.resolve("work/sub/link"), root); // removed, never followed
            boolean asRoot = "root".equals(System.getProperty("user.name"));
            if (asRoot) run("chown", "-R", "65534:65534", root.resolve("jobs").toString());
            Files.setPosixFilePermissions(job.resolve("work/sub/deeper"), PosixFilePermissions.fromString("---------"));
            Files.setPosixFilePermissions(job.resolve("work/sub"), PosixFilePermissions.fromString("---------"));
            Files.setPosixFilePermissions(job.resolve("work"), PosixFilePermissions.fromString("r-x------"));
            List<String> left;
            if (asRoot) {
                Path classes = root.resolve("cp/dev/blenderjobs/io");
                Files.createDirectories(classes);
                Path compiled = Path.of(PrivateFiles.class.getProtectionDomain().getCodeSource().getLocation().toURI())
                        .resolve("dev/blenderjobs/io");
                try (var all = Files.list(compiled)) {
                    for (Path c : all.filter(p -> p.getFileName().toString().startsWith("PrivateFiles")).toList()) {
                        Files.copy(c, classes.resolve(c.getFileName()));
                    }
                }
                Path main = root.resolve("DeleteAll.java");
                Files.writeString(main, "public class DeleteAll { public static void main(String[] a) { "
                        + "for (String s : dev.blenderjobs.io.PrivateFiles.deleteAll(java.nio.file.Path.of(a[0]))) "
                        + "System.out.println(s); } }");
                run("chmod", "-R", "a+rX", root.resolve("cp").toString(), main.toString());
                String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
                String out = run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", java, "-cp",
                        root.resolve("cp").toString(), main.toString(), job.toString());
                left = out.isBlank() ? List.of() : List.of(out.strip().split("\n"));
            } else {
                left = PrivateFiles.deleteAll(job);
            }
            assertEquals(List.of(), left);
            assertFalse(Files.exists(job), "the whole tree is gone");
            assertTrue(Files.isDirectory(root), "the link's target is untouched");
        } finally {
            run("chmod", "-R", "u+rwx", root.toString());
            PrivateFiles.deleteRecursively(root);
        }
    }

    private static String run(String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(new ArrayList<>(List.of(command))).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), String.join(" ", command));
        assertEquals(0, p.exitValue(), String.join(" ", command) + ": " + out);
        return out;
    }
}
