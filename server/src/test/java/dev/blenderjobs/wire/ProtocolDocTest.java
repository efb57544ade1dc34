package dev.blenderjobs.wire;

import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.workers.WorkerPool;
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification;
import org.eclipse.lsp4j.jsonrpc.services.JsonRequest;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * protocol.md is the single reference of the wire: every method the server registers (requests
 * and notifications it receives, notifications it sends) has a "### `name`" heading there, and
 * every method heading there exists in the code (the server's one request to the client,
 * window/workDoneProgress/create, included). The enumerations a client switches on (job
 * states, failure kinds, worker slot states) are the same in the code, in protocol.md and in
 * the clients' types.
 */
class ProtocolDocTest {
    private static final Pattern HEADING = Pattern.compile("^###[^`\\n]*`([^`]+)`", Pattern.MULTILINE);

    @Test
    void everyRegisteredMethodIsDocumentedAndEveryDocumentedMethodExists() throws Exception {
        Set<String> inCode = new TreeSet<>();
        collect(JobServerEndpoint.class, inCode);
        collect(JobClient.class, inCode);

        String doc = Files.readString(Path.of("..", "protocol.md"));
        Set<String> documented = new TreeSet<>();
        Matcher m = HEADING.matcher(doc);
        while (m.find()) documented.add(m.group(1));

        assertEquals(inCode, documented, "protocol.md headings vs methods registered in the code");
        assertEquals(new TreeSet<>(JobServerEndpoint.REQUESTS), requestsOf(JobServerEndpoint.class),
                "the initialize capability 'requests' must list every request");
        assertEquals(notificationsOf(JobClient.class), new TreeSet<>(JobServerEndpoint.NOTIFICATIONS),
                "the initialize capability 'notifications' must list every notification the server sends");
    }

    private static final Path ROOT = Path.of("..");
    private static final Path PYTHON_CLIENT = ROOT.resolve("client-examples/python/blender_jobs_client.py");
    private static final Path NODE_TYPES = ROOT.resolve("client-examples/node/src/protocol.ts");

    private static Set<String> names(Enum<?>[] values) {
        return new TreeSet<>(Arrays.stream(values).map(Enum::name).toList());
    }

    private static String read(Path p) throws IOException {
        return Files.readString(p);
    }

    /** The text of protocol.md from the heading that starts with {@code heading} to the next of its level. */
    private static String section(String doc, String heading) {
        int start = doc.indexOf("\n" + heading);
        if (start < 0) throw new AssertionError("protocol.md has no heading " + heading);
        int level = heading.indexOf(' ');
        String marker = "\n" + "#".repeat(level) + " ";
        int end = doc.indexOf(marker, start + heading.length() + 1);
        return doc.substring(start, end < 0 ? doc.length() : end);
    }

    /** The first-column names of a table: rows starting with "| `NAME` |". */
    private static Set<String> tableNames(String text) {
        Set<String> out = new TreeSet<>();
        Matcher m = Pattern.compile("^\\| `([A-Z_]+)` \\|", Pattern.MULTILINE).matcher(text);
        while (m.find()) out.add(m.group(1));
        return out;
    }

    /** The quoted upper-case words of a Python tuple or TypeScript list/union named {@code name}. */
    private static Set<String> quotedList(String source, String name) {
        Matcher decl = Pattern.compile(name + "\\s*(?::[^=]*)?=\\s*([\\[(]?)").matcher(source);
        if (!decl.find()) throw new AssertionError("no " + name + " in the client");
        int end = source.indexOf(decl.group(1).equals("(") ? ")" : decl.group(1).equals("[") ? "]" : ";", decl.end());
        Set<String> out = new TreeSet<>();
        Matcher m = Pattern.compile("['\"]([A-Z_]+)['\"]").matcher(source.substring(decl.end(), end));
        while (m.find()) out.add(m.group(1));
        return out;
    }

    @Test
    void jobStatesAgreeEverywhere() throws Exception {
        Set<String> code = names(JobState.values());
        String doc = read(ROOT.resolve("protocol.md"));
        assertEquals(code, tableNames(section(doc, "### States")), "protocol.md §2 States");
        assertEquals(code, quotedList(read(PYTHON_CLIENT), "JOB_STATES"), "Python JOB_STATES");
        assertEquals(code, quotedList(read(NODE_TYPES), "export type JobState"), "Node JobState");
        assertEquals(code, quotedList(read(NODE_TYPES), "export const JOB_STATES"), "Node JOB_STATES");
    }

    @Test
    void failureKindsAgreeEverywhere() throws Exception {
        Set<String> code = names(FailureKind.values());
        String doc = read(ROOT.resolve("protocol.md"));
        assertEquals(code, tableNames(section(doc, "### Failure kinds")), "protocol.md §5 Failure kinds");
        assertEquals(code, quotedList(read(PYTHON_CLIENT), "FAILURE_KINDS"), "Python FAILURE_KINDS");
        assertEquals(code, quotedList(read(NODE_TYPES), "export type FailureKind"), "Node FailureKind");
        assertEquals(code, quotedList(read(NODE_TYPES), "export const FAILURE_KINDS"), "Node FAILURE_KINDS");
    }

    @Test
    void workerSlotStatesAgreeEverywhere() throws Exception {
        Set<String> code = names(WorkerPool.SlotState.values());
        String stats = section(read(ROOT.resolve("protocol.md")), "### `getStats`");
        Matcher m = Pattern.compile("`state` \\(([^)]*)\\)").matcher(stats);
        if (!m.find()) throw new AssertionError("protocol.md getStats does not list the slot states");
        Set<String> documented = new TreeSet<>();
        Matcher w = Pattern.compile("`([A-Z_]+)`").matcher(m.group(1));
        while (w.find()) documented.add(w.group(1));
        assertEquals(code, documented, "protocol.md getStats workerDetails.state");
        assertEquals(code, quotedList(read(NODE_TYPES), "export type WorkerState"), "Node WorkerState");
        assertEquals(code, quotedList(read(PYTHON_CLIENT), "WORKER_STATES"), "Python WORKER_STATES");
    }

    @Test
    void notificationNamesAgreeWithTheClients() throws Exception {
        String node = read(NODE_TYPES);
        for (String n : JobServerEndpoint.NOTIFICATIONS) {
            assertTrue(node.contains("'" + n + "'"), "the Node client's types know notification " + n);
        }
        String python = read(PYTHON_CLIENT);
        for (String n : List.of("job/progress", "job/stateChanged", "job/removed")) {
            assertTrue(python.contains("\"" + n + "\""), "the Python client handles notification " + n);
        }
    }

    /**
     * protocol.md's table of error codes (section 5, "Codes") is the server's: the same codes as
     * ErrorCodes (plus LSP4J's -32800), each application code under its JobException reason's
     * name, and the data each one carries.
     */
    @Test
    void theErrorTableMatchesTheCodesAndDataTheServerSends() throws Exception {
        Map<Integer, String[]> rows = errorTable(Files.readString(Path.of("..", "protocol.md")));

        Set<Integer> inCode = new TreeSet<>();
        for (java.lang.reflect.Field f : ErrorCodes.class.getFields()) {
            if (f.getType() == int.class && java.lang.reflect.Modifier.isStatic(f.getModifiers())) inCode.add(f.getInt(null));
        }
        inCode.add(org.eclipse.lsp4j.jsonrpc.messages.ResponseErrorCode.RequestCancelled.getValue());
        assertEquals(inCode, rows.keySet(), "codes in protocol.md vs ErrorCodes");

        for (dev.blenderjobs.jobs.JobException.Reason reason : dev.blenderjobs.jobs.JobException.Reason.values()) {
            int code = ErrorCodes.of(reason);
            String[] row = rows.get(code);
            assertEquals("`" + reason.name() + "`", row[0], "name of " + code);
            assertTrue(row[2].contains("`errorKind`"), code + " must document errorKind: " + row[2]);
            // What the endpoint sends for it:
            var error = ((org.eclipse.lsp4j.jsonrpc.ResponseErrorException) JobServerEndpoint.translate(
                    new dev.blenderjobs.jobs.JobException(reason, "m", null))).getResponseError();
            assertEquals(code, error.getCode());
            assertEquals(reason.name(), ((com.google.gson.JsonObject) error.getData()).get("errorKind").getAsString());
        }

        // Params' errors carry {field, reason}.
        assertTrue(rows.get(ErrorCodes.INVALID_PARAMS)[2].startsWith("`{\"field\", \"reason\"}`"),
                rows.get(ErrorCodes.INVALID_PARAMS)[2]);
        var invalid = ((org.eclipse.lsp4j.jsonrpc.ResponseErrorException) JobServerEndpoint.translate(
                dev.blenderjobs.model.Fields.of("getJob", null).invalid("jobId", "is required"))).getResponseError();
        assertEquals(ErrorCodes.INVALID_PARAMS, invalid.getCode());
        assertEquals(Set.of("field", "reason"), ((com.google.gson.JsonObject) invalid.getData()).keySet());

        // The protocol-level codes carry nothing.
        for (int code : new int[]{ErrorCodes.PARSE_ERROR, ErrorCodes.INVALID_REQUEST, ErrorCodes.METHOD_NOT_FOUND,
                ErrorCodes.INTERNAL_ERROR, ErrorCodes.SERVER_NOT_INITIALIZED, -32800}) {
            assertEquals("none", rows.get(code)[2], "data of " + code);
        }
        var internal = ((org.eclipse.lsp4j.jsonrpc.ResponseErrorException) JobServerEndpoint.translate(
                new IllegalStateException("bug"))).getResponseError();
        assertEquals(ErrorCodes.INTERNAL_ERROR, internal.getCode());
        assertNull(internal.getData());
        assertTrue(rows.get(ErrorCodes.PARSE_ERROR)[1].contains("not valid JSON"), "-32700 is for bodies that are not JSON");
        assertTrue(rows.get(ErrorCodes.INVALID_PARAMS)[1].contains("`params` is not an object"),
                "a params that is not an object is -32602, as the reader answers");
    }

    /** code -> {name, when, data} from the first table after "### Codes". */
    static Map<Integer, String[]> errorTable(String doc) {
        int at = doc.indexOf("\n### Codes\n");
        assertTrue(at >= 0, "protocol.md has no '### Codes' section");
        Map<Integer, String[]> rows = new TreeMap<>();
        boolean inTable = false;
        for (String line : doc.substring(at).split("\n")) {
            if (line.startsWith("| code ")) {
                inTable = true;
                continue;
            }
            if (!inTable || line.startsWith("|---")) continue;
            if (!line.startsWith("|")) break;
            String[] cells = line.substring(1, line.length() - 1).split(" \\| ", -1);
            assertEquals(4, cells.length, "a row of the error table must have 4 cells: " + line);
            String[] value = {cells[1].trim(), cells[2].trim(), cells[3].trim()};
            assertNull(rows.put(Integer.parseInt(cells[0].trim()), value), "code listed twice: " + line);
        }
        return rows;
    }

    private static void collect(Class<?> type, Set<String> names) {
        for (Method method : type.getMethods()) {
            JsonRequest request = method.getAnnotation(JsonRequest.class);
            if (request != null) names.add(request.value().isEmpty() ? method.getName() : request.value());
            JsonNotification note = method.getAnnotation(JsonNotification.class);
            if (note != null) names.add(note.value().isEmpty() ? method.getName() : note.value());
        }
    }

    private static Set<String> notificationsOf(Class<?> type) {
        Set<String> names = new TreeSet<>();
        for (Method method : type.getMethods()) {
            JsonNotification note = method.getAnnotation(JsonNotification.class);
            if (note != null) names.add(note.value().isEmpty() ? method.getName() : note.value());
        }
        return names;
    }

    private static Set<String> requestsOf(Class<?> type) {
        Set<String> names = new TreeSet<>();
        for (Method method : type.getMethods()) {
            JsonRequest request = method.getAnnotation(JsonRequest.class);
            if (request != null) names.add(request.value().isEmpty() ? method.getName() : request.value());
        }
        return names;
    }
}
