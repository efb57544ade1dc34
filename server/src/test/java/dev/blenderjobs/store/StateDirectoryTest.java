package dev.blenderjobs.store;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StateDirectoryTest {
    @TempDir
    Path tmp;

    @Test
    void aWorkspaceIsKeyedByItsNormalizedLocation() {
        String key = StateDirectory.workspaceKey("file:///home/ana/project");
        assertEquals(key, StateDirectory.workspaceKey("file:///home/ana/project/"));
        assertEquals(key, StateDirectory.workspaceKey("file:///home/ana/./other/../project"));
        assertNotEquals(key, StateDirectory.workspaceKey("file:///home/ana/project2"));
        assertTrue(StateDirectory.workspaceKey("../../etc/passwd\u0000").matches("[0-9a-f]{20}"),
                "whatever the client sends, the key is safe as a file name");
    }

    @Test
    void aWorkspaceGetsItsOwnPrivateDirectoryUnderTheDataHome() throws Exception {
        try (StateDirectory a = StateDirectory.forWorkspace("file:///work/a", tmp);
             StateDirectory b = StateDirectory.forWorkspace("file:///work/b", tmp)) {
            assertFalse(a.temporary());
            assertNull(a.note());
            assertTrue(a.path().startsWith(tmp.resolve("blender-jobs/workspaces")), a.path().toString());
            assertNotEquals(a.path(), b.path());
            assertEquals("file:///work/a\n", Files.readString(a.path().resolve("workspace.txt")));
            assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(a.path())));
        }
    }

    @Test
    void aWorkspaceDirectoryHeldByAnotherServerFallsBackToATemporaryOneAndSaysWhy() throws Exception {
        Path held;
        try (StateDirectory first = StateDirectory.forWorkspace("file:///work/a", tmp)) {
            held = first.path();
            try (StateDirectory second = StateDirectory.forWorkspace("file:///work/a", tmp)) {
                assertTrue(second.temporary());
                assertNotEquals(held, second.path());
                assertTrue(second.note().contains("is in use by another blender-jobs server"), second.note());
                assertTrue(second.note().contains("deleted when it exits"), second.note());
            }
        }
        try (StateDirectory again = StateDirectory.forWorkspace("file:///work/a", tmp)) {
            assertEquals(held, again.path(), "the lock is released on close");
        }
    }

    @Test
    void anExplicitDirectoryHeldByAnotherServerIsRefused() throws Exception {
        try (StateDirectory first = StateDirectory.explicit(tmp.resolve("state"))) {
            StateDirectory.InUseException e = assertThrows(StateDirectory.InUseException.class,
                    () -> StateDirectory.explicit(tmp.resolve("state")));
            assertTrue(e.getMessage().contains("(pid " + ProcessHandle.current().pid() + ")"), e.getMessage());
            assertTrue(e.getMessage().contains("give this one another --state-dir"), e.getMessage());
        }
    }

    @Test
    void aTemporaryDirectoryIsDeletedOnClose() throws Exception {
        StateDirectory t = StateDirectory.temporary(null);
        Files.writeString(t.path().resolve("x"), "y");
        t.close();
        assertFalse(Files.exists(t.path()));
    }

    @Test
    void theDataHomeFollowsEachPlatformsConvention() {
        Path home = Path.of("/home/ana");
        assertEquals(Path.of("/xdg"), dev.blenderjobs.config.ServerConfig.defaultDataHome(Map.of("XDG_DATA_HOME", "/xdg"), "Linux", home));
        assertEquals(home.resolve(".local/share"),
                dev.blenderjobs.config.ServerConfig.defaultDataHome(Map.of("XDG_DATA_HOME", "relative"), "Linux", home));
        assertEquals(home.resolve("Library/Application Support"), dev.blenderjobs.config.ServerConfig.defaultDataHome(Map.of(), "Mac OS X", home));
    }
}
