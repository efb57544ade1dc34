package dev.blenderjobs.concurrent;

import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;

/** Thread factories: every thread of the server is a named daemon, so none keeps the JVM alive. */
public final class Threads {
    private Threads() {
    }

    /** Daemon threads named {@code name-1}, {@code name-2}, ... */
    public static ThreadFactory daemon(String name) {
        AtomicInteger n = new AtomicInteger();
        return r -> start(false, name + "-" + n.incrementAndGet(), r);
    }

    /** One daemon thread named exactly {@code name}, not started. */
    public static Thread daemonThread(String name, Runnable body) {
        return start(false, name, body);
    }

    /** Starts a daemon thread named {@code name} running {@code body}. */
    public static Thread startDaemon(String name, Runnable body) {
        return start(true, name, body);
    }

    private static Thread start(boolean start, String name, Runnable body) {
        Thread t = new Thread(body, name);
        t.setDaemon(true);
        if (start) t.start();
        return t;
    }
}
