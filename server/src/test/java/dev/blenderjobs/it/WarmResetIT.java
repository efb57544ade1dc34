package dev.blenderjobs.it;

import com.google.gson.JsonObject;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A warm worker skips the Blender reset after a job that provably left Blender's data as it
 * found it (the script never used bpy, no data block came or went, the dependency graph reports
 * no update). Each test runs a job that changes Blender's data in a way the skip must notice,
 * then a job on the same (only) worker that must find a freshly reset Blender.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class WarmResetIT {
    static final Duration HANG_GUARD = Duration.ofSeconds(90);
    static ServerProcess server;

    /** What a fresh Blender's empty data looks like, as python_data. */
    static final String PROBE = String.join("\n",
            "import bpy",
            "scene = bpy.context.scene",
            "python_data = {'objects': len(bpy.data.objects), 'meshes': sorted(m.name for m in bpy.data.meshes),",
            "               'frame_start': scene.frame_start, 'frame_end': scene.frame_end,",
            "               'custom': sorted(scene.keys())}");

    @BeforeAll
    static void start() throws Exception {
        server = ServerProcess.start("--workers", "1");
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
    }

    static JsonObject data(String script) throws Exception {
        JsonObject done = server.runToEnd(Json.of("scriptText", script), HANG_GUARD);
        assertEquals("COMPLETED", done.get("state").getAsString(), done.toString());
        return server.callObject("getPythonData", Json.jobId(done.get("jobId").getAsString()));
    }

    static void assertFresh(String after) throws Exception {
        JsonObject probe = data(PROBE);
        assertEquals(0, probe.get("objects").getAsInt(), after + ": " + probe);
        assertEquals(0, probe.getAsJsonArray("meshes").size(), after + ": " + probe);
        assertEquals(1, probe.get("frame_start").getAsInt(), after + ": " + probe);
        assertEquals(250, probe.get("frame_end").getAsInt(), after + ": " + probe);
        assertEquals(0, probe.getAsJsonArray("custom").size(), after + ": " + probe);
    }

    @Test
    void aJobThatNeverUsedBlenderLeavesItFresh() throws Exception {
        data("python_data = {'sum': sum(range(1000))}");
        assertFresh("a job that did not use bpy");
    }

    @Test
    void settingsChangedThroughAModuleThatHoldsBpyAreUndone() throws Exception {
        // The script never names bpy: bpy_extras imported it before the job. The dependency graph
        // reports the change.
        data("import bpy_extras.object_utils as u\nu.bpy.context.scene.frame_end = 77\npython_data = {}");
        assertFresh("a setting changed through bpy_extras");
    }

    @Test
    void dataBlocksMadeThroughAModuleThatHoldsBpyAreRemoved() throws Exception {
        data("import bpy_extras.object_utils as u\nu.bpy.data.meshes.new('Leak')\npython_data = {}");
        assertFresh("a mesh made through bpy_extras");
    }

    @Test
    void aScriptThatUsesBpyIsAlwaysFollowedByAReset() throws Exception {
        data("import bpy\nbpy.context.scene.frame_start = 5\nbpy.context.scene['custom'] = 1\npython_data = {}");
        assertFresh("a script that used bpy");
        data("from bpy import context\ncontext.scene['x'] = 2\npython_data = {}");
        assertFresh("a script that imported from bpy");
    }
}
