package dev.blenderjobs.jobs;

import com.google.gson.JsonObject;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.workers.AttemptOutcome;
import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.workers.RunRequest;
import dev.blenderjobs.workers.WorkerEvents;
import dev.blenderjobs.workers.WorkerPool;

import java.io.IOException;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The job table and the FIFO queue: the single owner of every job's state. All state lives on
 * the {@link EventLoop}; public methods may be called from any thread and return futures.
 * It decides what a worker runs next, when an attempt has failed for good, and what the
 * client is told ({@link JobEvents}); the {@link WorkerPool} runs the attempts. A job store
 * listening to the events makes every state change durable; {@link #open} takes back what an
 * earlier server left, and the retention policy bounds how many finished jobs are kept.
 */
public final class JobManager implements WorkerEvents {
    private static final Logger LOG = Logger.getLogger(JobManager.class.getName());
    private static final SecureRandom RANDOM = new SecureRandom();

    /** Counters of the add-on's UI panel, and more. */
    public record Stats(int queued, int active, int completed, int failed, int canceled, int interrupted,
                        int total, int workers, int idleWorkers, int busyWorkers, List<JsonObject> workerDetails) {
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
     * @param spec what it runs with, for jobs that can be resumed; null for finished ones
     */
    public record Recovered(JobRecord record, JobSpec spec, JobFiles.Inputs inputs) {
    }

    /** What {@link #open} found: jobs listed, of them interrupted, resumed at once, and pruned. */
    public record Opened(int jobs, int interrupted, int resumed, int pruned) {
    }

    /** Mutable state of one job; touched only on the event loop. */
    private static final class Job {
        final String id;
        final JobSpec spec;
        final JobFiles.Inputs inputs;
        /** Replaced when an interrupted job is resumed: a released log takes no more output. */
        JobLog log;
        final long createdAt;
        JobState state = JobState.QUEUED;
        double progress;
        String progressMessage;
        int attempt;
        long startedAt;
        long attemptStartedAt;
        long finishedAt;
        long workerPid = -1;
        JobFailure failure;
        final List<JobFailure> earlierFailures = new ArrayList<>();
        AttemptOutcome.Succeeded result;
        ScheduledFuture<?> timeoutTask;

        Job(String id, JobSpec spec, JobFiles.Inputs inputs, JobLog log, long createdAt) {
            this.id = id;
            this.spec = spec;
            this.inputs = inputs;
            this.log = log;
            this.createdAt = createdAt;
        }
    }

    private final EventLoop loop;
    private final int logTailLines;
    private final String blenderProblem;
    private final Retention retention;
    /** Set once by {@link #open}, when the state directory is known (at initialize). */
    private volatile JobFiles files;
    private JobEvents events = JobEvents.NONE;
    private WorkerPool pool;
    private final Map<String, Job> jobs = new LinkedHashMap<>();
    private final ArrayDeque<Job> queue = new ArrayDeque<>();
    /** Finished and interrupted jobs, in the order they came to rest: retention drops from the head. */
    private final LinkedHashSet<Job> resting = new LinkedHashSet<>();
    private boolean shuttingDown;

    /**
     * @param blenderProblem why no Blender can run jobs, or null when one was found
     */
    public JobManager(EventLoop loop, int logTailLines, String blenderProblem, Retention retention) {
        this.loop = loop;
        this.logTailLines = logTailLines;
        this.blenderProblem = blenderProblem;
        this.retention = retention;
    }

    /** Wiring, before any job arrives: the pool that runs attempts (absent without Blender). */
    public void attach(WorkerPool pool, JobEvents events) {
        this.pool = pool;
        this.events = events;
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
            ordered.sort(Comparator.comparingLong(r -> r.record().createdAt()));
            int interrupted = 0;
            for (Recovered r : ordered) {
                Job job = restore(r);
                jobs.put(job.id, job);
                JobState recorded = r.record().state();
                if (job.state.isLive()) {
                    // The server that ran it died without saying so: it is interrupted now.
                    job.state = JobState.INTERRUPTED;
                    job.finishedAt = System.currentTimeMillis();
                    job.failure = interruption(job, recorded, "the server that ran it stopped unexpectedly (it was "
                            + "killed or crashed)");
                }
                // Told to the client (after the initialize answer) and written to the record.
                if (job.state != recorded) events.stateChanged(view(job), recorded);
                if (job.state == JobState.INTERRUPTED) interrupted++;
            }
            jobs.values().stream().sorted(Comparator.comparingLong(j -> j.finishedAt)).forEach(resting::add);
            int before = jobs.size();
            enforceRetention();
            pruneByAge();
            int pruned = before - jobs.size();
            int resumed = 0;
            if (resume) {
                for (Job job : new ArrayList<>(jobs.values())) {
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
    private Job restore(Recovered r) {
        JobRecord rec = r.record();
        JobSpec spec = r.spec() != null ? r.spec() : new JobSpec(rec.name(),
                "<scriptText>".equals(rec.script()) || rec.script() == null ? null : Path.of(rec.script()), "",
                rec.timeoutSeconds(), new JsonObject(), null, null, null, Math.max(1, rec.maxAttempts()), false, false,
                null);
        JobLog log = JobLog.committedOnRelease(files.logOf(rec.id()), logTailLines);
        log.release(); // a recovered job's tail is read back from its log file
        Job job = new Job(rec.id(), spec, r.inputs(), log, rec.createdAt());
        job.state = rec.state();
        job.progress = rec.progress();
        job.progressMessage = rec.progressMessage();
        job.attempt = rec.attempt();
        job.startedAt = rec.startedAt();
        job.finishedAt = rec.finishedAt();
        job.failure = rec.failure();
        if (rec.earlierFailures() != null) job.earlierFailures.addAll(rec.earlierFailures());
        if (rec.state() == JobState.COMPLETED) {
            JsonObject blocks = rec.dataBlocks();
            if (blocks != null && blocks.has("library")) {
                // Where the library is now, should the state directory have moved.
                blocks = blocks.deepCopy();
                blocks.addProperty("library", files.resultDirOf(rec.id()).resolve("data_blocks.blend").toString());
            }
            job.result = new AttemptOutcome.Succeeded(files.pythonDataOf(rec.id()),
                    rec.pythonDataBytes() == null ? 0 : rec.pythonDataBytes(), blocks, rec.timing(), -1);
        }
        if (r.spec() == null && !rec.state().isFinal()) {
            // Its inputs are gone or unreadable: it can never run again, so it is not left
            // waiting for a resume that would fail.
            job.state = JobState.FAILED;
            if (job.finishedAt == 0) job.finishedAt = System.currentTimeMillis();
            job.failure = new JobFailure(FailureKind.INTERRUPTED, "The job was interrupted when its server stopped, "
                    + "and its inputs (spec.json, script.py) could not be read back, so it cannot be resumed; add it "
                    + "again.", rec.attempt(), null, null, List.of());
        }
        return job;
    }

    /**
     * Adds a job. Copies its inputs into a private directory and writes its first record on
     * the calling thread (so call it off the protocol reader thread), then queues it on the
     * loop: by the time the client has a job id, a restart cannot lose the job.
     */
    public CompletableFuture<JobView> submit(JobSpec spec) {
        if (blenderProblem != null) {
            return CompletableFuture.failedFuture(new JobException(JobException.Reason.BLENDER_UNAVAILABLE,
                    "Cannot run jobs: " + blenderProblem, null));
        }
        JobFiles files = this.files;
        if (files == null) throw new IllegalStateException("submit before open: the endpoint must wait for initialize");
        String id = newJobId();
        long createdAt = System.currentTimeMillis();
        JobFiles.Inputs inputs;
        try {
            inputs = files.prepare(id, spec, createdAt);
        } catch (IOException e) {
            files.deleteQuietly(id);
            return CompletableFuture.failedFuture(new JobException(JobException.Reason.JOB_FILES_UNAVAILABLE,
                    "Could not prepare the job's private files: " + e + ". Check that the state directory is "
                            + "writable and the disk is not full.", null));
        }
        JobLog log = JobLog.committedOnRelease(files.logOf(id), logTailLines);
        CompletableFuture<JobView> added = loop.call(() -> {
            if (shuttingDown) {
                throw new JobException(JobException.Reason.SHUTTING_DOWN, "The server is shutting down.", null);
            }
            if (spec.replaceExisting() && spec.name() != null) replaceNamed(spec.name());
            Job job = new Job(id, spec, inputs, log, createdAt);
            jobs.put(id, job);
            queue.addLast(job);
            events.stateChanged(view(job), null);
            dispatch();
            return view(job);
        });
        added.whenComplete((v, e) -> {
            if (e != null) files.deleteQuietly(id);
        });
        return added;
    }

    private void replaceNamed(String name) {
        for (Job other : new ArrayList<>(jobs.values())) {
            if (!name.equals(other.spec.name())) continue;
            if (other.state.isLive()) cancelOnLoop(other, "replaced by a new job with the same name");
            forget(other, RemovalReason.REPLACED);
        }
    }

    public CompletableFuture<JobView> get(String jobId) {
        return loop.call(() -> view(find(jobId)));
    }

    public CompletableFuture<List<JobView>> list(Set<JobState> states) {
        return loop.call(() -> {
            List<JobView> out = new ArrayList<>();
            for (Job j : jobs.values()) {
                if (states.isEmpty() || states.contains(j.state)) out.add(view(j));
            }
            return out;
        });
    }

    /** Cancels a queued, active or interrupted job; returns its view and the state it had before. */
    public CompletableFuture<Map.Entry<JobView, JobState>> cancel(String jobId) {
        return loop.call(() -> {
            Job job = find(jobId);
            JobState before = job.state;
            if (!before.isFinal()) cancelOnLoop(job, "canceled by the client");
            return Map.entry(view(job), before);
        });
    }

    /** Cancels every queued, active and interrupted job (the add-on's kill_all); returns how many. */
    public CompletableFuture<Integer> cancelAll() {
        return loop.call(() -> {
            int n = 0;
            for (Job job : new ArrayList<>(jobs.values())) {
                if (!job.state.isFinal()) {
                    cancelOnLoop(job, "canceled by cancelAll");
                    n++;
                }
            }
            return n;
        });
    }

    /** Forgets a finished or interrupted job; the job store deletes its files. */
    public CompletableFuture<JobView> remove(String jobId) {
        return loop.call(() -> {
            Job job = find(jobId);
            if (job.state.isLive()) {
                throw new JobException(JobException.Reason.JOB_NOT_REMOVABLE,
                        "Job " + jobId + " is " + job.state + "; cancel it (cancelJob) before removing it.",
                        stateData(job));
            }
            forget(job, RemovalReason.REMOVED);
            return view(job);
        });
    }

    /** Queues an interrupted job again, at the tail of the queue; returns its new view. */
    public CompletableFuture<JobView> resume(String jobId) {
        return loop.call(() -> {
            Job job = find(jobId);
            if (job.state != JobState.INTERRUPTED) {
                throw new JobException(JobException.Reason.JOB_NOT_RESUMABLE, "Job " + jobId + " is " + job.state
                        + "; only an INTERRUPTED job can be resumed (listJobs {\"state\": \"INTERRUPTED\"} lists "
                        + "them). To run a finished job's script again, add it as a new job.", stateData(job));
            }
            refuseWhileUnableToRun();
            requeue(job);
            dispatch();
            return view(job);
        });
    }

    /** Queues every interrupted job again, oldest first; returns their ids. */
    public CompletableFuture<List<String>> resumeAll() {
        return loop.call(() -> {
            List<String> ids = new ArrayList<>();
            for (Job job : new ArrayList<>(jobs.values())) {
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
    private void requeue(Job job) {
        if (job.failure != null) job.earlierFailures.add(job.failure);
        job.failure = null;
        job.attempt = 0;
        job.progress = 0;
        job.progressMessage = null;
        job.finishedAt = 0;
        job.log = JobLog.committedOnRelease(files.logOf(job.id), logTailLines);
        job.log.note("=== blender-jobs: resumed after an interruption ===");
        job.state = JobState.QUEUED;
        resting.remove(job);
        queue.addLast(job);
        events.stateChanged(view(job), JobState.INTERRUPTED);
    }

    /** The finished job's view, or the error that says why its results cannot be had. */
    public CompletableFuture<JobView> finished(String jobId) {
        return loop.call(() -> {
            Job job = find(jobId);
            switch (job.state) {
                case COMPLETED:
                    return view(job);
                case FAILED:
                    throw new JobException(JobException.Reason.JOB_FAILED,
                            "Job " + jobId + " failed (" + job.failure.kind() + "): " + job.failure.message()
                                    + "; it has no results. getJob shows its error and log.", stateData(job));
                case CANCELED:
                    throw new JobException(JobException.Reason.JOB_CANCELED,
                            "Job " + jobId + " was canceled; it has no results.", stateData(job));
                case INTERRUPTED:
                    throw new JobException(JobException.Reason.JOB_INTERRUPTED,
                            "Job " + jobId + " has no results. " + job.failure.message(), stateData(job));
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
            int queued = 0, active = 0, completed = 0, failed = 0, canceled = 0, interrupted = 0;
            for (Job j : jobs.values()) {
                switch (j.state) {
                    case QUEUED -> queued++;
                    case ACTIVE -> active++;
                    case COMPLETED -> completed++;
                    case FAILED -> failed++;
                    case CANCELED -> canceled++;
                    case INTERRUPTED -> interrupted++;
                }
            }
            int workers = pool == null ? 0 : pool.size();
            int idle = pool == null ? 0 : pool.idleWorkers();
            int busy = pool == null ? 0 : pool.busyWorkers();
            return new Stats(queued, active, completed, failed, canceled, interrupted, jobs.size(), workers, idle, busy,
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
        return loop.call(() -> {
            shuttingDown = true;
            int n = 0;
            for (Job job : new ArrayList<>(jobs.values())) {
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

    private static JobFailure interruption(Job job, JobState previous, String why) {
        String when = previous == JobState.ACTIVE ? "while attempt " + job.attempt + " was running"
                : "while it was waiting in the queue";
        return new JobFailure(FailureKind.INTERRUPTED, "The job was interrupted " + when + ": " + why
                + ". resumeJob (or a server started with --resume) runs it again.", job.attempt, null, null, List.of());
    }

    // ------------------------------------------------------------------ scheduling (event loop)

    private void dispatch() {
        if (pool == null || shuttingDown) return;
        while (!queue.isEmpty()) {
            Job job = queue.peekFirst();
            job.attempt++;
            RunRequest request = new RunRequest(job.id, job.attempt,
                    job.spec.scriptPath() == null ? null : job.spec.scriptPath().toString(),
                    job.spec.scriptSource(), job.spec.passedData(), job.inputs.passedLibrary(),
                    job.spec.passedNames(), job.inputs.blendFile(), files.workDirOf(job.id),
                    files.resultDirOf(job.id), job.log, job.spec.freshProcess());
            if (job.attempt > 1) clearResults(job);
            if (!pool.tryRun(request)) {
                job.attempt--;
                return;
            }
            queue.pollFirst();
            if (job.attempt > 1) job.log.note("=== blender-jobs: attempt " + job.attempt + " of " + job.spec.maxAttempts() + " ===");
            JobState previous = job.state;
            job.state = JobState.ACTIVE;
            job.attemptStartedAt = System.currentTimeMillis();
            if (job.startedAt == 0) job.startedAt = job.attemptStartedAt;
            job.workerPid = pool.pidOf(job.id);
            job.progress = 0;
            job.progressMessage = null;
            if (job.spec.timeoutSeconds() > 0) {
                int attempt = job.attempt;
                job.timeoutTask = loop.schedule(() -> onTimeout(job, attempt),
                        Math.max(1, Math.round(job.spec.timeoutSeconds() * 1000)), TimeUnit.MILLISECONDS);
            }
            events.stateChanged(view(job), previous);
        }
    }

    private void clearResults(Job job) {
        try {
            files.clearResults(job.id);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "could not clear old results of job " + job.id, e);
        }
    }

    private void onTimeout(Job job, int attempt) {
        if (job.state != JobState.ACTIVE || job.attempt != attempt) return;
        pool.abort(job.id);
        failAttempt(job, new JobFailure(FailureKind.TIMED_OUT,
                "The job ran longer than its timeout of " + formatSeconds(job.spec.timeoutSeconds())
                        + " and was killed (attempt " + attempt + " of " + job.spec.maxAttempts() + ").",
                attempt, null, null, job.log.tail()));
    }

    private void cancelOnLoop(Job job, String why) {
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
    private void settle(Job job, JobState state, JobFailure failure, JobState previous) {
        job.state = state;
        if (failure != null) job.failure = failure;
        job.finishedAt = System.currentTimeMillis();
        job.log.release();
        resting.remove(job); // an interrupted job canceled now comes to rest again, last
        resting.add(job);
        events.stateChanged(view(job), previous);
        enforceRetention();
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

    /** Takes a resting job out of the table; the store deletes its directory after its last write. */
    private void forget(Job job, RemovalReason reason) {
        jobs.remove(job.id);
        resting.remove(job);
        job.log.release();
        events.removed(job.id, reason);
    }

    // ------------------------------------------------------------------ worker events (event loop)

    @Override
    public void workerAvailable() {
        dispatch();
    }

    @Override
    public void progress(String jobId, int attempt, double progress, String message, long reportedAtMillis) {
        Job job = jobs.get(jobId);
        if (job == null || job.state != JobState.ACTIVE || job.attempt != attempt) return;
        job.progress = progress;
        job.progressMessage = message;
        events.progress(jobId, progress, message, reportedAtMillis);
    }

    @Override
    public void attemptFinished(String jobId, int attempt, AttemptOutcome outcome) {
        Job job = jobs.get(jobId);
        if (job == null || job.state != JobState.ACTIVE || job.attempt != attempt) return;
        if (outcome instanceof AttemptOutcome.Succeeded ok) {
            cancelTimeout(job);
            job.result = ok;
            // A completed job is done whatever the script last reported; no notification is
            // invented for it, so the last job/progress a client sees is the script's own.
            job.progress = 1.0;
            settle(job, JobState.COMPLETED, null, JobState.ACTIVE);
        } else if (outcome instanceof AttemptOutcome.Failed f) {
            job.log.flush();
            failAttempt(job, new JobFailure(FailureKind.parse(f.kind()), f.message(), attempt, f.traceback(),
                    f.crashReport(), job.log.tail()));
        }
    }

    @Override
    public void workersFailing(String message) {
        // No retry can help while no worker starts: the waiting jobs fail now rather than hang.
        // The queue is emptied first and dispatch runs once at the end, so that no job started
        // meanwhile on another worker is failed by mistake.
        List<Job> waiting = new ArrayList<>(queue);
        queue.clear();
        for (Job job : waiting) {
            job.attempt = Math.max(1, job.attempt);
            settleFailed(job, new JobFailure(FailureKind.WORKER_START_FAILED,
                    "No Blender worker could be started, so the job cannot run: " + message, job.attempt, null,
                    null, List.of()));
        }
        dispatch();
    }

    private void failAttempt(Job job, JobFailure failure) {
        cancelTimeout(job);
        if (job.attempt < job.spec.maxAttempts() && !shuttingDown) {
            job.earlierFailures.add(failure);
            job.state = JobState.QUEUED;
            queue.addFirst(job); // a retry keeps its place at the head of the line
            // The retry's QUEUED notification says why the attempt failed; the job's own
            // error stays empty unless it fails for good (earlierFailures keeps the history).
            events.stateChanged(view(job, failure), JobState.ACTIVE);
            dispatch();
            return;
        }
        finalFailure(job, failure);
    }

    private void finalFailure(Job job, JobFailure failure) {
        settleFailed(job, failure);
        dispatch();
    }

    private void settleFailed(Job job, JobFailure failure) {
        settle(job, JobState.FAILED, failure, job.state);
    }

    private static void cancelTimeout(Job job) {
        if (job.timeoutTask != null) {
            job.timeoutTask.cancel(false);
            job.timeoutTask = null;
        }
    }

    // ------------------------------------------------------------------ helpers

    private Job find(String jobId) {
        Job job = jobs.get(jobId);
        if (job == null) {
            JsonObject data = new JsonObject();
            data.addProperty("jobId", jobId);
            throw new JobException(JobException.Reason.JOB_NOT_FOUND,
                    "No job with id " + jobId + " (it may have been removed, or pruned by the retention policy: "
                            + "--retain-jobs, --retain-days); listJobs shows the known jobs.", data);
        }
        return job;
    }

    private static JsonObject stateData(Job job) {
        JsonObject data = new JsonObject();
        data.addProperty("jobId", job.id);
        data.addProperty("state", job.state.name());
        if (job.failure != null && job.state.carriesError()) {
            data.addProperty("failureKind", job.failure.kind().name());
            data.addProperty("failureMessage", job.failure.message());
        }
        return data;
    }

    private static JobView view(Job j) {
        return view(j, j.state.carriesError() ? j.failure : null);
    }

    /** A snapshot that shows {@code failure} as the job's error (e.g. the attempt a retry follows). */
    private static JobView view(Job j, JobFailure failure) {
        AttemptOutcome.Succeeded r = j.result;
        return new JobView(j.id, j.spec.name(), JobRecord.scriptLabel(j.spec), j.state, j.progress, j.progressMessage, j.attempt,
                j.spec.maxAttempts(), j.spec.timeoutSeconds(), j.createdAt, j.startedAt, j.finishedAt,
                failure, List.copyOf(j.earlierFailures), j.workerPid,
                r == null ? null : r.pythonDataFile(), r == null ? 0 : r.pythonDataBytes(),
                r == null ? null : r.dataBlocks(), r == null ? null : r.timing(),
                j.log.file().getParent(), j.log, j.spec.progressToken());
    }

    private static String newJobId() {
        byte[] b = new byte[6];
        RANDOM.nextBytes(b);
        return "job-" + HexFormat.of().formatHex(b);
    }

    static String formatSeconds(double s) {
        return s == Math.rint(s) ? ((long) s) + " s" : s + " s";
    }

    /** For tests: jobs in the queue, head first. */
    CompletableFuture<List<String>> queuedIds() {
        return loop.call(() -> queue.stream().map(j -> j.id).toList());
    }
}
