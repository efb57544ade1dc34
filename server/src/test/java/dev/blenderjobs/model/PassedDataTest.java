package dev.blenderjobs.model;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.stream.JsonReader;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** passedData read as it streams in: checked, copied as compact UTF-8 text, never a tree. */
class PassedDataTest {
    private static final Fields ADD_JOB = Fields.of("addJob", null);

    /** Reads the value of "passedData" from a whole params text, as the wire does. */
    private static PassedData read(String paramsJson) throws Exception {
        JsonReader in = new JsonReader(new StringReader(paramsJson));
        in.beginObject();
        in.nextName();
        return PassedData.read(in, ADD_JOB);
    }

    private static Fields.InvalidFieldException refused(String paramsJson) {
        return assertThrows(Fields.InvalidFieldException.class, () -> read(paramsJson));
    }

    @Test
    void copiesTheObjectAsCompactUtf8WithNumbersAsTheyWereWritten() throws Exception {
        PassedData d = read("{\"passedData\": {\"a\": [1, 2.50, -3e2, true, null, \"é😀\\n\\\"\"], \"b\": {\"c\": {}}}}");
        assertEquals("{\"a\":[1,2.50,-3e2,true,null,\"é😀\\n\\\"\"],\"b\":{\"c\":{}}}", d.text());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        d.writeTo(out);
        assertEquals(d.bytes(), out.size());
        assertEquals(JsonParser.parseString(d.text()), JsonParser.parseString(out.toString(StandardCharsets.UTF_8)));
        assertEquals(java.util.List.of("a", "b"), d.keys());
    }

    @Test
    void aLargeValueIsCopiedWhole() throws Exception {
        StringBuilder sb = new StringBuilder("{\"passedData\": {\"values\": [");
        for (int i = 0; i < 300_000; i++) sb.append(i == 0 ? "" : ",").append(i).append(".5");
        sb.append("], \"s\": \"").append("ü".repeat(600_000)).append("\"}}");
        PassedData d = read(sb.toString());
        JsonObject back = JsonParser.parseString(d.text()).getAsJsonObject();
        assertEquals(300_000, back.getAsJsonArray("values").size());
        assertEquals("ü".repeat(600_000), back.get("s").getAsString());
        assertEquals(d.text().getBytes(StandardCharsets.UTF_8).length, d.bytes());
    }

    @Test
    void loneSurrogatesAreRefusedWithTheirPlace() {
        Fields.InvalidFieldException value = refused("{\"passedData\": {\"a\": [1, {\"b\": \"x\\ud800\"}]}}");
        assertEquals("passedData", value.field());
        assertTrue(value.reason().contains("lone surrogate") && value.reason().contains("passedData['a'][1]['b']")
                && value.reason().contains("\\ud800 at character 1"), value.reason());
        Fields.InvalidFieldException key = refused("{\"passedData\": {\"ok\": {\"\\udc00\": 1}}}");
        assertTrue(key.reason().contains("a key of passedData['ok']"), key.reason());
        Fields.InvalidFieldException reversed = refused("{\"passedData\": {\"s\": \"\\ude00\\ud83d\"}}");
        assertTrue(reversed.reason().contains("passedData['s']"), reversed.reason());
    }

    @Test
    void reservedTopLevelKeysAreRefusedButNotNestedOnes() throws Exception {
        Fields.InvalidFieldException e = refused("{\"passedData\": {\"x\": 1, \"python_data\": 2}}");
        assertTrue(e.reason().contains("\"python_data\""), e.reason());
        assertEquals("{\"inner\":{\"python_data\":2}}", read("{\"passedData\": {\"inner\": {\"python_data\": 2}}}").text());
    }

    @Test
    void theWholeValueIsConsumedEvenWhenRefused() throws Exception {
        JsonReader in = new JsonReader(new StringReader(
                "{\"passedData\": {\"bad\": \"\\ud800\", \"more\": [1, [2, {\"x\": 3}]]}, \"name\": \"after\"}"));
        in.beginObject();
        in.nextName();
        assertThrows(Fields.InvalidFieldException.class, () -> PassedData.read(in, ADD_JOB));
        assertEquals("name", in.nextName());
        assertEquals("after", in.nextString());
    }

    @Test
    void aTreeIsReadTheSameWay() {
        JsonObject tree = JsonParser.parseString("{\"k\": [1, \"two\"]}").getAsJsonObject();
        assertEquals("{\"k\":[1,\"two\"]}", PassedData.of(tree, ADD_JOB).text());
    }
}
