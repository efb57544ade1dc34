package dev.blenderjobs.workers;

import dev.blenderjobs.channel.FromWorker;
import dev.blenderjobs.channel.ProtocolViolation;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.model.Timing;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Results of a remote worker arrive in chunks: written under a .part name, renamed after the last
 * chunk, checked by ResultCheck like a local worker's; anything out of order is a violation.
 */
class RemoteResultsTest {
    private static final String JOB = "job-0123456789ab";

    private static FromWorker.ResultChunk chunk(String name, long offset, boolean last, byte[] data) {
        return new FromWorker.ResultChunk(JOB, name, offset, last, data);
    }

    @Test
    void chunksBecomeTheResultFileWhichResultCheckAccepts(@TempDir Path dir) throws Exception {
        Path result = dir.resolve("result");
        Files.createDirectories(result);
        Files.writeString(result.resolve("data_blocks.blend"), "from an earlier attempt");
        byte[] data = new byte[2_500_000];
        Arrays.fill(data, (byte) 'x');
        data[0] = '"';
        data[data.length - 1] = '"';
        RemoteResults r = new RemoteResults(JOB, result);
        r.accept(chunk("pythonData", 0, false, Arrays.copyOfRange(data, 0, 1_000_000)));
        assertFalse(Files.exists(result.resolve("data_blocks.blend")), "an earlier attempt's results are gone");
        assertFalse(Files.exists(result.resolve("python_data.json")), "not under its name before it is whole");
        r.accept(chunk("pythonData", 1_000_000, false, Arrays.copyOfRange(data, 1_000_000, 2_000_000)));
        r.accept(chunk("pythonData", 2_000_000, true, Arrays.copyOfRange(data, 2_000_000, data.length)));
        r.finish();
        assertArrayEquals(data, Files.readAllBytes(result.resolve("python_data.json")));
        assertFalse(Files.exists(result.resolve("python_data.json.part")));
        String sha = ResultCheck.sha256(result.resolve("python_data.json"));
        ResultCheck.verify(new FromWorker.Completed(JOB, data.length, sha, null, Timing.NONE),
                new ToWorker.RunFiles("s", "p", null, null, "w", result.toString()));
        ProtocolViolation lie = assertThrows(ProtocolViolation.class, () -> ResultCheck.verify(
                new FromWorker.Completed(JOB, data.length, "0".repeat(64), null, Timing.NONE),
                new ToWorker.RunFiles("s", "p", null, null, "w", result.toString())));
        assertTrue(lie.getMessage().contains("hash"), lie.getMessage());
    }

    @Test
    void chunksOutOfOrderOfAnotherJobOrUnfinishedAreViolations(@TempDir Path dir) throws Exception {
        Path result = dir.resolve("result");
        RemoteResults r = new RemoteResults(JOB, result);
        assertTrue(assertThrows(ProtocolViolation.class, () -> r.accept(new FromWorker.ResultChunk("job-000000000000",
                "pythonData", 0, true, new byte[1]))).getMessage().contains("while it ran job"));
        r.accept(chunk("pythonData", 0, false, new byte[10]));
        assertTrue(assertThrows(ProtocolViolation.class, () -> r.accept(chunk("pythonData", 5, true, new byte[1])))
                .getMessage().contains("out of order"));
        assertFalse(Files.exists(result.resolve("python_data.json.part")), "a refused file is deleted");

        RemoteResults unfinished = new RemoteResults(JOB, result);
        unfinished.accept(chunk("pythonData", 0, false, new byte[10]));
        assertTrue(assertThrows(ProtocolViolation.class, unfinished::finish).getMessage().contains("complete"));
    }

    @Test
    void anAttemptThatSentNoResultLeavesNoEarlierOne(@TempDir Path dir) throws Exception {
        Path result = dir.resolve("result");
        Files.createDirectories(result);
        Files.writeString(result.resolve("python_data.json"), "{\"old\":1}");
        new RemoteResults(JOB, result).finish();
        assertFalse(Files.exists(result.resolve("python_data.json")));
    }
}
