package dev.blenderjobs.workers;

import com.google.gson.JsonObject;

import java.nio.file.Path;

/** How one attempt of a job ended, as reported by the pool. */
public sealed interface AttemptOutcome {

    /**
     * The script finished and its results were written.
     *
     * @param dataBlocks {"library": path, "blocks": {collection: [names]}} or null when none
     * @param timing     the runtime's setup/script/collect times in ms
     */
    record Succeeded(Path pythonDataFile, long pythonDataBytes, JsonObject dataBlocks, JsonObject timing,
                     long workerPid) implements AttemptOutcome {
    }

    /**
     * The attempt failed.
     *
     * @param kind        a failure kind name (see FailureKind), e.g. SCRIPT_ERROR or BLENDER_CRASHED
     * @param crashReport Blender's crash report, when it wrote one
     */
    record Failed(String kind, String message, String traceback, String crashReport) implements AttemptOutcome {
    }
}
