package dev.blenderjobs.wire.messages;

import com.google.gson.TypeAdapter;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonWriter;

import java.io.Closeable;
import java.io.IOException;
import java.nio.channels.FileChannel;

/**
 * A result whose JSON text is the content of an open file, streamed to the client as it is:
 * the python_data of a job can be hundreds of megabytes, and is never held in memory, parsed or
 * copied. The outgoing queue writes the response's envelope around it ({@code OutgoingQueue});
 * the file was checked (size and SHA-256) when it was opened, and stays open, so the bytes sent
 * are those of the file that was checked even if its name is replaced meanwhile.
 *
 * @param size the number of bytes to send from the start of the file
 */
public record JsonFile(FileChannel channel, long size) implements Closeable {

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // Read-only: nothing to lose.
        }
    }

    /** Registered with LSP4J's Gson: a JsonFile is written only by streaming, never as a tree. */
    public static final class Adapter extends TypeAdapter<JsonFile> {
        @Override
        public void write(JsonWriter out, JsonFile value) {
            throw new UnsupportedOperationException("a JsonFile result is streamed by the outgoing queue");
        }

        @Override
        public JsonFile read(JsonReader in) {
            throw new UnsupportedOperationException("JsonFile is only ever sent");
        }
    }
}
