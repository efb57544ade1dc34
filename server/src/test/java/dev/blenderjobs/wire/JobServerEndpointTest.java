package dev.blenderjobs.wire;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.blenderjobs.jobs.JobManager;
import dev.blenderjobs.wire.messages.Messages.InitializeResult;
import org.eclipse.lsp4j.jsonrpc.ResponseErrorException;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.when;

class JobServerEndpointTest {
    private final JobManager jobs = mock(JobManager.class);
    private final JobServerEndpoint.Host host = mock(JobServerEndpoint.Host.class);
    private final JobServerEndpoint endpoint = new JobServerEndpoint(jobs, Executors.newSingleThreadExecutor(), host,
            new ClientNotifier(java.time.Duration.ofMillis(20)), 1 << 20);

    private static JsonObject obj(String json) {
        return JsonParser.parseString(json.replace('\'', '"')).getAsJsonObject();
    }

    private static ResponseErrorException error(CompletableFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
        return assertInstanceOf(ResponseErrorException.class, e.getCause());
    }

    @Test
    void aHandlerThatThrowsAnErrorAnswersInternalErrorInsteadOfKillingTheReader() throws Exception {
        when(host.initialize(any(), any())).thenReturn(CompletableFuture.completedFuture(mock(InitializeResult.class)));
        endpoint.initialize(new JsonObject()).get(5, TimeUnit.SECONDS);
        when(jobs.get(anyString())).thenThrow(new StackOverflowError("deep"));

        CompletableFuture<?> answer = endpoint.getProgress(obj("{'jobId': 'job-000000000001'}"));

        ResponseErrorException e = error(answer);
        assertEquals(ErrorCodes.INTERNAL_ERROR, e.getResponseError().getCode());
        assertTrue(e.getResponseError().getMessage().contains("StackOverflowError"), e.getResponseError().getMessage());
    }

    @Test
    void jobRequestsWaitForTheInitializeAnswer() throws Exception {
        CompletableFuture<InitializeResult> opening = new CompletableFuture<>();
        when(host.initialize(any(), any())).thenReturn(opening);
        CompletableFuture<InitializeResult> init = endpoint.initialize(new JsonObject());
        // The state directory is still being opened: job requests are not served yet.
        assertEquals(ErrorCodes.SERVER_NOT_INITIALIZED,
                error(endpoint.getStats(new JsonObject())).getResponseError().getCode());
        opening.complete(mock(InitializeResult.class));
        init.get(5, TimeUnit.SECONDS);
        when(jobs.stats()).thenReturn(CompletableFuture.completedFuture(new JobManager.Stats(0, 0, 0, 0, 0, 0, 0, "local", 0,
                0, 0, java.util.List.of())));
        assertEquals(0, endpoint.getStats(new JsonObject()).get(5, TimeUnit.SECONDS).total());
    }

    @Test
    void theWorkspaceIsTheFirstFolderThenRootUriThenRootPath() {
        assertEquals("file:///a", JobServerEndpoint.workspaceOf(obj(
                "{'workspaceFolders': [{'uri': 'file:///a', 'name': 'a'}, {'uri': 'file:///b'}], 'rootUri': 'file:///c'}")));
        assertEquals("file:///c", JobServerEndpoint.workspaceOf(obj("{'workspaceFolders': [], 'rootUri': 'file:///c'}")));
        assertEquals("/d", JobServerEndpoint.workspaceOf(obj("{'rootUri': null, 'rootPath': '/d'}")));
        assertNull(JobServerEndpoint.workspaceOf(obj("{'processId': 1}")));
        assertNull(JobServerEndpoint.workspaceOf(null));
    }

    @Test
    void aMalformedWorkspaceIsRefusedWithTheFieldNamed() throws Exception {
        ResponseErrorException e = error(endpoint.initialize(obj("{'workspaceFolders': [{'name': 'no uri'}]}")));
        assertEquals(ErrorCodes.INVALID_PARAMS, e.getResponseError().getCode());
        assertTrue(e.getResponseError().getMessage().contains("\"workspaceFolders\""), e.getResponseError().getMessage());
        assertEquals(ErrorCodes.INVALID_PARAMS,
                error(endpoint.initialize(obj("{'rootUri': 42}"))).getResponseError().getCode());
    }
}
