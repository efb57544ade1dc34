package dev.blenderjobs.concurrent;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(10)
class EventLoopTest {
    private final EventLoop loop = new EventLoop("test-loop");

    @AfterEach
    void tearDown() {
        loop.close();
    }

    @Test
    void callCompletesWithTheValue() throws Exception {
        assertEquals(42, loop.call(() -> 42).get(5, TimeUnit.SECONDS));
        assertEquals("test-loop", loop.call(() -> Thread.currentThread().getName()).get(5, TimeUnit.SECONDS));
    }

    @Test
    void callCompletesWithTheException() {
        IllegalStateException boom = new IllegalStateException("boom");
        CompletableFuture<Object> f = loop.call(() -> {
            throw boom;
        });
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
        assertSame(boom, e.getCause());
    }

    @Test
    void callCompletesWithAnError() {
        CompletableFuture<Object> f = loop.call(() -> {
            throw new AssertionError("error, not exception");
        });
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
        assertInstanceOf(AssertionError.class, e.getCause());
    }

    @Test
    void throwingExecuteTaskDoesNotStopTheLoop() throws Exception {
        loop.execute(() -> {
            throw new RuntimeException("task failed");
        });
        loop.execute(() -> {
            throw new StackOverflowError("even an error");
        });
        CountDownLatch ran = new CountDownLatch(1);
        loop.execute(ran::countDown);
        assertTrue(ran.await(5, TimeUnit.SECONDS));
        assertEquals("still alive", loop.call(() -> "still alive").get(5, TimeUnit.SECONDS));
    }

    @Test
    void throwingScheduledTaskDoesNotStopTheLoop() throws Exception {
        loop.schedule(() -> {
            throw new RuntimeException("scheduled task failed");
        }, 1, TimeUnit.MILLISECONDS);
        CountDownLatch ran = new CountDownLatch(1);
        loop.schedule(ran::countDown, 20, TimeUnit.MILLISECONDS);
        assertTrue(ran.await(5, TimeUnit.SECONDS));
        assertEquals(1, loop.call(() -> 1).get(5, TimeUnit.SECONDS));
    }

    @Test
    void tasksRunInSubmissionOrderOnOneThread() throws Exception {
        List<Integer> order = new ArrayList<>();
        AtomicReference<Thread> first = new AtomicReference<>();
        for (int i = 0; i < 100; i++) {
            int n = i;
            loop.execute(() -> {
                first.compareAndSet(null, Thread.currentThread());
                assertSame(first.get(), Thread.currentThread());
                order.add(n);
            });
        }
        List<Integer> seen = loop.call(() -> new ArrayList<>(order)).get(5, TimeUnit.SECONDS);
        assertEquals(100, seen.size());
        for (int i = 0; i < 100; i++) assertEquals(i, seen.get(i));
    }

    @Test
    void scheduleRunsLaterAndCanBeCanceled() throws Exception {
        long start = System.nanoTime();
        CountDownLatch ran = new CountDownLatch(1);
        loop.schedule(ran::countDown, 100, TimeUnit.MILLISECONDS);
        assertTrue(ran.await(5, TimeUnit.SECONDS));
        assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(90));

        CountDownLatch never = new CountDownLatch(1);
        loop.schedule(never::countDown, 100, TimeUnit.MILLISECONDS).cancel(false);
        assertFalse(never.await(300, TimeUnit.MILLISECONDS));
    }

    @Test
    void inLoopIsTrueOnlyOnTheLoopThread() throws Exception {
        assertFalse(loop.inLoop());
        assertTrue(loop.call(loop::inLoop).get(5, TimeUnit.SECONDS));
        assertFalse(new EventLoop("other").inLoop());
    }

    @Test
    void assertInLoopThrowsOffTheLoop() throws Exception {
        IllegalStateException e = assertThrows(IllegalStateException.class, loop::assertInLoop);
        assertTrue(e.getMessage().contains(Thread.currentThread().getName()), e.getMessage());
        assertEquals(Boolean.TRUE, loop.call(() -> {
            loop.assertInLoop();
            return true;
        }).get(5, TimeUnit.SECONDS));
    }

    @Test
    void callAfterCloseFailsInsteadOfHanging() {
        loop.close();
        CompletableFuture<Integer> f = loop.call(() -> 1);
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(1, TimeUnit.SECONDS));
        assertInstanceOf(RejectedExecutionException.class, e.getCause());
    }
}
