package dev.blenderjobs.concurrent;

import com.google.gson.JsonParseException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** An OutOfMemoryError anywhere ends the process with its own code (the halt is replaced here). */
class FatalTest {
    private final List<String> said = new CopyOnWriteArrayList<>();
    private final CountDownLatch halted = new CountDownLatch(1);

    private void install() {
        Fatal.reset();
        Fatal.install(said::add);
        Fatal.haltWith(() -> {
            halted.countDown();
            throw new Halted();
        });
    }

    /** Stands for the end of the process in these tests. */
    static final class Halted extends RuntimeException {
    }

    @AfterEach
    void restore() {
        Fatal.haltWith(() -> Runtime.getRuntime().halt(Fatal.EXIT_OUT_OF_MEMORY));
        Fatal.reset();
        Thread.setDefaultUncaughtExceptionHandler(null);
    }

    @Test
    void otherErrorsAreLeftToTheCaller() {
        install();
        assertFalse(Fatal.check(new IllegalStateException("not fatal")));
        assertFalse(Fatal.check(new StackOverflowError()));
        assertEquals(1, halted.getCount());
    }

    @Test
    void anOutOfMemoryErrorWrappedByGsonStillEndsTheServerWithItsLastWords() {
        install();
        try {
            Fatal.check(new JsonParseException("Failed parsing JSON source", new OutOfMemoryError("Java heap space")));
        } catch (Halted expected) {
            // the process would have ended here
        }
        assertEquals(0, halted.getCount());
        assertEquals(1, said.size());
        assertTrue(said.get(0).contains("ran out of memory") && said.get(0).contains("exit code " + Fatal.EXIT_OUT_OF_MEMORY)
                && said.get(0).contains("-Xmx"), said.get(0));
    }

    @Test
    void aThreadThatDiesOfItReachesTheHandler() throws Exception {
        install();
        Thread t = new Thread(() -> {
            throw new OutOfMemoryError("in a thread of its own");
        });
        t.start();
        t.join(5000);
        assertTrue(halted.await(5, TimeUnit.SECONDS));
    }

    @Test
    void theEventLoopDoesNotSwallowIt() throws Exception {
        install();
        try (EventLoop loop = new EventLoop("fatal-test")) {
            loop.execute(() -> {
                throw new OutOfMemoryError("on the loop");
            });
            assertTrue(halted.await(5, TimeUnit.SECONDS));
        }
    }
}
