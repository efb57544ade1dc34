package dev.blenderjobs.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The Blender-side Python runtime ({@code worker_runtime.py}), shipped inside the jar and
 * written into the server's private directory so that Blender can run it with --python.
 */
public final class RuntimeScript {
    static final String RESOURCE = "/dev/blenderjobs/runtime/worker_runtime.py";

    private RuntimeScript() {
    }

    /** The runtime's source text (embedded in a Slurm pilot's batch script). */
    public static String source() throws IOException {
        try (InputStream in = RuntimeScript.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IOException("the jar lacks " + RESOURCE);
            return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        }
    }

    /** Writes the runtime into {@code dir} and returns its path. */
    public static Path install(Path dir) throws IOException {
        Files.createDirectories(dir);
        Path target = dir.resolve("worker_runtime.py");
        try (InputStream in = RuntimeScript.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IOException("the jar lacks " + RESOURCE);
            Path tmp = dir.resolve("worker_runtime.py.tmp");
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        }
        return target;
    }
}
