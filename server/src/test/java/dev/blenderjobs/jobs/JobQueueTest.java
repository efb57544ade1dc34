package dev.blenderjobs.jobs;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class JobQueueTest {
    record Item(String name, int priority) {
    }

    private final JobQueue<Item> queue = new JobQueue<>(Item::priority);

    private List<String> drainNames() {
        List<String> out = new ArrayList<>();
        for (Item i : queue.drain()) out.add(i.name());
        return out;
    }

    @Test
    void fifoWithinOnePriority() {
        for (String n : List.of("a", "b", "c")) queue.add(new Item(n, 0));
        assertEquals(List.of("a", "b", "c"), drainNames());
        assertTrue(queue.isEmpty());
    }

    @Test
    void higherPriorityFirstThenArrival() {
        queue.add(new Item("low1", 0));
        queue.add(new Item("high1", 10));
        queue.add(new Item("neg", -5));
        queue.add(new Item("high2", 10));
        queue.add(new Item("low2", 0));
        assertEquals(List.of("high1", "high2", "low1", "low2", "neg"), drainNames());
    }

    @Test
    void aRetryRejoinsAtItsOldPlaceAheadOfLaterArrivalsOfItsPriority() {
        Item first = new Item("first", 0);
        long place = queue.add(first);
        assertEquals(first, queue.poll());
        queue.add(new Item("later", 0));
        queue.add(new Item("urgent", 5));
        queue.rejoin(first, place);
        assertEquals(List.of("urgent", "first", "later"), drainNames());
    }

    @Test
    void removeAndPeek() {
        Item a = new Item("a", 0);
        Item b = new Item("b", 0);
        queue.add(a);
        queue.add(b);
        assertEquals(a, queue.peek());
        assertTrue(queue.remove(a));
        assertFalse(queue.remove(a));
        assertEquals(b, queue.peek());
        assertEquals(1, queue.size());
        assertThrows(IllegalStateException.class, () -> queue.add(b), "an item is queued once");
        assertEquals(b, queue.poll());
        assertNull(queue.poll());
        assertNull(queue.peek());
    }
}
