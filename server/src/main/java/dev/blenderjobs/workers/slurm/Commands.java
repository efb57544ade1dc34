package dev.blenderjobs.workers.slurm;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Runs Slurm's commands (sbatch, squeue, scontrol, scancel) off the caller's thread, each with a
 * time limit: the event loops never wait for Slurm. A seam for tests of the parsing around them.
 */
interface Commands {

    /** What a command did; {@code exitCode} -1 when it could not run or ran past its limit. */
    record Result(List<String> command, int exitCode, String stdout, String stderr) {
        boolean ok() {
            return exitCode == 0;
        }

        /** stderr (or stdout) cut to its last lines, for messages. */
        String problem() {
            String text = (stderr.isBlank() ? stdout : stderr).strip();
            String[] lines = text.split("\n");
            int from = Math.max(0, lines.length - 5);
            String tail = String.join(" ", java.util.Arrays.copyOfRange(lines, from, lines.length)).strip();
            if (tail.length() > 1000) tail = tail.substring(0, 1000) + "...";
            return tail.isEmpty() ? command.get(0) + " exited with code " + exitCode : tail;
        }
    }

    /**
     * Runs {@code command} (no shell), with {@code stdin} as its input (null for none), killed
     * after {@code timeout}. The future never fails: a command that cannot run gives exit code -1
     * and the reason in stderr.
     */
    CompletableFuture<Result> run(List<String> command, byte[] stdin, Duration timeout);
}
