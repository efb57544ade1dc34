package dev.blenderjobs.model;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;

import java.util.Map;

/**
 * Where a completed attempt's time went inside Blender, in milliseconds, as the runtime measured
 * it; a stage the runtime did not report is null. Kept per finished job, so it is four numbers
 * rather than a JSON tree (a tree cost about 0.8 KB per job, a third of what a finished job
 * holds: bench/RESULTS.md).
 *
 * @param setupMs   reset Blender when needed, open or append the job's inputs
 * @param scriptMs  the user's script
 * @param resetMs   undo what the script changed in the interpreter
 * @param collectMs convert and write the results
 */
public record Timing(Double setupMs, Double scriptMs, Double resetMs, Double collectMs) {

    public static final Timing NONE = new Timing(null, null, null, null);

    /** The names the runtime reports, in its order. */
    public static final java.util.List<String> NAMES = java.util.List.of("setupMs", "scriptMs", "resetMs", "collectMs");

    /**
     * Reads {name: milliseconds}. Names other than {@link #NAMES} are left out (a record written by
     * another version); a value that is not a number is left out too. Strict checking of what a
     * worker sends is the channel codec's job.
     */
    public static Timing lenient(JsonElement e) {
        if (e == null || !e.isJsonObject()) return NONE;
        Double[] v = new Double[NAMES.size()];
        for (Map.Entry<String, JsonElement> t : e.getAsJsonObject().entrySet()) {
            int i = NAMES.indexOf(t.getKey());
            if (i >= 0 && t.getValue() instanceof JsonPrimitive p && p.isNumber()) v[i] = p.getAsDouble();
        }
        return new Timing(v[0], v[1], v[2], v[3]);
    }

    /** As getJob shows it: only the stages that were reported. */
    public JsonObject toJson() {
        JsonObject o = new JsonObject();
        put(o, "setupMs", setupMs);
        put(o, "scriptMs", scriptMs);
        put(o, "resetMs", resetMs);
        put(o, "collectMs", collectMs);
        return o;
    }

    private static void put(JsonObject o, String name, Double value) {
        if (value != null) o.addProperty(name, value);
    }
}
