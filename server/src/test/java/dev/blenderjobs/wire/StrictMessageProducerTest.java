package dev.blenderjobs.wire;

import org.eclipse.lsp4j.jsonrpc.json.MessageJsonHandler;
import org.eclipse.lsp4j.jsonrpc.messages.Message;
import org.eclipse.lsp4j.jsonrpc.messages.MessageIssue;
import org.eclipse.lsp4j.jsonrpc.messages.NotificationMessage;
import org.eclipse.lsp4j.jsonrpc.messages.RequestMessage;
import org.eclipse.lsp4j.jsonrpc.services.ServiceEndpoints;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What the strict reader hands to LSP4J and what it answers itself, message by message. */
class StrictMessageProducerTest {
    private final List<Message> consumed = new ArrayList<>();
    /** The errors the reader answered: "id code". */
    private final List<String> answered = new ArrayList<>();

    private void read(String stream) {
        MessageJsonHandler json = new MessageJsonHandler(ServiceEndpoints.getSupportedMethods(JobServerEndpoint.class));
        var producer = new WireLauncher.StrictMessageProducer(
                new ByteArrayInputStream(stream.getBytes(StandardCharsets.UTF_8)), json,
                (message, issues) -> {
                    MessageIssue issue = issues.get(0);
                    answered.add(((RequestMessage) message).getId() + " " + issue.getIssueCode());
                }, 1 << 20);
        producer.listen(consumed::add);
    }

    private static String frame(String body) {
        return "Content-Length: " + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body;
    }

    private static String twentyRequests() {
        StringBuilder sb = new StringBuilder();
        for (int i = 1; i <= 20; i++) sb.append(frame("{\"jsonrpc\":\"2.0\",\"id\":" + i + ",\"method\":\"getStats\"}"));
        return sb.toString();
    }

    private List<String> consumedIds() {
        return consumed.stream().map(m -> m instanceof RequestMessage r ? r.getId() : "notification").toList();
    }

    private static List<String> oneToTwenty() {
        List<String> ids = new ArrayList<>();
        for (int i = 1; i <= 20; i++) ids.add(Integer.toString(i));
        return ids;
    }

    @Test
    void aLengthCountedInCharactersGetsAParseErrorAndTheNextTwentyRequestsAreServed() {
        String cafe = "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"getJob\",\"params\":{\"jobId\":\"café\"}}";
        read("Content-Length: " + cafe.length() + "\r\n\r\n" + cafe + twentyRequests());
        assertEquals(List.of("null -32700"), answered);
        assertEquals(oneToTwenty(), consumedIds());
    }

    @Test
    void aLowercaseContentLengthIsAHeader() {
        String body = "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"getStats\"}";
        read("content-length: " + body.length() + "\r\n\r\n" + body + twentyRequests());
        List<String> expected = new ArrayList<>(List.of("99"));
        expected.addAll(oneToTwenty());
        assertEquals(expected, consumedIds());
        assertEquals(List.of(), answered);
    }

    @Test
    void aNegativeLengthWithABodyIsSkippedAndTheNextTwentyRequestsAreServed() {
        read("Content-Length: -5\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"getStats\"}" + twentyRequests());
        assertEquals(oneToTwenty(), consumedIds());
    }

    @Test
    void trailingJunkAfterABodyIsSkipped() {
        read(frame("{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"getStats\"}") + "}}junk" + twentyRequests());
        List<String> expected = new ArrayList<>(List.of("99"));
        expected.addAll(oneToTwenty());
        assertEquals(expected, consumedIds());
    }

    @Test
    void aLengthFiveTooLargeStillServesThatRequestAndTheNextTwenty() {
        String body = "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"getStats\"}";
        read("Content-Length: " + (body.length() + 5) + "\r\n\r\n" + body + twentyRequests());
        List<String> expected = new ArrayList<>(List.of("99"));
        expected.addAll(oneToTwenty());
        assertEquals(expected, consumedIds());
        assertEquals(List.of(), answered);
    }

    @Test
    void aDollarRequestIsMethodNotFoundAndADollarNotificationIsPassedOnToBeIgnored() {
        read(frame("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"$/unknownThing\",\"params\":{}}")
                + frame("{\"jsonrpc\":\"2.0\",\"method\":\"$/unknownThing\",\"params\":{}}"));
        assertEquals(List.of("7 -32601"), answered);
        assertEquals(1, consumed.size());
        assertEquals("$/unknownThing", ((NotificationMessage) consumed.get(0)).getMethod());
    }

    @Test
    void noParameterMethodsTakeNullEmptyArrayAndArrayOfNull() {
        read(frame("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"shutdown\",\"params\":[null]}")
                + frame("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"cancelAll\",\"params\":[]}")
                + frame("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resumeAll\",\"params\":null}")
                + frame("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"getStats\",\"params\":[null]}")
                + frame("{\"jsonrpc\":\"2.0\",\"method\":\"exit\",\"params\":[null]}")
                // A method that takes params still refuses an array, and [null, null] is not "nothing".
                + frame("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"getJob\",\"params\":[null]}")
                + frame("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"getStats\",\"params\":[null,null]}"));
        assertEquals(List.of("1", "2", "3", "4", "notification"), consumedIds());
        for (int i = 0; i < 4; i++) assertNull(((RequestMessage) consumed.get(i)).getParams(), consumed.get(i).toString());
        assertEquals(List.of("5 -32602", "6 -32602"), answered);
        assertTrue(consumed.get(4) instanceof NotificationMessage n && n.getMethod().equals("exit"));
    }
}
