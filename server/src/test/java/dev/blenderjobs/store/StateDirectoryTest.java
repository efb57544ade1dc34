package dev.blenderjobs.store;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.io.IOException;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
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
    void aDeletedLockFileIsTakenBackByItsHolderAndTheDirectoryStaysRefused() throws Exception {
        Path dir = tmp.resolve("state");
        try (StateDirectory holder = StateDirectory.explicit(dir)) {
            Path lock = dir.resolve(StateDirectory.LOCK_FILE);
            Files.delete(lock);
            long deadline = System.currentTimeMillis() + 5_000;
            while (!Files.exists(lock) && System.currentTimeMillis() < deadline) Thread.sleep(10);
            assertEquals(holder.lockClaim(), Files.readString(lock), "the holder re-created its lock file");
            assertThrows(StateDirectory.InUseException.class, () -> StateDirectory.explicit(dir));
            // Replaced by another file rather than deleted: the same.
            Files.writeString(tmp.resolve("other"), "pid 1\n");
            Files.move(tmp.resolve("other"), lock, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            holder.checkLock();
            assertEquals(holder.lockClaim(), Files.readString(lock));
            assertThrows(StateDirectory.InUseException.class, () -> StateDirectory.explicit(dir));
        }
    }

    /**
     * The race the guard alone cannot close: a second server creates server.lock after the
     * deletion and before the holder's next check. It waits before trusting its lock, the
     * holder takes the name back meanwhile, and the newcomer refuses the directory.
     */
    @Test
    void aServerThatCreatedTheLockInADirectoryInUseGivesItUpWhenTheHolderTakesItBack() throws Exception {
        Path dir = tmp.resolve("state");
        Duration never = Duration.ofHours(1); // the holder checks only when the test says so
        try (StateDirectory holder = StateDirectory.explicit(dir, never, StateDirectory.CLAIM_WAIT)) {
            Path lock = dir.resolve(StateDirectory.LOCK_FILE);
            Files.delete(lock);
            // A wait longer than the default 1 s: the holder's check below must fall inside it even
            // on a machine loaded enough to delay this thread for a second.
            CompletableFuture<StateDirectory> second = CompletableFuture.supplyAsync(() -> {
                try {
                    return StateDirectory.explicit(dir, never, Duration.ofSeconds(5));
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            long deadline = System.currentTimeMillis() + 5_000;
            while (!Files.exists(lock) && System.currentTimeMillis() < deadline) Thread.sleep(5);
            assertNotEquals(holder.lockClaim(), Files.readString(lock), "the newcomer made its own server.lock");
            holder.checkLock(); // within the newcomer's wait
            ExecutionException e = assertThrows(ExecutionException.class, () -> second.get(10, TimeUnit.SECONDS));
            assertInstanceOf(StateDirectory.InUseException.class, e.getCause().getCause(), e.toString());
            assertEquals(holder.lockClaim(), Files.readString(lock));
        }
    }

    /** If the newcomer got past its wait anyway (the holder's guard stalled), the older holder keeps the name and nobody fights. */
    @Test
    void theOlderHolderKeepsTheNameAndTheNewerOneDoesNotFightIt() throws Exception {
        Path dir = tmp.resolve("state");
        Duration never = Duration.ofHours(1);
        try (StateDirectory older = StateDirectory.explicit(dir, never, Duration.ZERO)) {
            Path lock = dir.resolve(StateDirectory.LOCK_FILE);
            Files.delete(lock);
            Thread.sleep(5); // claims are ordered by the millisecond they were made
            try (StateDirectory newer = StateDirectory.explicit(dir, never, Duration.ZERO)) {
                assertEquals(newer.lockClaim(), Files.readString(lock));
                older.checkLock();
                assertEquals(older.lockClaim(), Files.readString(lock), "the older holder took its name back");
                newer.checkLock();
                older.checkLock();
                assertEquals(older.lockClaim(), Files.readString(lock), "no ping-pong: the newer one yields");
            }
        }
    }

    @Test
    void anUnusableExplicitDirectoryIsRefusedWithAMessageForPeople() throws Exception {
        Path file = Files.writeString(tmp.resolve("a-file"), "not a directory");
        StateDirectory.UnusableException e = assertThrows(StateDirectory.UnusableException.class,
                () -> StateDirectory.explicit(file));
        assertTrue(e.getMessage().startsWith("The state directory " + file + " cannot be used: "), e.getMessage());
        assertTrue(e.getMessage().contains("is not a directory"), e.getMessage());
        assertTrue(e.getMessage().contains("another --state-dir"), e.getMessage());
        e = assertThrows(StateDirectory.UnusableException.class, () -> StateDirectory.explicit(file.resolve("state")));
        assertTrue(e.getMessage().contains("Not a directory"), e.getMessage());
    }

    @Test
    void theClaimInTheLockFileNamesItsHolderAndOlderClaimsWin() {
        StateDirectory.Claim a = new StateDirectory.Claim(12, 1000, "aa");
        StateDirectory.Claim b = new StateDirectory.Claim(13, 2000, "bb");
        assertEquals(a, StateDirectory.Claim.parse(a.text()));
        assertTrue(a.olderThan(b) && !b.olderThan(a));
        assertEquals(7, StateDirectory.Claim.parse("pid 7").pid(), "an older server's lock names its pid");
        assertNull(StateDirectory.Claim.parse("garbage"));
        // A claim read while its writer is half way: "since 17" is the start of a longer number,
        // and must never make the newcomer's claim look older than the holder's.
        StateDirectory.Claim half = StateDirectory.Claim.parse("pid 7\nsince 17");
        assertTrue(a.olderThan(half), "a half-written claim is never the older one");
        assertNull(StateDirectory.Claim.parse(null));
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
