package dev.blenderjobs.it;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

/** Small helpers for building params in tests. */
final class Json {
    private Json() {
    }

    /** Parses JSON written with single quotes for readability: {'a': 1}. */
    static JsonObject obj(String singleQuoted) {
        return JsonParser.parseString(singleQuoted.replace('\'', '"')).getAsJsonObject();
    }

    static JsonObject of(Object... keyValues) {
        JsonObject o = new JsonObject();
        for (int i = 0; i < keyValues.length; i += 2) {
            Object v = keyValues[i + 1];
            String k = (String) keyValues[i];
            if (v instanceof JsonElement e) o.add(k, e);
            else if (v instanceof Number n) o.addProperty(k, n);
            else if (v instanceof Boolean b) o.addProperty(k, b);
            else if (v != null) o.addProperty(k, v.toString());
        }
        return o;
    }

    static JsonObject jobId(String id) {
        return of("jobId", id);
    }
}
