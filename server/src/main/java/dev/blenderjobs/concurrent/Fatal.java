package dev.blenderjobs.concurrent;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * An OutOfMemoryError anywhere ends the server, loudly: logged at SEVERE with what to do, told
 * to the client ({@code window/showMessage}, if it can still be written), and the process exits
 * with its own code, {@value #EXIT_OUT_OF_MEMORY}. A server that goes on after one is in an
 * unknown state (a thread of it may have died half-way through a change), and one that ends
 * quietly looks like a clean exit. This is {@code -XX:+ExitOnOutOfMemoryError} done in Java,
 * since the server cannot rely on how its JVM was started.
 * <p>
 * Every place that catches Throwables passes them through {@link #check} (the event loop, the
 * request handlers, the protocol reader, the notifier); a thread that dies of one reaches the
 * default uncaught-exception handler installed here.
 */
public final class Fatal {
    private static final Logger LOG = Logger.getLogger(Fatal.class.getName());
    /** The exit code of a server that ran out of memory (protocol.md, README). */
    public static final int EXIT_OUT_OF_MEMORY = 4;
    /** How long the last words (log, client message, stopping the workers) may take before the process halts. */
    private static final long LAST_WORDS_MS = 5000;

    /** Freed first, so that logging and the client's message have room to run. */
    private static volatile byte[] reserve = new byte[4 << 20];
    private static volatile Consumer<String> lastWords = message -> { };
    private static volatile Runnable halt = () -> Runtime.getRuntime().halt(EXIT_OUT_OF_MEMORY);
    private static final AtomicBoolean dying = new AtomicBoolean();

    private Fatal() {
    }

    /**
     * Installs the uncaught-exception handler; {@code lastWords} is given the message once an
     * OutOfMemoryError is seen (to tell the client and stop the workers), within a few seconds.
     */
    public static void install(Consumer<String> lastWords) {
        Fatal.lastWords = lastWords;
        Thread.setDefaultUncaughtExceptionHandler((thread, error) -> {
            if (!check(error)) LOG.log(Level.SEVERE, "thread " + thread.getName() + " died", error);
        });
    }

    /** For tests: what ends the process. */
    static void haltWith(Runnable halt) {
        Fatal.halt = halt;
    }

    static void reset() {
        dying.set(false);
        reserve = new byte[4 << 20];
    }

    /**
     * If {@code error} is, or was caused by, an OutOfMemoryError, the server ends (this call
     * does not return). Otherwise returns false: the caller handles the error as before. Gson
     * wraps an OutOfMemoryError in a JsonParseException, hence the cause chain.
     */
    public static boolean check(Throwable error) {
        OutOfMemoryError oom = outOfMemory(error);
        if (oom == null) return false;
        die(oom);
        return true;
    }

    static OutOfMemoryError outOfMemory(Throwable error) {
        Throwable t = error;
        for (int depth = 0; t != null && depth < 32; depth++, t = t.getCause()) {
            if (t instanceof OutOfMemoryError oom) return oom;
        }
        return null;
    }

    private static void die(OutOfMemoryError oom) {
        reserve = null;
        if (!dying.compareAndSet(false, true)) {
            // Another thread is already saying the last words; this one waits for the halt.
            parkUntilHalted();
            return;
        }
        String where = Thread.currentThread().getName();
        long maxMb = Runtime.getRuntime().maxMemory() >> 20;
        String message = "The blender-jobs server ran out of memory (Java heap of " + maxMb + " MB, in thread " + where
                + ": " + oom + ") and stops now, with exit code " + EXIT_OUT_OF_MEMORY + ", rather than go on in a "
                + "broken state. Jobs that were running are listed as INTERRUPTED when it is started again on the "
                + "same state directory. Start it with a larger heap (java -Xmx1g -jar ...; the README recommends "
                + "-Xmx512m at least), and pass large inputs as files (blendFile, passedDataBlocks) rather than in "
                + "passedData.";
        try {
            LOG.log(Level.SEVERE, message, oom);
        } catch (Throwable ignored) {
            // Logging itself failed: stderr below still says it.
        }
        try {
            System.err.println("SEVERE: " + message);
            System.err.flush();
        } catch (Throwable ignored) {
            // Nothing left to say it with.
        }
        Thread words = new Thread(() -> {
            try {
                lastWords.accept(message);
            } catch (Throwable ignored) {
                // Best effort: the process halts either way.
            }
        }, "out-of-memory");
        words.setDaemon(true);
        try {
            words.start();
            words.join(LAST_WORDS_MS);
        } catch (Throwable ignored) {
            // Could not even start a thread: halt now.
        }
        halt.run();
        parkUntilHalted();
    }

    private static void parkUntilHalted() {
        while (dying.get()) {
            try {
                Thread.sleep(1000);
            } catch (InterruptedException e) {
                return;
            }
        }
    }
}
