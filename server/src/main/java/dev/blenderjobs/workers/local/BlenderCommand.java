package dev.blenderjobs.workers.local;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * The command line and environment of a worker Blender, kept apart from the code that runs it
 * (as Flamenco's worker does): {@code -b} and {@code --python-exit-code} before {@code --python},
 * factory settings, its own config and temp folders, no PYTHONPATH/PYTHONHOME.
 *
 * @param blender          the Blender executable
 * @param runtimeScript    worker_runtime.py
 * @param progressInterval the runtime's minimum gap between two progress messages of a job
 */
public record BlenderCommand(Path blender, Path runtimeScript, Duration progressInterval) {

    public List<String> arguments() {
        return List.of(blender.toString(), "-b", "--factory-startup", "-noaudio",
                "--python-exit-code", "1", "--python", runtimeScript.toString());
    }

    /**
     * Sets the worker's environment. The connection details are consumed (removed from
     * os.environ) by the runtime before any job runs, so scripts never see them.
     *
     * @param config Blender's user config folder (private to the worker's slot)
     * @param tmp    the process's temp folder
     */
    public void configure(Map<String, String> env, Path config, Path tmp, String workerId, int port, String secret,
                          String marker) {
        env.remove("PYTHONPATH");
        env.remove("PYTHONHOME");
        env.remove("PYTHONSTARTUP");
        env.put("PYTHONIOENCODING", "utf-8:backslashreplace");
        env.put("BLENDER_USER_CONFIG", config.toString());
        env.put("TMPDIR", tmp.toString());
        env.put("TEMP", tmp.toString());
        env.put("TMP", tmp.toString());
        env.put("BLENDER_JOBS_HOST", "127.0.0.1");
        env.put("BLENDER_JOBS_PORT", Integer.toString(port));
        env.put("BLENDER_JOBS_SECRET", secret);
        env.put("BLENDER_JOBS_MARKER", marker);
        env.put("BLENDER_JOBS_WORKER", workerId);
        env.put("BLENDER_JOBS_PROGRESS_INTERVAL_MS", Long.toString(progressInterval.toMillis()));
    }
}
