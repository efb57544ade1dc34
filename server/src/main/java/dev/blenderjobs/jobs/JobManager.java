package dev.blenderjobs.jobs;

import com.google.gson.JsonObject;
import dev.blenderjobs.concurrent.EventLoop;
import dev.blenderjobs.workers.AttemptOutcome;
import dev.blenderjobs.workers.JobLog;
import dev.blenderjobs.workers.RunRequest;
import dev.blenderjobs.workers.WorkerEvents;
import dev.blenderjobs.workers.WorkerPool;

import java.io.IOException;
import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
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
 * client is told ({@link JobEvents}); the {@link WorkerPool} runs the attempts.
 */
public final class JobManager implements WorkerEvents {
    private static final Logger LOG = Logger.getLogger(JobManager.class.getName());
    private static final SecureRandom RANDOM = new SecureRandom();

    /** Counters of the add-on's UI panel, and more. */
    public record Stats(int queued, int active, int completed, int failed, int canceled, int total,
                        int workers, int idleWorkers, int busyWorkers, List<JsonObject> workerDetails) {
    }

    /** Mutable state of one job; touched only on the event loop. */
    private static final class Job {
        final String id;
        final JobSpec spec;
        final JobFiles.Inputs inputs;
        final JobLog log;
        final long createdAt = System.currentTimeMillis();
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

        Job(String id, JobSpec spec, JobFiles.Inputs inputs, JobLog log) {
            this.id = id;
            this.spec = spec;
            this.inputs = inputs;
            this.log = log;
        }
    }

    private final EventLoop loop;
    private final JobFiles files;
    private final int logTailLines;
    private final String blenderProblem;
    private JobEvents events = JobEvents.NONE;
    private WorkerPool pool;
    private final Map<String, Job> jobs = new LinkedHashMap<>();
    private final ArrayDeque<Job> queue = new ArrayDeque<>();
    private boolean shuttingDown;

    /**
     * @param blenderProblem why no Blender can run jobs, or null when one was found
     */
    public JobManager(EventLoop loop, JobFiles files, int logTailLines, String blenderProblem) {
        this.loop = loop;
        this.files = files;
        this.logTailLines = logTailLines;
        this.blenderProblem = blenderProblem;
    }

    /** Wiring, before any job arrives: the pool that runs attempts (absent without Blender). */
    public void attach(WorkerPool pool, JobEvents events) {
        this.pool = pool;
        this.events = events;
    }

    // ------------------------------------------------------------------ requests

    /**
     * Adds a job. Copies its inputs into a private directory on the calling thread (so call it
     * off the protocol reader thread), then queues it on the loop.
     */
    public CompletableFuture<JobView> submit(JobSpec spec) {
        if (blenderProblem != null) {
            return CompletableFuture.failedFuture(new JobException(JobException.Reason.BLENDER_UNAVAILABLE,
                    "Cannot run jobs: " + blenderProblem, null));
        }
        String id = newJobId();
        JobFiles.Inputs inputs;
        try {
            inputs = files.prepare(id, spec);
        } catch (IOException e) {
            deleteQuietly(id);
            return CompletableFuture.failedFuture(new JobException(JobException.Reason.JOB_FILES_UNAVAILABLE,
                    "Could not prepare the job's private files: " + e + ". Check that the state directory is "
                            + "writable and the disk is not full.", null));
        }
        JobLog log = new JobLog(files.logOf(id), logTailLines);
        CompletableFuture<JobView> added = loop.call(() -> {
            if (shuttingDown) {
                throw new JobException(JobException.Reason.SHUTTING_DOWN, "The server is shutting down.", null);
            }
            if (spec.replaceExisting() && spec.name() != null) replaceNamed(spec.name());
            Job job = new Job(id, spec, inputs, log);
            jobs.put(id, job);
            queue.addLast(job);
            events.stateChanged(view(job), null);
            dispatch();
            return view(job);
        });
        added.whenComplete((v, e) -> {
            if (e != null) deleteQuietly(id);
        });
        return added;
    }

    private void replaceNamed(String name) {
        for (Job other : new ArrayList<>(jobs.values())) {
            if (!name.equals(other.spec.name())) continue;
            if (!other.state.isFinal()) cancelOnLoop(other, "replaced by a new job with the same name");
            jobs.remove(other.id);
            other.log.release();
            CompletableFuture.runAsync(() -> deleteQuietly(other.id));
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

    /** Cancels a queued or active job; returns its view and the state it had before. */
    public CompletableFuture<Map.Entry<JobView, JobState>> cancel(String jobId) {
        return loop.call(() -> {
            Job job = find(jobId);
            JobState before = job.state;
            if (!before.isFinal()) cancelOnLoop(job, "canceled by the client");
            return Map.entry(view(job), before);
        });
    }

    /** Cancels every queued and active job (the add-on's kill_all); returns how many. */
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

    /** Forgets a finished job and deletes its files. */
    public CompletableFuture<JobView> remove(String jobId) {
        return loop.call(() -> {
            Job job = find(jobId);
            if (!job.state.isFinal()) {
                throw new JobException(JobException.Reason.JOB_NOT_REMOVABLE,
                        "Job " + jobId + " is " + job.state + "; cancel it (cancelJob) before removing it.",
                        stateData(job));
            }
            jobs.remove(jobId);
            job.log.release();
            return view(job);
        }).thenApplyAsync(v -> {
            try {
                files.delete(v.id());
            } catch (IOException e) {
                LOG.log(Level.WARNING, "could not delete the files of job " + v.id(), e);
            }
            return v;
        });
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
            int queued = 0, active = 0, completed = 0, failed = 0, canceled = 0;
            for (Job j : jobs.values()) {
                switch (j.state) {
                    case QUEUED -> queued++;
                    case ACTIVE -> active++;
                    case COMPLETED -> completed++;
                    case FAILED -> failed++;
                    case CANCELED -> canceled++;
                }
            }
            int workers = pool == null ? 0 : pool.size();
            int idle = pool == null ? 0 : pool.idleWorkers();
            int busy = pool == null ? 0 : pool.busyWorkers();
            return new Stats(queued, active, completed, failed, canceled, jobs.size(), workers, idle, busy,
                    pool == null ? List.of() : pool.describe());
        });
    }

    /** Stops taking jobs: queued and active ones are canceled (their workers are stopped by the pool). */
    public CompletableFuture<Integer> shutdown() {
        return loop.call(() -> {
            shuttingDown = true;
            int n = 0;
            for (Job job : new ArrayList<>(jobs.values())) {
                if (!job.state.isFinal()) {
                    cancelOnLoop(job, "the server shut down");
                    n++;
                }
            }
            return n;
        });
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
        JobState previous = job.state;
        job.state = JobState.CANCELED;
        job.finishedAt = System.currentTimeMillis();
        LOG.fine("job " + job.id + " " + why);
        job.log.release();
        events.stateChanged(view(job), previous);
        dispatch();
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
            job.state = JobState.COMPLETED;
            job.finishedAt = System.currentTimeMillis();
            job.log.release();
            events.stateChanged(view(job), JobState.ACTIVE);
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
        JobState previous = job.state;
        job.failure = failure;
        job.state = JobState.FAILED;
        job.finishedAt = System.currentTimeMillis();
        job.log.release();
        events.stateChanged(view(job), previous);
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
                    "No job with id " + jobId + " (it may have been removed); listJobs shows the known jobs.", data);
        }
        return job;
    }

    private static JsonObject stateData(Job job) {
        JsonObject data = new JsonObject();
        data.addProperty("jobId", job.id);
        data.addProperty("state", job.state.name());
        if (job.failure != null && job.state == JobState.FAILED) {
            data.addProperty("failureKind", job.failure.kind().name());
            data.addProperty("failureMessage", job.failure.message());
        }
        return data;
    }

    private static JobView view(Job j) {
        return view(j, j.state == JobState.FAILED ? j.failure : null);
    }

    /** A snapshot that shows {@code failure} as the job's error (e.g. the attempt a retry follows). */
    private static JobView view(Job j, JobFailure failure) {
        AttemptOutcome.Succeeded r = j.result;
        String script = j.spec.scriptPath() != null ? j.spec.scriptPath().toString() : "<scriptText>";
        return new JobView(j.id, j.spec.name(), script, j.state, j.progress, j.progressMessage, j.attempt,
                j.spec.maxAttempts(), j.spec.timeoutSeconds(), j.createdAt, j.startedAt, j.finishedAt,
                failure, List.copyOf(j.earlierFailures), j.workerPid,
                r == null ? null : r.pythonDataFile(), r == null ? 0 : r.pythonDataBytes(),
                r == null ? null : r.dataBlocks(), r == null ? null : r.timing(),
                j.log.file().getParent(), j.log, j.spec.progressToken());
    }

    private void deleteQuietly(String id) {
        try {
            files.delete(id);
        } catch (IOException e) {
            LOG.log(Level.FINE, "could not delete files of job " + id, e);
        }
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
