package dev.blenderjobs.wire;

import org.eclipse.lsp4j.jsonrpc.services.JsonNotification;
import org.eclipse.lsp4j.jsonrpc.services.JsonRequest;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * protocol.md is the single reference of the wire: every method the server registers (requests
 * and notifications it receives, notifications it sends) has a "### `name`" heading there, and
 * every method heading there exists in the code.
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
        Set<String> sent = new TreeSet<>();
        collect(JobClient.class, sent);
        assertEquals(sent, new TreeSet<>(JobServerEndpoint.NOTIFICATIONS),
                "the initialize capability 'notifications' must list every notification the server sends");
    }

    private static void collect(Class<?> type, Set<String> names) {
        for (Method method : type.getMethods()) {
            JsonRequest request = method.getAnnotation(JsonRequest.class);
            if (request != null) names.add(request.value().isEmpty() ? method.getName() : request.value());
            JsonNotification note = method.getAnnotation(JsonNotification.class);
            if (note != null) names.add(note.value().isEmpty() ? method.getName() : note.value());
        }
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
