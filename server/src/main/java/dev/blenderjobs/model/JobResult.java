package dev.blenderjobs.model;

import com.google.gson.JsonObject;

/**
 * What a completed attempt left, as the worker runtime reported it and the server checked it.
 * The files themselves live in the job's {@code result/} directory, at paths the server's own
 * layout gives (never a path a worker named).
 *
 * @param pythonDataBytes  size of {@code python_data.json}
 * @param pythonDataSha256 SHA-256 (hex) of {@code python_data.json}, checked before it is served;
 *                         null in records of servers before 0.2
 * @param dataBlocks       {collection: [names]} written to {@code data_blocks.blend}, or null when none
 * @param timing           where the attempt's time went inside Blender
 */
public record JobResult(long pythonDataBytes, String pythonDataSha256, JsonObject dataBlocks, Timing timing) {

    public boolean hasDataBlocks() {
        return dataBlocks != null && !dataBlocks.isEmpty();
    }

    /** How many blocks {@code dataBlocks} lists. */
    public int dataBlockCount() {
        int n = 0;
        if (dataBlocks != null) {
            for (String key : dataBlocks.keySet()) {
                n += dataBlocks.get(key).isJsonArray() ? dataBlocks.getAsJsonArray(key).size() : 0;
            }
        }
        return n;
    }
}
