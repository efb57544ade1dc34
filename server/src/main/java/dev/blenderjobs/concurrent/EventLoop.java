package dev.blenderjobs.concurrent;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One thread that owns the job table and the worker slots. Everything that changes job or
 * worker state runs here, so that state needs no locks and has exactly one owner. Tasks must
 * be short: blocking I/O belongs on other threads, which post their results back here.
 */
public final class EventLoop implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(EventLoop.class.getName());

    private final ScheduledExecutorService executor;
    private volatile Thread thread;

    public EventLoop(String name) {
        ScheduledThreadPoolExecutor executor = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            thread = t;
            return t;
        });
        // Every run sets a take check and an idle check that are cancelled a few milliseconds
        // later; kept queued until their (long) delays, they piled up to ~12,000 tasks and 1 MB
        // at 200 jobs/s. Cancelled now means gone.
        executor.setRemoveOnCancelPolicy(true);
        this.executor = executor;
    }

    /** Runs a task on the loop; a task that throws is logged and the loop goes on. */
    public void execute(Runnable task) {
        executor.execute(() -> guarded(task));
    }

    /** Runs a computation on the loop and completes the future with its value or exception. */
    public <T> CompletableFuture<T> call(Supplier<T> task) {
        CompletableFuture<T> future = new CompletableFuture<>();
        try {
            executor.execute(() -> {
                try {
                    future.complete(task.get());
                } catch (Throwable t) {
                    Fatal.check(t);
                    future.completeExceptionally(t);
                }
            });
        } catch (RuntimeException rejected) {
            future.completeExceptionally(rejected);
        }
        return future;
    }

    public ScheduledFuture<?> schedule(Runnable task, long delay, TimeUnit unit) {
        return executor.schedule(() -> guarded(task), delay, unit);
    }

    /** True when called on the loop thread; used to assert ownership. */
    public boolean inLoop() {
        return Thread.currentThread() == thread;
    }

    public void assertInLoop() {
        if (!inLoop()) throw new IllegalStateException("must run on the event loop, not " + Thread.currentThread().getName());
    }

    private static void guarded(Runnable task) {
        try {
            task.run();
        } catch (Throwable t) {
            Fatal.check(t);
            LOG.log(Level.SEVERE, "event loop task failed", t);
        }
    }

    @Override
    public void close() {
        executor.shutdownNow();
    }
}
