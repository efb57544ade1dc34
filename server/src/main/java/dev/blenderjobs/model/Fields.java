package dev.blenderjobs.model;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;

import java.util.Collection;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Reads a request's params object field by field, failing with an {@link InvalidFieldException}
 * that names the field and says what was expected (the wire answers it with -32602 and
 * {@code data: {"field", "reason"}}).
 */
public final class Fields {
    private final String method;
    private final JsonObject object;

    private Fields(String method, JsonObject object) {
        this.method = method;
        this.object = object;
    }

    public static Fields of(String method, JsonObject params) {
        return new Fields(method, params == null ? new JsonObject() : params);
    }

    public String method() {
        return method;
    }

    public JsonObject raw() {
        return object;
    }

    /** Present and not null: a field sent as null counts as absent. */
    public boolean has(String field) {
        JsonElement e = object.get(field);
        return e != null && !e.isJsonNull();
    }

    /** Rejects fields this method does not know, so a typo is not silently ignored. */
    public void allowOnly(Collection<String> known) {
        for (Map.Entry<String, JsonElement> e : object.entrySet()) {
            if (!known.contains(e.getKey())) {
                throw invalid(e.getKey(), "is not a parameter of " + method + (known.isEmpty()
                        ? ", which takes none" : "; its parameters are " + String.join(", ", new TreeSet<>(known))));
            }
        }
    }

    public String requiredString(String field) {
        if (!has(field)) throw invalid(field, "is required (a string)");
        return string(field);
    }

    public String optionalString(String field) {
        return has(field) ? string(field) : null;
    }

    private String string(String field) {
        JsonElement e = object.get(field);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
            throw invalid(field, "must be a string, got " + describe(e));
        }
        String s = e.getAsString();
        int bad = Unicode.loneSurrogateAt(s);
        if (bad >= 0) {
            throw invalid(field, "has a lone surrogate (" + Unicode.describeAt(s, bad) + "); " + Unicode.ADVICE);
        }
        return s;
    }

    public double optionalNumber(String field, double fallback, double min, double max) {
        if (!has(field)) return fallback;
        JsonElement e = object.get(field);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw invalid(field, "must be a number, got " + describe(e));
        }
        double v = e.getAsDouble();
        if (Double.isNaN(v) || v < min || v > max) {
            throw invalid(field, "must be between " + fmt(min) + " and " + fmt(max) + ", got " + e);
        }
        return v;
    }

    public int optionalInt(String field, int fallback, int min, int max) {
        if (!has(field)) return fallback;
        JsonElement e = object.get(field);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw invalid(field, "must be a whole number, got " + describe(e));
        }
        double v = e.getAsDouble();
        if (v != Math.rint(v)) throw invalid(field, "must be a whole number, got " + e);
        if (v < min || v > max) throw invalid(field, "must be between " + min + " and " + max + ", got " + e);
        return (int) v;
    }

    public boolean optionalBoolean(String field, boolean fallback) {
        if (!has(field)) return fallback;
        JsonElement e = object.get(field);
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
            throw invalid(field, "must be true or false, got " + describe(e));
        }
        return e.getAsBoolean();
    }

    public JsonObject optionalObject(String field) {
        if (!has(field)) return null;
        JsonElement e = object.get(field);
        if (!e.isJsonObject()) throw invalid(field, "must be a JSON object, got " + describe(e));
        return e.getAsJsonObject();
    }

    public String oneOf(String field, String fallback, Set<String> allowed) {
        String v = optionalString(field);
        if (v == null) return fallback;
        if (!allowed.contains(v)) {
            throw invalid(field, "must be one of " + String.join(", ", new TreeSet<>(allowed)) + ", got \"" + v + "\"");
        }
        return v;
    }

    public InvalidFieldException invalid(String field, String reason) {
        return new InvalidFieldException(method, field, reason);
    }

    public static String describe(JsonElement e) {
        if (e == null || e.isJsonNull()) return "null";
        if (e.isJsonObject()) return "an object";
        if (e.isJsonArray()) return "an array";
        JsonPrimitive p = e.getAsJsonPrimitive();
        if (p.isBoolean()) return "a boolean (" + p + ")";
        if (p.isNumber()) return "a number (" + p + ")";
        String s = p.getAsString();
        return "a string (\"" + (s.length() > 60 ? s.substring(0, 60) + "..." : s) + "\")";
    }

    private static String fmt(double d) {
        return d == Math.rint(d) ? Long.toString((long) d) : Double.toString(d);
    }

    /** A request field that is missing, of the wrong type or out of range. */
    public static final class InvalidFieldException extends RuntimeException {
        private final String field;
        private final String reason;

        public InvalidFieldException(String method, String field, String reason) {
            super("Invalid params for " + method + ": \"" + field + "\" " + reason);
            this.field = field;
            this.reason = reason;
        }

        public String field() {
            return field;
        }

        public String reason() {
            return reason;
        }
    }
}
