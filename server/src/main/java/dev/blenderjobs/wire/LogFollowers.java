package dev.blenderjobs.wire;

import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.wire.messages.Messages.FollowLogResult;
import dev.blenderjobs.wire.messages.Messages.JobLogParams;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Live job logs: {@code followLog} answers with the log's tail and makes the follower a listener
 * of the job's {@link JobLog}; what the job prints next is sent as {@code job/log} notifications
 * from the notifier's thread, never before the followLog answer. The listener runs on the
 * worker's output drainer and only copies bytes into a bounded buffer: it never blocks it.
 * <p>
 * Text is coalesced (one notification per {@link #FLUSH_DELAY} at most) and bounded: a job sends
 * at most {@link #BYTES_PER_SECOND} of text per second; beyond that its output is skipped (it
 * stays in the log file), and a marker line says how many bytes were left out. Bytes are decoded
 * as UTF-8 as a stream (a character cut between two chunks is whole in the text), invalid bytes
 * become U+FFFD. Following ends when the log is released: the job rests, after its last output.
 */
final class LogFollowers {
    /** The most of a log the followLog answer carries. */
    static final int TAIL_BYTES = 64 * 1024;
    /** The most text one job sends per second; the rest is skipped with a marker. */
    static final int BYTES_PER_SECOND = 128 * 1024;
    static final Duration FLUSH_DELAY = Duration.ofMillis(75);
    private static final long SECOND = Duration.ofSeconds(1).toNanos();

    private final ClientNotifier notifier;
    private final Map<String, Follow> follows = new ConcurrentHashMap<>();

    LogFollowers(ClientNotifier notifier) {
        this.notifier = notifier;
    }

    /**
     * Follows the job's log (replacing an earlier follow of the same job). Reads the log's tail:
     * call it off the event loop and the reader thread.
     */
    FollowLogResult follow(String jobId, JobLog log) {
        Follow follow = new Follow(jobId, log);
        Follow earlier = follows.put(jobId, follow);
        if (earlier != null) earlier.cancel();
        JobLog.Followed found = log.follow(follow, TAIL_BYTES);
        if (!found.following()) follows.remove(jobId, follow);
        String text = follow.start(found);
        return new FollowLogResult(jobId, text, found.following());
    }

    /** The followLog answer for the job is written: its job/log notifications may go now. */
    void answered(String jobId) {
        Follow follow = follows.get(jobId);
        if (follow != null) notifier.post(follow::answered);
    }

    /**
     * Stops following the job; completes with true if it was followed. Pending text is dropped.
     * It completes on the notifier's thread, the one that sends job/log: an answer sent when it
     * completes is written after the job's last job/log.
     */
    java.util.concurrent.CompletableFuture<Boolean> unfollow(String jobId) {
        java.util.concurrent.CompletableFuture<Boolean> done = new java.util.concurrent.CompletableFuture<>();
        Runnable stop = () -> {
            Follow follow = follows.remove(jobId);
            if (follow != null) follow.cancel();
            done.complete(follow != null);
        };
        if (!notifier.post(stop)) stop.run(); // stopping: nothing is sent any more anyway
        return done;
    }

    boolean isFollowing(String jobId) {
        return follows.containsKey(jobId);
    }

    static String skippedMarker(long bytes) {
        return "[blender-jobs: " + bytes + " bytes of output skipped here: the job printed more than "
                + BYTES_PER_SECOND + " bytes a second; its log file (getJob logFile) has everything]\n";
    }

    /**
     * One followed job. The byte buffer and counters are shared between the drainer (appended)
     * and the notifier's thread (flush), guarded by this object; the decoder belongs to the
     * notifier's thread after {@link #start}.
     */
    private final class Follow implements JobLog.Listener {
        final String jobId;
        final JobLog log;
        private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
        private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPLACE).onUnmappableCharacter(CodingErrorAction.REPLACE);
        /** Bytes of a character cut off at the end of the last chunk decoded. */
        private byte[] carry = new byte[0];
        private long windowStart = Long.MIN_VALUE;
        private long windowBytes;
        private long skipped;
        private boolean flushScheduled;
        private boolean isAnswered;
        private boolean ended;
        private boolean cancelled;
        /** The last byte taken ended a line (or none was taken): a marker needs no newline before it. */
        private boolean atLineStart = true;

        Follow(String jobId, JobLog log) {
            this.jobId = jobId;
            this.log = log;
        }

        /** The answer's text: the tail, decoded; a cut character at its end is kept for the next text. */
        synchronized String start(JobLog.Followed found) {
            byte[] tail = found.tail();
            if (tail.length > 0) atLineStart = tail[tail.length - 1] == '\n';
            int from = 0;
            StringBuilder text = new StringBuilder();
            if (found.skipped() > 0) {
                // Cut in the middle of the log: start at a character, and at a line if there is one.
                while (from < tail.length && from < 4 && (tail[from] & 0xC0) == 0x80) from++;
                int newline = indexOf(tail, (byte) '\n', from);
                long left = found.skipped() + from;
                if (newline >= 0 && newline + 1 < tail.length) {
                    left += newline + 1 - from;
                    from = newline + 1;
                }
                text.append("[blender-jobs: the first ").append(left).append(" bytes of the log are not shown; "
                        + "its log file (getJob logFile) has everything]\n");
            }
            text.append(decode(tail, from, tail.length - from, !found.following()));
            return text.toString();
        }

        @Override
        public synchronized void appended(byte[] data, int offset, int length) {
            if (cancelled || ended) return;
            long now = notifier.nanoTime();
            if (windowStart == Long.MIN_VALUE || now - windowStart >= SECOND) {
                windowStart = now;
                windowBytes = 0;
            }
            if (windowBytes + length > BYTES_PER_SECOND && windowBytes > 0) {
                skipped += length;
                return;
            }
            if (skipped > 0) {
                writeMarker();
            }
            pending.write(data, offset, length);
            if (length > 0) atLineStart = data[offset + length - 1] == '\n';
            windowBytes += length;
            scheduleFlush();
        }

        @Override
        public synchronized void released() {
            ended = true;
            if (isAnswered) notifier.post(this::flush);
        }

        private void writeMarker() {
            byte[] marker = skippedMarker(skipped).getBytes(StandardCharsets.UTF_8);
            if (!atLineStart) pending.write('\n');
            pending.write(marker, 0, marker.length);
            atLineStart = true;
            skipped = 0;
        }

        private void scheduleFlush() {
            if (!isAnswered || flushScheduled) return;
            flushScheduled = true;
            notifier.postAfter(this::flush, FLUSH_DELAY);
        }

        /** On the notifier's thread, once the followLog answer is written. */
        synchronized void answered() {
            if (cancelled || isAnswered) return;
            isAnswered = true;
            if (ended || pending.size() > 0 || skipped > 0) notifier.post(this::flush);
        }

        /** On the notifier's thread: sends what is pending; after the log's release, the rest and the end. */
        void flush() {
            String text;
            boolean last;
            synchronized (this) {
                flushScheduled = false;
                if (cancelled) return;
                last = ended;
                if (last && skipped > 0) writeMarker();
                byte[] bytes = pending.toByteArray();
                pending.reset();
                text = decode(bytes, 0, bytes.length, last);
            }
            if (!text.isEmpty()) notifier.send(() -> notifier.client().log(new JobLogParams(jobId, text)));
            if (last) follows.remove(jobId, this);
        }

        /** Not synchronized around unfollow: the drainer holds the log's lock when it calls in here. */
        void cancel() {
            synchronized (this) {
                cancelled = true;
                pending.reset();
            }
            log.unfollow(this);
        }

        /** Decodes {@code carry} + the bytes; keeps a cut character's bytes unless this is the end. */
        private String decode(byte[] bytes, int offset, int length, boolean endOfInput) {
            ByteBuffer in = ByteBuffer.allocate(carry.length + length);
            in.put(carry).put(bytes, offset, length).flip();
            CharBuffer out = CharBuffer.allocate((int) Math.ceil(in.remaining() * (double) decoder.maxCharsPerByte()) + 4);
            decoder.decode(in, out, endOfInput);
            if (endOfInput) {
                decoder.flush(out);
                decoder.reset();
            }
            carry = new byte[in.remaining()];
            in.get(carry);
            out.flip();
            return out.toString();
        }
    }

    private static int indexOf(byte[] bytes, byte b, int from) {
        for (int i = from; i < bytes.length; i++) if (bytes[i] == b) return i;
        return -1;
    }
}
