package dev.blenderjobs.jobs;

import com.google.gson.JsonObject;
import dev.blenderjobs.channel.ToWorker;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.concurrent.Fatal;
import dev.blenderjobs.concurrent.Trace;
import dev.blenderjobs.model.FailureKind;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobFailure;
import dev.blenderjobs.model.JobRequest;
import dev.blenderjobs.model.JobResult;
import dev.blenderjobs.model.JobSpec;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.RemovalReason;
import dev.blenderjobs.workers.AttemptOutcome;
import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.workers.WorkerEvents;
import dev.blenderjobs.workers.WorkerPool;

import java.io.IOException;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The job table and the queue: the single owner of every job's state. All state lives on the
 * {@link EventLoop}; public methods may be called from any thread and return futures. It
 * decides what a worker runs next, when an attempt has failed for good, and what the client is
 * told ({@link JobEvents}); the {@link WorkerPool} runs the attempts. A job store listening to
 * the events makes every state change durable; {@link #open} takes back what an earlier server
 * left, and the retention policy bounds how many finished jobs are kept.
 */
public final class JobManager implements WorkerEvents {
    private static final Logger LOG = Logger.getLogger(JobManager.class.getName());
    private static final SecureRandom RANDOM = new SecureRandom();

    /** Counters of the add-on's UI panel, and more. */
    public record Stats(int queued, int active, int completed, int failed, int canceled, int interrupted,
                        int total, String executor, int workers, int freeWorkers, int busyWorkers,
                        List<WorkerPool.SlotView> workerDetails) {
    }

    /**
     * How many finished jobs to keep, and for how long; 0 / zero duration = no limit. Queued
     * and active jobs are never pruned; the oldest finished (or interrupted) jobs go first.
     */
    public record Retention(int maxJobs, Duration maxAge) {
        public static final Retention UNLIMITED = new Retention(0, Duration.ZERO);
    }

    /**
     * A job an earlier server left in the state directory.
     *
     * @param resumable whether its inputs are all there, so that it can run again
     */
    public record Recovered(Job job, boolean resumable) {
    }

    /** What {@link #open} found: jobs listed, of them interrupted, resumed at once, and pruned. */
    public record Opened(int jobs, int interrupted, int resumed, int pruned) {
    }

    /**
     * A job's snapshot with its live log: the log is shared (written by a worker's output
     * drainer), so reading its tail belongs off the event loop.
     */
    public record Inspection(Job job, JobLog log, boolean detailsOnDisk) {
    }

    /**
     * Finished jobs whose failures the table keeps whole (tracebacks, log tails), the latest
     * first, within a count and a size; older ones keep a summary, and getJob reads the rest
     * from their records. Without this bound, every failed job kept up to a few hundred KB on
     * the heap for as long as it was retained.
     */
    static final int DETAILED_FINAL_JOBS = 200;
    /** ... and at most this many characters of failure text between them. */
    static final long DETAILED_FAILURE_CHARS = 4L * 1024 * 1024;

    /** Mutable state of one job; touched only on the event loop. */
    private static final class Entry {
        final String id;
        final JobSpec spec;
        final long createdAt;
        /** Replaced when an interrupted job is resumed: a released log takes no more output. */
        JobLog log;
        JobState state = JobState.QUEUED;
        double progress;
        String progressMessage;
        int attempt;
        long startedAt;
        long finishedAt;
        long workerPid = -1;
        JobFailure error;
        final List<JobFailure> earlierErrors = new ArrayList<>();
        JobResult result;
        ScheduledFuture<?> timeoutTask;
        /** Its place in the line, kept for a retry. */
        long place;
        /** A finished job whose failures are kept as summaries: the record on disk has them whole. */
        boolean trimmed;
        /** Characters of failure text it kept when it finished (for the detailed budget). */
        long detailChars;

        Entry(String id, JobSpec spec, JobLog log, long createdAt) {
            this.id = id;
            this.spec = spec;
            this.log = log;
            this.createdAt = createdAt;
        }

        Job snapshot() {
            return snapshot(state.carriesError() ? error : null);
        }

        /** A snapshot showing {@code failure} as the job's error (e.g. the attempt a retry follows). */
        Job snapshot(JobFailure failure) {
            return new Job(id, spec, state, progress, progressMessage, attempt, createdAt, startedAt, finishedAt,
                    failure, earlierErrors, workerPid, result);
        }
    }

    private final EventLoop loop;
    private final int logTailLines;
    private final String blenderProblem;
    private final Retention retention;
    private final long maxLogBytes;
    /** Set once by {@link #open}, when the state directory is known (at initialize). */
    private volatile JobFiles files;
    private JobEvents events = JobEvents.NONE;
    private WorkerPool pool;
    private final Map<String, Entry> jobs = new LinkedHashMap<>();
    private final JobQueue<Entry> queue = new JobQueue<>(e -> e.spec.priority());
    /** Finished and interrupted jobs, in the order they came to rest: retention drops from the head. */
    private final LinkedHashSet<Entry> resting = new LinkedHashSet<>();
    /** The latest finished jobs, whose failures are kept whole; the oldest are trimmed first. */
    private final java.util.ArrayDeque<Entry> detailed = new java.util.ArrayDeque<>();
    /** Characters of failure text the jobs in {@link #detailed} keep. */
    private long detailedChars;
    private boolean shuttingDown;
    /** Set by {@link #shutdown} before the loop stops taking jobs: submit refuses from then on (any thread). */
    private volatile boolean stopping;
    /**
     * Jobs whose files are written and whose addJob was answered, not yet in the table: the
     * intake adds them and answers at once, then posts their adoption; the loop adopts them in
     * that order, in that task or in the first loop task before it that looks at the table
     * ({@link #adoptArriving}), so that a client that asks about a job once it has its answer
     * always finds it.
     */
    private final java.util.concurrent.ConcurrentLinkedQueue<Arriving> arriving = new java.util.concurrent.ConcurrentLinkedQueue<>();

    /**
     * @param answer       the job as recorded (QUEUED), which the answer says
     * @param answerOnLoop for a job that replaces others: completed by the loop once they are
     *                     canceled and removed and the job is taken (null: answered already)
     */
    private record Arriving(Entry job, Job answer, boolean replaceExisting, CompletableFuture<Job> answerOnLoop) {
    }

    /**
     * @param blenderProblem why no Blender can run jobs, or null when one was found
     */
    public JobManager(EventLoop loop, int logTailLines, String blenderProblem, Retention retention) {
        this(loop, logTailLines, blenderProblem, retention, Long.MAX_VALUE);
    }

    /** @param maxLogBytes largest log file of one job (--max-log-size) */
    public JobManager(EventLoop loop, int logTailLines, String blenderProblem, Retention retention, long maxLogBytes) {
        this.loop = loop;
        this.logTailLines = logTailLines;
        this.blenderProblem = blenderProblem;
        this.retention = retention;
        this.maxLogBytes = maxLogBytes;
    }

    private JobLog newLog(String jobId) {
        return JobLog.committedOnRelease(files.logOf(jobId), logTailLines, maxLogBytes);
    }

    /** Wiring, before any job arrives: the pool that runs attempts (absent without Blender). */
    public void attach(WorkerPool pool, JobEvents events) {
        this.pool = pool;
        this.events = events;
    }

    /** The state directory's layout, once {@link #open} has run; null before. */
    public JobFiles files() {
        return files;
    }

    // ------------------------------------------------------------------ requests

    /**
     * Takes the state directory into use (once, at initialize): lists the jobs an earlier
     * server left there, reports those it left queued or running as INTERRUPTED (with a
     * job/stateChanged each), applies the retention policy, and with {@code resume} queues the
     * interrupted jobs again, oldest first. Recovered jobs keep their ids.
     */
    public CompletableFuture<Opened> open(JobFiles files, List<Recovered> recovered, boolean resume) {
        return loop.call(() -> {
            if (this.files != null) throw new IllegalStateException("the state directory is already open");
            this.files = files;
            List<Recovered> ordered = new ArrayList<>(recovered);
            ordered.sort(Comparator.comparingLong(r -> r.job().createdAt()));
            int interrupted = 0;
            for (Recovered r : ordered) {
                Entry job = restore(r);
                jobs.put(job.id, job);
                JobState recorded = r.job().state();
                if (job.state.isLive()) {
                    // The server that ran it died without saying so: it is interrupted now.
                    job.state = JobState.INTERRUPTED;
                    job.finishedAt = System.currentTimeMillis();
                    job.error = interruption(job, recorded, "the server that ran it stopped unexpectedly (it was "
                            + "killed or crashed)");
                }
                // Told to the client (after the initialize answer) and written to the record.
                if (job.state != recorded) events.stateChanged(job.snapshot(), recorded);
                if (job.state == JobState.INTERRUPTED) interrupted++;
            }
            jobs.values().stream().sorted(Comparator.comparingLong(j -> j.finishedAt)).forEach(resting::add);
            int before = jobs.size();
            enforceRetention();
            pruneByAge();
            int pruned = before - jobs.size();
            int resumed = 0;
            if (resume) {
                for (Entry job : new ArrayList<>(jobs.values())) {
                    if (job.state == JobState.INTERRUPTED && blenderProblem == null) {
                        requeue(job);
                        resumed++;
                    }
                }
                dispatch();
            }
            loop.schedule(this::pruneByAgePeriodically, 1, TimeUnit.HOURS);
            return new Opened(jobs.size(), interrupted, resumed, pruned);
        });
    }

    /** A job of the table, rebuilt from its record (on the loop). */
    private Entry restore(Recovered r) {
        Job rec = r.job();
        JobLog log = newLog(rec.jobId());
        log.release(); // a recovered job's tail is read back from its log file
        Entry job = new Entry(rec.jobId(), rec.spec(), log, rec.createdAt());
        job.state = rec.state();
        job.progress = rec.progress();
        job.progressMessage = rec.progressMessage();
        job.attempt = rec.attempt();
        job.startedAt = rec.startedAt();
        job.finishedAt = rec.finishedAt();
        job.workerPid = rec.workerPid();
        job.error = rec.error();
        job.earlierErrors.addAll(rec.earlierErrors());
        job.result = rec.state() == JobState.COMPLETED ? rec.result() : null;
        if (rec.state().isFinal()) trim(job); // its record, just read, has the details
        if (!r.resumable() && !rec.state().isFinal()) {
            // Its inputs are gone or unreadable: it can never run again, so it is not left
            // waiting for a resume that would fail.
            job.state = JobState.FAILED;
            if (job.finishedAt == 0) job.finishedAt = System.currentTimeMillis();
            job.error = JobFailure.of(FailureKind.INTERRUPTED, "The job was interrupted when its server stopped, "
                    + "and its inputs (script.py, input/) could not be read back, so it cannot be resumed; add it "
                    + "again.", rec.attempt());
        }
        return job;
    }

    /**
     * Adds a job. Writes its inputs into a private directory and its first record on the
     * calling thread (so call it off the protocol reader thread), then queues it on the loop:
     * by the time the client has a job id, a restart cannot lose the job.
     *
     * @param id a fresh id from {@link #newJobId()}
     */
    public CompletableFuture<Job> submit(String id, JobRequest request) {
        return submit(id, request, added -> {
        });
    }

    /**
     * {@link #submit(String, JobRequest)}, with {@code attach} given the job's future before it
     * completes. Once the job's record is on disk the future is completed on the calling thread
     * (what {@code attach} chained runs there), before the loop takes the job: the endpoint
     * chains addJob's answer this way. Anything that asks the loop about the job after that
     * finds it (the loop takes answered jobs first, {@link #adoptArriving}); the job's events
     * may reach the client's notifier before the answer is written, and the endpoint holds them
     * there until it is ({@code ClientNotifier.holdUntilAnswered}).
     */
    public CompletableFuture<Job> submit(String id, JobRequest request, Consumer<CompletableFuture<Job>> attach) {
        CompletableFuture<Job> added = new CompletableFuture<>();
        if (stopping) {
            added.completeExceptionally(new JobException(JobException.Reason.SHUTTING_DOWN, "The server is shutting down.",
                    null));
            attach.accept(added);
            return added;
        }
        if (blenderProblem != null) {
            added.completeExceptionally(new JobException(JobException.Reason.BLENDER_UNAVAILABLE,
                    "Cannot run jobs: " + blenderProblem, null));
            attach.accept(added);
            return added;
        }
        JobFiles files = this.files;
        if (files == null) throw new IllegalStateException("submit before open: the endpoint must wait for initialize");
        Entry job = new Entry(id, request.spec(), JobLog.committedOnRelease(files.logOf(id), logTailLines, maxLogBytes),
                System.currentTimeMillis());
        try {
            files.prepare(request, job.snapshot());
            Trace.mark(id, "written");
        } catch (IOException | RuntimeException e) {
            // A folder of that name that was there before is another job's: never deleted here.
            if (!(e instanceof java.nio.file.FileAlreadyExistsException)) files.deleteQuietly(id);
            added.completeExceptionally(new JobException(JobException.Reason.JOB_FILES_UNAVAILABLE,
                    "Could not prepare the job's private files: " + e + ". Check that the state directory is "
                            + "writable and the disk is not full (state directory: " + files.stateDir() + ").", null));
            attach.accept(added);
            return added;
        }
        added.whenComplete((v, e) -> {
            if (e != null) files.deleteQuietly(id);
        });
        attach.accept(added);
        // The record is on disk: the job exists, and the answer goes now, from this thread (the
        // client's queue gets it before the loop is even woken: posted first, the loop took
        // this thread's CPU and the answer waited 0.13 to 0.17 ms for it). The job's own
        // notifications all come after the answer: they start when the loop adopts it.
        // (The snapshot is taken before the job is published: once in arriving, the loop may
        // take and dispatch it at any moment.) A job that replaces others is answered by the
        // loop once they are gone, as protocol.md promises.
        Job answer = job.snapshot();
        boolean replacing = request.replaceExisting();
        arriving.add(new Arriving(job, answer, replacing, replacing ? added : null));
        if (!replacing) added.complete(answer);
        try {
            loop.execute(() -> {
                adoptArriving();
                dispatch();
            });
        } catch (RuntimeException rejected) {
            if (replacing) {
                added.completeExceptionally(new JobException(JobException.Reason.SHUTTING_DOWN,
                        "The server is shutting down.", null));
            } else {
                // The loop is closed (the server is stopping): the job stays on disk as QUEUED, and
                // a restarted server lists it INTERRUPTED, as the jobs that were queued then.
                LOG.info("job " + id + " was added as the server stopped; it stays on disk as QUEUED");
            }
        }
        return added;
    }

    /**
     * On the loop: takes the answered jobs into the table, in the order they were added. Runs
     * in the task the intake posts for them, and first in every loop task that looks a job up
     * or goes through the table, which may come before it (a client quick to ask).
     */
    private void adoptArriving() {
        for (Arriving a; (a = arriving.poll()) != null; ) {
            Entry job = a.job();
            try {
                if (shuttingDown) {
                    // Added as the server began to stop: interrupted as the jobs queued then.
                    jobs.put(job.id, job);
                    if (a.answerOnLoop() != null) a.answerOnLoop().complete(a.answer());
                    events.stateChanged(job.snapshot(), null);
                    settle(job, JobState.INTERRUPTED, interruption(job, JobState.QUEUED, "the server began to stop "
                            + "as it was added"), JobState.QUEUED);
                    continue;
                }
                if (a.replaceExisting()) replaceNamed(job.spec.name());
                jobs.put(job.id, job);
                job.place = queue.add(job);
                Trace.mark(job.id, "queued");
                if (a.answerOnLoop() != null) a.answerOnLoop().complete(a.answer());
                events.stateChanged(job.snapshot(), null);
            } catch (RuntimeException e) {
                LOG.log(Level.SEVERE, "could not take job " + job.id + " into the table (its record is on disk as "
                        + "QUEUED, and a restarted server lists it)", e);
                if (a.answerOnLoop() != null && !jobs.containsKey(job.id)) a.answerOnLoop().completeExceptionally(e);
            }
        }
    }

    private void replaceNamed(String name) {
        for (Entry other : new ArrayList<>(jobs.values())) {
            if (!name.equals(other.spec.name())) continue;
            if (other.state.isLive()) cancelOnLoop(other, "replaced by a new job with the same name");
            forget(other, RemovalReason.REPLACED);
        }
    }

    public CompletableFuture<Job> get(String jobId) {
        return loop.call(() -> find(jobId).snapshot());
    }

    public CompletableFuture<Inspection> inspect(String jobId) {
        return loop.call(() -> {
            Entry job = find(jobId);
            return new Inspection(job.snapshot(), job.log, job.trimmed);
        });
    }

    /** Jobs in the given states (all when empty), in the order they were added. */
    public CompletableFuture<List<Job>> list(Set<JobState> states) {
        return loop.call(() -> {
            adoptArriving();
            List<Job> out = new ArrayList<>();
            for (Entry j : jobs.values()) {
                if (states.isEmpty() || states.contains(j.state)) out.add(j.snapshot());
            }
            return out;
        });
    }

    /** Cancels a queued, active or interrupted job; returns its snapshot and the state it had before. */
    public CompletableFuture<Map.Entry<Job, JobState>> cancel(String jobId) {
        return loop.call(() -> {
            Entry job = find(jobId);
            JobState before = job.state;
            if (!before.isFinal()) cancelOnLoop(job, "canceled by the client");
            return Map.entry(job.snapshot(), before);
        });
    }

    /** Cancels every queued, active and interrupted job (the add-on's kill_all); returns how many. */
    public CompletableFuture<Integer> cancelAll() {
        return loop.call(() -> {
            adoptArriving();
            int n = 0;
            for (Entry job : new ArrayList<>(jobs.values())) {
                if (!job.state.isFinal()) {
                    cancelOnLoop(job, "canceled by cancelAll");
                    n++;
                }
            }
            return n;
        });
    }

    /**
     * What removeJob did: the job as it was, and what of its files could not be deleted (null
     * when nothing is left). The job cannot come back after a restart.
     */
    public record Removal(Job job, String leftBehind) {
    }

    /**
     * Forgets a finished or interrupted job and removes its files; completes once the removal is
     * on disk (the store's thread does it), so that "removed" is never said of a job a restart
     * would list again. When the removal cannot be made durable, the job is put back and the
     * future fails with JOB_FILES_UNAVAILABLE.
     */
    public CompletableFuture<Removal> remove(String jobId) {
        record Pending(Entry job, Job snapshot, CompletableFuture<String> done) {
        }
        return loop.call(() -> {
            Entry job = find(jobId);
            if (job.state.isLive()) {
                throw new JobException(JobException.Reason.JOB_NOT_REMOVABLE,
                        "Job " + jobId + " is " + job.state + "; cancel it (cancelJob) before removing it.",
                        stateData(job));
            }
            Job snapshot = job.snapshot();
            return new Pending(job, snapshot, forget(job, RemovalReason.REMOVED));
        }).thenCompose(p -> p.done().handle((left, error) -> error == null ? null : error).thenCompose(error -> {
            if (error == null) return CompletableFuture.completedFuture(new Removal(p.snapshot(), p.done().join()));
            return loop.call(() -> {
                putBack(p.job());
                Throwable cause = error instanceof java.util.concurrent.CompletionException c && c.getCause() != null
                        ? c.getCause() : error;
                throw new JobException(JobException.Reason.JOB_FILES_UNAVAILABLE, "Could not remove job " + jobId
                        + ": its record could not be deleted (" + cause + "), so a restarted server would list it "
                        + "again; the job is kept. Check that the state directory " + files.stateDir()
                        + " is writable.", stateData(p.job()));
            });
        }));
    }

    /** A job whose removal could not be made durable goes back into the table, in its place. */
    private void putBack(Entry job) {
        if (jobs.containsKey(job.id)) return;
        List<Entry> all = new ArrayList<>(jobs.values());
        all.add(job);
        all.sort(Comparator.comparingLong(e -> e.createdAt));
        jobs.clear();
        for (Entry e : all) jobs.put(e.id, e);
        List<Entry> rest = new ArrayList<>(resting);
        rest.add(job);
        rest.sort(Comparator.comparingLong(e -> e.finishedAt));
        resting.clear();
        resting.addAll(rest);
    }

    /** Queues an interrupted job again, at the end of its priority; returns its new snapshot. */
    public CompletableFuture<Job> resume(String jobId) {
        return loop.call(() -> {
            Entry job = find(jobId);
            if (job.state != JobState.INTERRUPTED) {
                throw new JobException(JobException.Reason.JOB_NOT_RESUMABLE, "Job " + jobId + " is " + job.state
                        + "; only an INTERRUPTED job can be resumed (listJobs {\"state\": \"INTERRUPTED\"} lists "
                        + "them). To run a finished job's script again, add it as a new job.", stateData(job));
            }
            refuseWhileUnableToRun();
            requeue(job);
            dispatch();
            return job.snapshot();
        });
    }

    /** Queues every interrupted job again, oldest first; returns their ids. */
    public CompletableFuture<List<String>> resumeAll() {
        return loop.call(() -> {
            adoptArriving();
            List<String> ids = new ArrayList<>();
            for (Entry job : new ArrayList<>(jobs.values())) {
                if (job.state != JobState.INTERRUPTED) continue;
                refuseWhileUnableToRun();
                requeue(job);
                ids.add(job.id);
            }
            dispatch();
            return ids;
        });
    }

    private void refuseWhileUnableToRun() {
        if (blenderProblem != null) {
            throw new JobException(JobException.Reason.BLENDER_UNAVAILABLE, "Cannot run jobs: " + blenderProblem, null);
        }
        if (shuttingDown) throw new JobException(JobException.Reason.SHUTTING_DOWN, "The server is shutting down.", null);
    }

    /** INTERRUPTED -> QUEUED with a fresh attempt budget; the interruption moves to the history. */
    private void requeue(Entry job) {
        if (job.error != null) job.earlierErrors.add(job.error.asEarlierError());
        job.error = null;
        job.attempt = 0;
        job.progress = 0;
        job.progressMessage = null;
        job.finishedAt = 0;
        job.log = newLog(job.id);
        job.log.note("=== blender-jobs: resumed after an interruption ===");
        job.state = JobState.QUEUED;
        resting.remove(job);
        job.place = queue.add(job);
        events.stateChanged(job.snapshot(), JobState.INTERRUPTED);
    }

    /** The finished job's snapshot, or the error that says why its results cannot be had. */
    public CompletableFuture<Job> finished(String jobId) {
        return loop.call(() -> {
            Entry job = find(jobId);
            switch (job.state) {
                case COMPLETED:
                    return job.snapshot();
                case FAILED:
                    throw new JobException(JobException.Reason.JOB_FAILED,
                            "Job " + jobId + " failed (" + job.error.kind() + "): " + job.error.message()
                                    + "; it has no results. getJob shows its error and log.", stateData(job));
                case CANCELED:
                    throw new JobException(JobException.Reason.JOB_CANCELED,
                            "Job " + jobId + " was canceled; it has no results.", stateData(job));
                case INTERRUPTED:
                    throw new JobException(JobException.Reason.JOB_INTERRUPTED,
                            "Job " + jobId + " has no results. " + job.error.message(), stateData(job));
                default:
                    throw new JobException(JobException.Reason.JOB_NOT_FINISHED,
                            "Job " + jobId + " is " + job.state + " (progress " + Math.round(job.progress * 100)
                                    + "%); ask again after its job/stateChanged notification says COMPLETED.",
                            stateData(job));
            }
        });
    }

    public CompletableFuture<Stats> stats() {
        return loop.call(() -> {
            adoptArriving();
            int[] counts = new int[JobState.values().length];
            for (Entry j : jobs.values()) counts[j.state.ordinal()]++;
            return new Stats(counts[JobState.QUEUED.ordinal()], counts[JobState.ACTIVE.ordinal()],
                    counts[JobState.COMPLETED.ordinal()], counts[JobState.FAILED.ordinal()],
                    counts[JobState.CANCELED.ordinal()], counts[JobState.INTERRUPTED.ordinal()], jobs.size(),
                    pool == null ? null : pool.executor(), pool == null ? 0 : pool.size(),
                    pool == null ? 0 : pool.freeWorkers(), pool == null ? 0 : pool.busyWorkers(),
                    pool == null ? List.of() : pool.describe());
        });
    }

    /**
     * Stops taking jobs: queued and active ones become INTERRUPTED (active ones' workers are
     * stopped), so that a server started later on the same state directory can resume them.
     *
     * @param why what stopped the server, for the jobs' error message
     */
    public CompletableFuture<Integer> shutdown(String why) {
        stopping = true;
        return loop.call(() -> {
            adoptArriving(); // answered before the stop: interrupted below with the others
            shuttingDown = true;
            int n = 0;
            for (Entry job : new ArrayList<>(jobs.values())) {
                if (!job.state.isLive()) continue;
                JobState previous = job.state;
                if (previous == JobState.ACTIVE) pool.abort(job.id);
                queue.remove(job);
                cancelTimeout(job);
                settle(job, JobState.INTERRUPTED, interruption(job, previous, why), previous);
                n++;
            }
            return n;
        });
    }

    private static JobFailure interruption(Entry job, JobState previous, String why) {
        String when = previous == JobState.ACTIVE ? "while attempt " + job.attempt + " was running"
                : "while it was waiting in the queue";
        return JobFailure.of(FailureKind.INTERRUPTED, "The job was interrupted " + when + ": " + why
                + ". resumeJob (or a server started with --resume) runs it again.", job.attempt);
    }

    // ------------------------------------------------------------------ scheduling (event loop)

    private void dispatch() {
        if (pool == null || shuttingDown) return;
        while (!queue.isEmpty()) {
            Entry job = queue.peek();
            int attempt = job.attempt + 1;
            ToWorker.Run run = new ToWorker.Run(job.id, attempt, job.spec, files.runFiles(job.id, job.spec));
            String never = pool.refusal(run);
            if (never != null) {
                // No worker of this pool can ever run it (its timeout outlasts a worker's lease):
                // it fails now rather than wait forever at the head of the line.
                queue.poll();
                job.attempt = Math.max(1, job.attempt);
                settle(job, JobState.FAILED, JobFailure.of(FailureKind.WORKER_START_FAILED,
                        "No worker can run this job: " + never + ".", job.attempt), job.state);
                continue;
            }
            if (!pool.tryRun(run, job.log)) break;
            Trace.mark(job.id, "dispatched");
            queue.poll();
            job.attempt = attempt;
            if (attempt > 1) job.log.note("=== blender-jobs: attempt " + attempt + " of " + job.spec.maxAttempts() + " ===");
            JobState previous = job.state;
            job.state = JobState.ACTIVE;
            if (job.startedAt == 0) job.startedAt = System.currentTimeMillis();
            job.workerPid = pool.pidOf(job.id);
            job.progress = 0;
            job.progressMessage = null;
            if (job.spec.timeout() > 0) {
                job.timeoutTask = loop.schedule(() -> onTimeout(job, attempt),
                        Math.max(1, Math.round(job.spec.timeout() * 1000)), TimeUnit.MILLISECONDS);
            }
            events.stateChanged(job.snapshot(), previous);
        }
        // A pool that grows with demand starts workers for what still waits.
        pool.waiting(queue.size());
    }

    private void onTimeout(Entry job, int attempt) {
        if (job.state != JobState.ACTIVE || job.attempt != attempt) return;
        pool.abort(job.id);
        failAttempt(job, new JobFailure(FailureKind.TIMED_OUT,
                "The job ran longer than its timeout of " + formatSeconds(job.spec.timeout())
                        + " and was killed (attempt " + attempt + " of " + job.spec.maxAttempts() + ").",
                attempt, null, null, job.log.tail()));
    }

    private void cancelOnLoop(Entry job, String why) {
        if (job.state == JobState.ACTIVE && pool != null) pool.abort(job.id);
        queue.remove(job);
        cancelTimeout(job);
        LOG.fine("job " + job.id + " " + why);
        settle(job, JobState.CANCELED, null, job.state);
        dispatch();
    }

    /**
     * Moves a job to a state it rests in (final or INTERRUPTED): closes its log before the
     * event, so that the record saying so is written after the log is complete.
     */
    private void settle(Entry job, JobState state, JobFailure failure, JobState previous) {
        job.state = state;
        if (failure != null) job.error = failure;
        job.finishedAt = System.currentTimeMillis();
        job.log.release();
        resting.remove(job); // an interrupted job canceled now comes to rest again, last
        resting.add(job);
        events.stateChanged(job.snapshot(), previous);
        if (state.isFinal()) {
            detailed.addLast(job);
            job.detailChars = failureChars(job);
            detailedChars += job.detailChars;
            while (detailed.size() > DETAILED_FINAL_JOBS || (detailedChars > DETAILED_FAILURE_CHARS && detailed.size() > 1)) {
                Entry oldest = detailed.pollFirst();
                detailedChars -= oldest.detailChars;
                trim(oldest);
            }
        }
        enforceRetention();
    }

    private static long failureChars(Entry job) {
        long n = chars(job.error);
        for (JobFailure f : job.earlierErrors) n += chars(f);
        return n;
    }

    private static long chars(JobFailure f) {
        if (f == null) return 0;
        long n = f.message() == null ? 0 : f.message().length();
        if (f.traceback() != null) n += f.traceback().length();
        if (f.crashReport() != null) n += f.crashReport().length();
        for (String line : f.logTail()) n += line.length();
        return n;
    }

    /**
     * Keeps only summaries of a finished job's failures; called once its final record has been
     * handed to the store (final states are never written again, so the record keeps the whole).
     */
    private static void trim(Entry job) {
        if (job.error != null) job.error = job.error.summary();
        if (!job.earlierErrors.isEmpty()) {
            List<JobFailure> summaries = job.earlierErrors.stream().map(JobFailure::summary).toList();
            job.earlierErrors.clear();
            job.earlierErrors.addAll(summaries);
        }
        job.trimmed = true;
    }

    /**
     * Drops the jobs that came to rest first, beyond {@code retention.maxJobs}: never the one
     * that just finished while older ones are kept, never a queued or active one.
     */
    private void enforceRetention() {
        if (retention.maxJobs() <= 0) return;
        while (resting.size() > retention.maxJobs()) forget(resting.iterator().next(), RemovalReason.RETENTION);
    }

    /** Drops resting jobs that ended longer than {@code retention.maxAge} ago (at open, then hourly). */
    private void pruneByAge() {
        if (retention.maxAge().isZero()) return;
        long cutoff = System.currentTimeMillis() - retention.maxAge().toMillis();
        while (!resting.isEmpty() && resting.iterator().next().finishedAt < cutoff) {
            forget(resting.iterator().next(), RemovalReason.RETENTION);
        }
    }

    private void pruneByAgePeriodically() {
        pruneByAge();
        loop.schedule(this::pruneByAgePeriodically, 1, TimeUnit.HOURS);
    }

    /**
     * Takes a resting job out of the table; the store removes its directory after its last
     * write. The future completes when the removal is on disk (see {@link #remove}).
     */
    private CompletableFuture<String> forget(Entry job, RemovalReason reason) {
        jobs.remove(job.id);
        resting.remove(job);
        if (detailed.remove(job)) detailedChars -= job.detailChars;
        job.log.release();
        CompletableFuture<String> done = events.removing(job.id, reason);
        if (reason != RemovalReason.REMOVED) {
            done.whenComplete((left, error) -> {
                if (error != null) {
                    LOG.warning("job " + job.id + " was dropped (" + reason + ") but its record could not be deleted: "
                            + error + "; a restarted server will list it again");
                }
            });
        }
        return done;
    }

    // ------------------------------------------------------------------ worker events (event loop)

    @Override
    public void workerAvailable() {
        dispatch();
    }

    @Override
    public void progress(String jobId, int attempt, double progress, String message, long reportedAtMillis) {
        Entry job = jobs.get(jobId);
        if (job == null || job.state != JobState.ACTIVE || job.attempt != attempt) return;
        job.progress = progress;
        job.progressMessage = message;
        events.progress(jobId, progress, message, reportedAtMillis);
    }

    @Override
    public void attemptFinished(String jobId, int attempt, AttemptOutcome outcome) {
        Entry job = jobs.get(jobId);
        if (job == null || job.state != JobState.ACTIVE || job.attempt != attempt) return;
        if (outcome instanceof AttemptOutcome.Succeeded ok) {
            cancelTimeout(job);
            job.result = ok.result();
            // A completed job is done whatever the script last reported; no notification is
            // invented for it, so the last job/progress a client sees is the script's own.
            job.progress = 1.0;
            Trace.mark(jobId, "settled");
            settle(job, JobState.COMPLETED, null, JobState.ACTIVE);
        } else if (outcome instanceof AttemptOutcome.Failed f) {
            job.log.flush();
            failAttempt(job, new JobFailure(f.kind(), f.message(), attempt, f.traceback(), f.crashReport(),
                    job.log.tail()));
        }
    }

    @Override
    public void workersFailing(String message) {
        // No retry can help while no worker starts: the waiting jobs fail now rather than hang.
        // The queue is emptied first and dispatch runs once at the end, so that no job started
        // meanwhile on another worker is failed by mistake.
        for (Entry job : queue.drain()) {
            job.attempt = Math.max(1, job.attempt);
            settle(job, JobState.FAILED, JobFailure.of(FailureKind.WORKER_START_FAILED,
                    "No Blender worker could be started, so the job cannot run: " + message, job.attempt), job.state);
        }
        dispatch();
    }

    private void failAttempt(Entry job, JobFailure failure) {
        cancelTimeout(job);
        if (job.attempt < job.spec.maxAttempts() && !shuttingDown) {
            job.earlierErrors.add(failure.asEarlierError());
            job.state = JobState.QUEUED;
            queue.rejoin(job, job.place); // a retry keeps its place in the line
            // The retry's QUEUED notification says why the attempt failed; the job's own
            // error stays empty unless it fails for good (earlierErrors keeps the history).
            events.stateChanged(job.snapshot(failure), JobState.ACTIVE);
            dispatch();
            return;
        }
        settle(job, JobState.FAILED, failure, job.state);
        dispatch();
    }

    private static void cancelTimeout(Entry job) {
        if (job.timeoutTask != null) {
            job.timeoutTask.cancel(false);
            job.timeoutTask = null;
        }
    }

    // ------------------------------------------------------------------ helpers

    private Entry find(String jobId) {
        adoptArriving();
        Entry job = jobs.get(jobId);
        if (job == null) {
            JsonObject data = new JsonObject();
            data.addProperty("jobId", jobId);
            throw new JobException(JobException.Reason.JOB_NOT_FOUND,
                    "No job with id " + jobId + " (it may have been removed, or pruned by the retention policy: "
                            + "--retain-jobs, --retain-days); listJobs shows the known jobs.", data);
        }
        return job;
    }

    private static JsonObject stateData(Entry job) {
        JsonObject data = new JsonObject();
        data.addProperty("jobId", job.id);
        data.addProperty("state", job.state.name());
        if (job.error != null && job.state.carriesError()) {
            data.addProperty("failureKind", job.error.kind().name());
            data.addProperty("failureMessage", job.error.message());
        }
        return data;
    }

    /** A fresh job id, {@code job-} and 12 random hex digits. */
    public static String newJobId() {
        byte[] b = new byte[6];
        RANDOM.nextBytes(b);
        return "job-" + HexFormat.of().formatHex(b);
    }

    static String formatSeconds(double s) {
        return s == Math.rint(s) ? ((long) s) + " s" : s + " s";
    }
}
