package dev.blenderjobs.config;

import java.nio.file.Path;

/** A Blender executable that was found and answered {@code --version}. */
public record BlenderInstallation(Path executable, String version, int major, int minor) {

    /** The oldest Blender whose Python API the worker runtime supports. */
    public static final int MIN_MAJOR = 2;
    public static final int MIN_MINOR = 93;

    public boolean isSupported() {
        return major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR);
    }
}
