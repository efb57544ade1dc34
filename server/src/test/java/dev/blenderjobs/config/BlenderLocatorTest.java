package dev.blenderjobs.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BlenderLocatorTest {

    @TempDir
    Path tmp;

    private Path fakeBlender(Path dir, String versionOutput) throws IOException {
        Files.createDirectories(dir);
        Path script = dir.resolve("blender");
        Files.writeString(script, "#!/bin/sh\nprintf '%s\\n' '" + versionOutput + "'\nprintf 'build date: 2023-01-01\\n'\n");
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
        return script;
    }

    private BlenderLocator locator(Map<String, String> env) {
        return new BlenderLocator(env, "Linux", tmp.resolve("home"));
    }

    private static String problem(BlenderLocator.Result r) {
        assertTrue(r.installation().isEmpty(), "expected a problem, got " + r.installation());
        assertTrue(r.problem() != null && !r.problem().isBlank());
        return r.problem();
    }

    @Test
    void findsSupportedBlenderAndParsesItsVersion() throws IOException {
        Path blender = fakeBlender(tmp.resolve("bin"), "Blender 3.4.1");
        BlenderLocator.Result r = locator(Map.of()).locate(Optional.of(blender));
        assertNull(r.problem());
        BlenderInstallation i = r.installation().orElseThrow();
        assertEquals("3.4.1", i.version());
        assertEquals(3, i.major());
        assertEquals(4, i.minor());
        assertEquals(blender.toAbsolutePath(), i.executable());
        assertTrue(i.isSupported());
    }

    @Test
    void versionWithoutPatchAndBannerBeforeItIsParsed() throws IOException {
        Path blender = fakeBlender(tmp.resolve("bin"), "Read prefs: /root/.config/blender/userpref.blend\nBlender 4.0");
        BlenderInstallation i = locator(Map.of()).probe(blender, "test").installation().orElseThrow();
        assertEquals("4.0", i.version());
        assertEquals(4, i.major());
        assertEquals(0, i.minor());
    }

    @Test
    void oldestSupportedVersionIsAccepted() throws IOException {
        Path blender = fakeBlender(tmp.resolve("bin"), "Blender 2.93.18");
        assertTrue(locator(Map.of()).probe(blender, "test").installation().isPresent());
    }

    @Test
    void tooOldBlenderIsNotSupported() throws IOException {
        Path blender = fakeBlender(tmp.resolve("bin"), "Blender 2.80 (sub 75)");
        String p = problem(locator(Map.of()).locate(Optional.of(blender)));
        assertTrue(p.contains("2.80"), p);
        assertTrue(p.contains("2.93"), p);
        assertTrue(p.contains("or newer"), p);
    }

    @Test
    void programThatIsNotBlenderIsRejected() throws IOException {
        Path notBlender = fakeBlender(tmp.resolve("bin"), "hello");
        String p = problem(locator(Map.of()).locate(Optional.of(notBlender)));
        assertTrue(p.contains("does not look like Blender"), p);
        assertTrue(p.contains("\"hello\""), "quotes what it printed: " + p);
        assertTrue(p.contains(notBlender.toString()), p);
    }

    @Test
    void missingExplicitPathIsAProblemNamingIt() {
        Path missing = tmp.resolve("no/such/blender");
        String p = problem(locator(Map.of()).locate(Optional.of(missing)));
        assertTrue(p.contains(missing.toString()), p);
        assertTrue(p.contains("--blender"), "says where the path came from: " + p);
        assertTrue(p.contains("apt-get install blender"), p);
    }

    @Test
    void explicitPathIsNotAReasonToSearch() throws IOException {
        Path onPath = fakeBlender(tmp.resolve("onpath"), "Blender 3.6.0");
        Map<String, String> env = Map.of("PATH", onPath.getParent().toString(), "BLENDER", onPath.toString());
        String p = problem(locator(env).locate(Optional.of(tmp.resolve("missing"))));
        assertTrue(p.contains(tmp.resolve("missing").toString()), p);
    }

    @Test
    void nonExecutableFileIsAProblem() throws IOException {
        Path blender = fakeBlender(tmp.resolve("bin"), "Blender 3.4.1");
        Files.setPosixFilePermissions(blender, PosixFilePermissions.fromString("rw-r--r--"));
        String p = problem(locator(Map.of()).locate(Optional.of(blender)));
        assertTrue(p.contains("not an executable file"), p);
        assertTrue(p.contains(blender.toString()), p);
    }

    @Test
    void directoryIsAProblem() {
        String p = problem(locator(Map.of()).locate(Optional.of(tmp)));
        assertTrue(p.contains("not an executable file"), p);
    }

    @Test
    void blenderEnvironmentVariableIsUsed() throws IOException {
        Path blender = fakeBlender(tmp.resolve("env-bin"), "Blender 3.3.0");
        Path onPath = fakeBlender(tmp.resolve("path-bin"), "Blender 4.1.0");
        Map<String, String> env = Map.of("BLENDER", blender.toString(), "PATH", onPath.getParent().toString());
        BlenderInstallation i = locator(env).locate(Optional.empty()).installation().orElseThrow();
        assertEquals(blender.toAbsolutePath(), i.executable());
        assertEquals("3.3.0", i.version());
    }

    @Test
    void brokenBlenderEnvironmentVariableIsAProblemNamingIt() {
        Path missing = tmp.resolve("gone/blender");
        String p = problem(locator(Map.of("BLENDER", missing.toString())).locate(Optional.empty()));
        assertTrue(p.contains(missing.toString()), p);
        assertTrue(p.contains("BLENDER environment variable"), p);
    }

    @Test
    void blankBlenderEnvironmentVariableIsIgnored() throws IOException {
        Path onPath = fakeBlender(tmp.resolve("path-bin"), "Blender 3.6.2");
        Map<String, String> env = Map.of("BLENDER", "  ", "PATH", onPath.getParent().toString());
        assertEquals(onPath, locator(env).locate(Optional.empty()).installation().orElseThrow().executable());
    }

    @Test
    void pathSearchFindsTheFirstExecutableBlender() throws IOException {
        Path empty = tmp.resolve("empty");
        Files.createDirectories(empty);
        Path nonExec = tmp.resolve("nonexec");
        Files.createDirectories(nonExec);
        Files.writeString(nonExec.resolve("blender"), "not runnable");
        Path found = fakeBlender(tmp.resolve("a"), "Blender 3.4.1");
        Path later = fakeBlender(tmp.resolve("b"), "Blender 4.2.0");
        String path = String.join(java.io.File.pathSeparator, empty.toString(), "", nonExec.toString(),
                found.getParent().toString(), later.getParent().toString());
        BlenderInstallation i = locator(Map.of("PATH", path)).locate(Optional.empty()).installation().orElseThrow();
        assertEquals(found, i.executable());
        assertEquals("3.4.1", i.version());
    }

    @Test
    void candidatesListPathEntriesFirstThenInstallPlaces() throws IOException {
        Path home = tmp.resolve("home");
        Files.createDirectories(home.resolve("blender-3.6.0-linux-x64"));
        Files.createDirectories(home.resolve("blender-4.1.1-linux-x64"));
        String path = tmp.resolve("x") + java.io.File.pathSeparator + tmp.resolve("y");
        List<Path> c = new BlenderLocator(Map.of("PATH", path), "Linux", home).candidates();
        assertEquals(tmp.resolve("x/blender"), c.get(0));
        assertEquals(tmp.resolve("y/blender"), c.get(1));
        assertTrue(c.contains(Path.of("/usr/bin/blender")), c.toString());
        int newer = c.indexOf(home.resolve("blender-4.1.1-linux-x64/blender"));
        int older = c.indexOf(home.resolve("blender-3.6.0-linux-x64/blender"));
        assertTrue(newer >= 0 && older > newer, "newest first: " + c);
    }

    @Test
    void candidatesOnMacAndWindows() {
        List<Path> mac = new BlenderLocator(Map.of(), "Mac OS X", tmp).candidates();
        assertTrue(mac.contains(Path.of("/Applications/Blender.app/Contents/MacOS/Blender")), mac.toString());
        assertFalse(mac.contains(Path.of("/usr/bin/blender")), mac.toString());

        List<Path> win = new BlenderLocator(Map.of("Path", tmp.toString()), "Windows 11", tmp).candidates();
        assertEquals(tmp.resolve("blender.exe"), win.get(0), "Windows spells it Path and blender.exe");
    }

    @Test
    void nothingFoundIsAProblemWithTheInstallHint() {
        BlenderLocator l = new BlenderLocator(Map.of("PATH", tmp.toString()), "Linux", tmp);
        // On a machine with Blender installed in a usual place the search may find it: only
        // check the message when nothing is found.
        BlenderLocator.Result r = l.locate(Optional.empty());
        if (r.installation().isEmpty()) {
            assertTrue(r.problem().contains("No Blender executable found"), r.problem());
            assertTrue(r.problem().contains("apt-get install blender"), r.problem());
        } else {
            assertNull(r.problem());
        }
    }
}
