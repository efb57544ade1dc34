package dev.blenderjobs.jobs;

import java.util.Comparator;
import java.util.TreeSet;
import java.util.function.ToIntFunction;

/**
 * The waiting line: the highest priority first, and within one priority the order jobs joined
 * the line (FIFO by addJob arrival). A retry keeps the place its job had, so it runs before
 * every job of its priority that arrived after it; a resumed job joins at the end. Only the head
 * is ever started, so no job overtakes the head, even while it waits for a fresh process.
 * Touched only on the event loop.
 *
 * @param <T> the queued things; their priority must not change while they are queued
 */
final class JobQueue<T> {
    private record Entry<T>(T item, int priority, long place) {
    }

    private final ToIntFunction<T> priorityOf;
    private final TreeSet<Entry<T>> line = new TreeSet<>(Comparator.<Entry<T>>comparingInt(e -> -e.priority())
            .thenComparingLong(Entry::place));
    private final java.util.Map<T, Entry<T>> entries = new java.util.HashMap<>();
    private long nextPlace;

    JobQueue(ToIntFunction<T> priorityOf) {
        this.priorityOf = priorityOf;
    }

    /** Joins at the end of its priority; returns its place, to give back on {@link #rejoin}. */
    long add(T item) {
        long place = nextPlace++;
        rejoin(item, place);
        return place;
    }

    /** Joins again at a place it had before (a retry). */
    void rejoin(T item, long place) {
        if (entries.containsKey(item)) throw new IllegalStateException("already queued: " + item);
        Entry<T> e = new Entry<>(item, priorityOf.applyAsInt(item), place);
        entries.put(item, e);
        line.add(e);
    }

    T peek() {
        return line.isEmpty() ? null : line.first().item();
    }

    T poll() {
        if (line.isEmpty()) return null;
        Entry<T> e = line.pollFirst();
        entries.remove(e.item());
        return e.item();
    }

    boolean remove(T item) {
        Entry<T> e = entries.remove(item);
        return e != null && line.remove(e);
    }

    boolean contains(T item) {
        return entries.containsKey(item);
    }

    boolean isEmpty() {
        return line.isEmpty();
    }

    int size() {
        return line.size();
    }

    /** Empties the line, returning what was in it, head first. */
    java.util.List<T> drain() {
        java.util.List<T> all = line.stream().map(Entry::item).toList();
        line.clear();
        entries.clear();
        return all;
    }
}
