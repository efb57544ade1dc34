package dev.blenderjobs.config;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Finds Blender: {@code --blender PATH}, then {@code $BLENDER}, then {@code PATH}, then the usual
 * install places on Linux, macOS and Windows; then checks its version once.
 */
public final class BlenderLocator {

    private static final Pattern VERSION = Pattern.compile("Blender (\\d+)\\.(\\d+)(?:\\.(\\d+))?");
    public static final String INSTALL_HINT =
            "Install Blender 2.93 or newer (on Debian/Ubuntu: sudo apt-get install blender; "
            + "elsewhere from https://www.blender.org/download/), then start the server with "
            + "--blender /path/to/blender or set the BLENDER environment variable.";

    /** The outcome of the search: either an installation or a message for people. */
    public record Result(Optional<BlenderInstallation> installation, String problem) {
        static Result found(BlenderInstallation i) { return new Result(Optional.of(i), null); }
        static Result missing(String problem) { return new Result(Optional.empty(), problem); }
    }

    private final Map<String, String> env;
    private final String osName;
    private final Path home;

    public BlenderLocator(Map<String, String> env, String osName, Path home) {
        this.env = env;
        this.osName = osName.toLowerCase();
        this.home = home;
    }

    public static BlenderLocator forThisMachine() {
        return new BlenderLocator(System.getenv(), System.getProperty("os.name", ""),
                Path.of(System.getProperty("user.home", ".")));
    }

    /** Searches and probes. An explicit path that does not work is an error, not a reason to guess. */
    public Result locate(Optional<Path> explicit) {
        if (explicit.isPresent()) {
            return probe(explicit.get(), "--blender");
        }
        String fromEnv = env.get("BLENDER");
        if (fromEnv != null && !fromEnv.isBlank()) {
            return probe(Path.of(fromEnv), "the BLENDER environment variable");
        }
        List<Path> tried = new ArrayList<>();
        for (Path candidate : candidates()) {
            tried.add(candidate);
            if (Files.isRegularFile(candidate) && Files.isExecutable(candidate)) {
                return probe(candidate, "the search");
            }
        }
        return Result.missing("No Blender executable found (looked on PATH and in " + tried.size()
                + " usual install places). " + INSTALL_HINT);
    }

    /** Candidate paths in search order: PATH entries first, then OS-specific install places. */
    List<Path> candidates() {
        Set<Path> out = new LinkedHashSet<>();
        boolean windows = osName.contains("win");
        String exe = windows ? "blender.exe" : "blender";
        String path = env.getOrDefault("PATH", env.getOrDefault("Path", ""));
        for (String dir : path.split(java.io.File.pathSeparator)) {
            if (!dir.isBlank()) out.add(Path.of(dir, exe));
        }
        if (osName.contains("mac")) {
            out.add(Path.of("/Applications/Blender.app/Contents/MacOS/Blender"));
            out.add(home.resolve("Applications/Blender.app/Contents/MacOS/Blender"));
        } else if (windows) {
            for (String base : List.of(env.getOrDefault("ProgramFiles", "C:\\Program Files"),
                    env.getOrDefault("ProgramFiles(x86)", "C:\\Program Files (x86)"))) {
                out.addAll(newestFirst(Path.of(base, "Blender Foundation"), "Blender*", "blender.exe"));
            }
        } else {
            out.add(Path.of("/usr/bin/blender"));
            out.add(Path.of("/usr/local/bin/blender"));
            out.add(Path.of("/snap/bin/blender"));
            out.add(Path.of("/var/lib/flatpak/exports/bin/org.blender.Blender"));
            out.addAll(newestFirst(Path.of("/opt"), "blender*", "blender"));
            out.addAll(newestFirst(home, "blender*", "blender"));
        }
        return new ArrayList<>(out);
    }

    private static List<Path> newestFirst(Path dir, String glob, String exe) {
        List<Path> found = new ArrayList<>();
        if (!Files.isDirectory(dir)) return found;
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(dir, glob)) {
            for (Path p : stream) found.add(p.resolve(exe));
        } catch (IOException | RuntimeException ignored) {
            // An unreadable folder is simply not a place Blender is.
        }
        found.sort(Comparator.comparing(Path::toString).reversed());
        return found;
    }

    /** Runs {@code blender --version} and parses its first line. */
    Result probe(Path executable, String source) {
        if (!Files.exists(executable)) {
            return Result.missing("Blender not found at " + executable + " (from " + source + "). " + INSTALL_HINT);
        }
        if (!Files.isRegularFile(executable) || !Files.isExecutable(executable)) {
            return Result.missing(executable + " (from " + source + ") is not an executable file. " + INSTALL_HINT);
        }
        String output;
        int exit;
        try {
            ProcessBuilder pb = new ProcessBuilder(executable.toString(), "--version");
            pb.redirectErrorStream(true);
            pb.environment().remove("PYTHONPATH");
            pb.environment().remove("PYTHONHOME");
            Process p = pb.start();
            p.getOutputStream().close();
            output = readLimited(p.getInputStream(), 64 * 1024);
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                return Result.missing(executable + " (from " + source + ") did not answer --version within 30 s; "
                        + "is it really Blender? " + INSTALL_HINT);
            }
            exit = p.exitValue();
        } catch (IOException e) {
            return Result.missing("Could not run " + executable + " (from " + source + "): " + e.getMessage()
                    + ". " + INSTALL_HINT);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Result.missing("Interrupted while checking " + executable);
        }
        Matcher m = VERSION.matcher(output);
        if (!m.find()) {
            String first = output.strip().lines().findFirst().orElse("(no output)");
            return Result.missing(executable + " (from " + source + ") does not look like Blender: `--version` "
                    + "exited " + exit + " and printed \"" + abbreviate(first) + "\". " + INSTALL_HINT);
        }
        int major = Integer.parseInt(m.group(1));
        int minor = Integer.parseInt(m.group(2));
        String version = m.group(0).substring("Blender ".length());
        BlenderInstallation installation = new BlenderInstallation(executable.toAbsolutePath(), version, major, minor);
        if (!installation.isSupported()) {
            return Result.missing(executable + " is Blender " + version + ", but blender-jobs needs Blender "
                    + BlenderInstallation.MIN_MAJOR + "." + BlenderInstallation.MIN_MINOR + " or newer. " + INSTALL_HINT);
        }
        return Result.found(installation);
    }

    private static String abbreviate(String s) {
        return s.length() > 200 ? s.substring(0, 200) + "..." : s;
    }

    private static String readLimited(InputStream in, int limit) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        int n;
        while ((n = in.read(buf)) >= 0) {
            if (out.size() < limit) out.write(buf, 0, Math.min(n, limit - out.size()));
        }
        return out.toString(StandardCharsets.UTF_8);
    }
}
