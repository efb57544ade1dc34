package dev.blenderjobs.workers.slurm;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --listen and the server id of a state directory. */
class SlurmLauncherTest {

    @Test
    void listenTakesAHostAnOptionalPortAndNeverAWildcard() throws IOException {
        InetSocketAddress a = SlurmLauncher.parseListen("127.0.0.1:4567");
        assertEquals("127.0.0.1", a.getAddress().getHostAddress());
        assertEquals(4567, a.getPort());
        assertEquals(0, SlurmLauncher.parseListen("127.0.0.1").getPort(), "a free port");
        assertEquals(9, SlurmLauncher.parseListen("[::1]:9").getPort());
        for (String wildcard : new String[]{"0.0.0.0", "0.0.0.0:80", "[::]:80"}) {
            IOException e = assertThrows(IOException.class, () -> SlurmLauncher.parseListen(wildcard), wildcard);
            assertTrue(e.getMessage().contains("every address"), e.getMessage());
        }
        assertTrue(assertThrows(IOException.class, () -> SlurmLauncher.parseListen("127.0.0.1:99999")).getMessage()
                .contains("port"));
        assertThrows(IOException.class, () -> new PilotListener(new InetSocketAddress(0), null, null, null),
                "the listener itself refuses a wildcard too");
    }

    @Test
    void theServerIdIsStablePerStateDirectory(@TempDir Path a, @TempDir Path b) throws IOException {
        String id = SlurmLauncher.idOf(a);
        assertTrue(id.matches("[0-9a-f]{12}"), id);
        assertEquals(id, SlurmLauncher.idOf(a.resolve(".")), "the real path counts");
        assertNotEquals(id, SlurmLauncher.idOf(b));
    }
}
