package dev.blenderjobs.wire.messages;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.TypeAdapter;
import com.google.gson.annotations.JsonAdapter;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.JsonWriter;
import dev.blenderjobs.model.Fields;
import dev.blenderjobs.model.PassedData;

import java.io.IOException;

/**
 * The params of addJob as they come off the wire: {@code passedData} is read as it streams in
 * ({@link PassedData#read}: checked, kept as compact text, never a tree), the other params, which
 * are small, as a JSON object. LSP4J hands a request's params to this type's adapter when the
 * message names its method before its params (every client here does); otherwise it parses the
 * params into a tree first and the adapter reads that.
 *
 * @param fields     every param except an object-valued passedData
 * @param passedData passedData read from the stream, or null (absent, null, or not an object:
 *                   then it is in {@code fields} for the model to refuse)
 * @param problem    why passedData was refused while it was read, or null
 */
@JsonAdapter(AddJobParams.Adapter.class)
public record AddJobParams(JsonObject fields, PassedData passedData, Fields.InvalidFieldException problem) {

    /** Params given as a tree (tests, and params sent before the method). */
    public static AddJobParams of(JsonObject params) {
        return new AddJobParams(params == null ? new JsonObject() : params, null, null);
    }

    static final class Adapter extends TypeAdapter<AddJobParams> {
        @Override
        public AddJobParams read(JsonReader in) throws IOException {
            if (in.peek() != JsonToken.BEGIN_OBJECT) {
                // The wire answers a params that is not an object before LSP4J gets here.
                JsonParser.parseReader(in);
                return of(null);
            }
            JsonObject fields = new JsonObject();
            PassedData passed = null;
            Fields.InvalidFieldException problem = null;
            in.beginObject();
            while (in.hasNext()) {
                String name = in.nextName();
                if (name.equals("passedData") && in.peek() == JsonToken.BEGIN_OBJECT) {
                    try {
                        passed = PassedData.read(in, Fields.of("addJob", null));
                    } catch (Fields.InvalidFieldException e) {
                        problem = e;
                    }
                } else {
                    JsonElement value = JsonParser.parseReader(in);
                    fields.add(name, value);
                }
            }
            in.endObject();
            return new AddJobParams(fields, passed, problem);
        }

        @Override
        public void write(JsonWriter out, AddJobParams value) {
            throw new UnsupportedOperationException("addJob params are only read");
        }
    }
}
