package dev.blenderjobs.runtime;

import dev.blenderjobs.BlenderJobsServer;
import dev.blenderjobs.channel.ChannelCodec;
import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.model.FailureKind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The runtime shipped in the jar speaks the server's channel protocol and says so in its hello. */
class RuntimeScriptTest {

    private static String runtime(Path dir) throws Exception {
        return Files.readString(RuntimeScript.install(dir));
    }

    private static String constant(String source, String name) {
        Matcher m = Pattern.compile("^" + name + " = \"?([^\"\\s#]+)\"?", Pattern.MULTILINE).matcher(source);
        assertTrue(m.find(), name + " is defined in worker_runtime.py");
        return m.group(1);
    }

    @Test
    void theRuntimeStatesTheServersVersionAndProtocol(@TempDir Path dir) throws Exception {
        String source = runtime(dir);
        assertEquals(BlenderJobsServer.VERSION, constant(source, "RUNTIME_VERSION"));
        assertEquals(Integer.toString(ChannelCodec.PROTOCOL), constant(source, "PROTOCOL"));
    }

    @Test
    void theRuntimeSpeaksTheWholeProtocol4(@TempDir Path dir) throws Exception {
        // Protocol 4 is the union of two version 3s: started/idle (runtime hardening) and binary
        // frames (remote workers). A runtime missing either half would be refused or misbehave.
        assertEquals("4", constant(runtime(dir), "PROTOCOL"));
        String source = runtime(dir);
        for (String type : new String[] {"hello", "started", "progress", "completed", "failed", "idle", "console",
                "result"}) {
            assertTrue(source.contains("{\"type\": \"" + type + "\""), "the runtime sends " + type);
        }
        assertTrue(source.contains("elif kind == \"file\":"), "the runtime decodes file chunks");
        assertTrue(source.contains("BINARY_FLAG = 0x80000000"), "binary frames: the top bit of the length word");
    }

    @Test
    void everyKindTheRuntimeReportsIsOneAWorkerMayReport(@TempDir Path dir) throws Exception {
        String source = runtime(dir);
        Matcher m = Pattern.compile("JobFailure\\(\"([A-Z_]+)\"|\"kind\": \"([A-Z_]+)\"").matcher(source);
        int found = 0;
        while (m.find()) {
            String kind = m.group(1) != null ? m.group(1) : m.group(2);
            FailureKind k = FailureKind.named(kind).orElseThrow(() -> new AssertionError("unknown kind " + kind));
            assertTrue(FromWorker.REPORTABLE.contains(k), kind + " is reported by the runtime but refused by the codec");
            found++;
        }
        assertTrue(found >= 5, "the runtime's failure kinds were found (" + found + ")");
    }
}
