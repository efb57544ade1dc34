package dev.blenderjobs.workers.slurm;

import dev.blenderjobs.concurrent.Threads;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * {@link Commands} as child processes on a small pool of threads of their own. Output is read
 * by a thread per stream and capped (Slurm's answers are small; a runaway one is cut, never
 * buffered without bound); stdin carries the batch script, so a pilot's secret never appears
 * on a command line or in a file of the server's.
 */
final class ProcessCommands implements Commands, AutoCloseable {
    /** The most output kept per stream. */
    static final int MAX_OUTPUT = 1024 * 1024;

    private final ExecutorService threads = Executors.newCachedThreadPool(Threads.daemon("slurm-command"));

    @Override
    public CompletableFuture<Result> run(List<String> command, byte[] stdin, Duration timeout) {
        CompletableFuture<Result> result = new CompletableFuture<>();
        try {
            threads.execute(() -> result.complete(runNow(command, stdin, timeout)));
        } catch (RuntimeException rejected) {
            result.complete(new Result(command, -1, "", "the server is stopping: " + rejected));
        }
        return result;
    }

    /** Runs the command on the calling thread (which is one of this pool's, or shutdown's). */
    Result runNow(List<String> command, byte[] stdin, Duration timeout) {
        Process p;
        try {
            ProcessBuilder pb = new ProcessBuilder(command);
            if (stdin == null) pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            p = pb.start();
        } catch (IOException e) {
            return new Result(command, -1, "", "could not run " + command.get(0) + ": " + e.getMessage()
                    + " (is Slurm's client installed and on PATH?)");
        }
        CompletableFuture<String> out = drain(p.getInputStream());
        CompletableFuture<String> err = drain(p.getErrorStream());
        try {
            if (stdin != null) {
                try (OutputStream in = p.getOutputStream()) {
                    in.write(stdin);
                } catch (IOException e) {
                    // The command exited without reading its input; its exit code says why.
                }
            }
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                p.waitFor(5, TimeUnit.SECONDS);
                return new Result(command, -1, out.getNow(""), command.get(0) + " did not answer within "
                        + timeout.toSeconds() + " s (is slurmctld reachable?)");
            }
            return new Result(command, p.exitValue(), out.get(5, TimeUnit.SECONDS), err.get(5, TimeUnit.SECONDS));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            return new Result(command, -1, "", "interrupted");
        } catch (Exception e) {
            return new Result(command, p.isAlive() ? -1 : p.exitValue(), out.getNow(""), "could not read the output of "
                    + command.get(0) + ": " + e);
        }
    }

    private CompletableFuture<String> drain(InputStream stream) {
        CompletableFuture<String> text = new CompletableFuture<>();
        threads.execute(() -> {
            ByteArrayOutputStream kept = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            try (stream) {
                int n;
                while ((n = stream.read(buf)) >= 0) {
                    int room = MAX_OUTPUT - kept.size();
                    if (room > 0) kept.write(buf, 0, Math.min(n, room));
                }
            } catch (IOException e) {
                // The process is gone; what was read is what there is.
            }
            text.complete(kept.toString(StandardCharsets.UTF_8));
        });
        return text;
    }

    @Override
    public void close() {
        threads.shutdownNow();
    }
}
