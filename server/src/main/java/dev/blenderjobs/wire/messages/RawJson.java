package dev.blenderjobs.wire.messages;

import com.google.gson.TypeAdapter;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonWriter;

import java.io.IOException;

/**
 * JSON text that goes on the wire as it is, without being parsed into a tree and serialized
 * again: python_data results are written by the worker runtime as valid JSON, and can be
 * megabytes long.
 */
public record RawJson(String json) {

    /** Registered with LSP4J's Gson (see WireLauncher). */
    public static final class Adapter extends TypeAdapter<RawJson> {
        @Override
        public void write(JsonWriter out, RawJson value) throws IOException {
            if (value == null) {
                out.nullValue();
            } else {
                out.jsonValue(value.json());
            }
        }

        @Override
        public RawJson read(JsonReader in) {
            throw new UnsupportedOperationException("RawJson is only ever sent");
        }
    }
}
