package dev.blenderjobs.wire;

import com.google.gson.JsonElement;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.wire.messages.Messages.JobProgressParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressCreateParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressParams;
import dev.blenderjobs.wire.messages.Messages.WorkDoneProgressValue;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.logging.Logger;

/**
 * LSP work-done progress of jobs, the way the LSP spec has it: the server creates a token of its
 * own for a job ({@code window/workDoneProgress/create}, sent once the {@code addJob} answer is
 * written) and, once the client has answered, reports begin / report / end on it. A job that
 * rested before the answer gets begin and end at once; a client that answers with an error
 * gets nothing on that token. Touched only on the notifier's thread; the client's answer
 * arrives on LSP4J's reader thread and is handed back to it.
 */
final class WorkDoneReporter {
    private static final Logger LOG = Logger.getLogger(WorkDoneReporter.class.getName());

    private enum Phase {
        /** Added; the create request waits for the addJob answer to be written. */
        ADDED,
        /** Create sent, its answer not yet here. */
        CREATING,
        /** Begun: reports go out as they come. */
        BEGUN
    }

    private static final class Progress {
        Phase phase = Phase.ADDED;
        String title;
        JobProgressParams latest;
        /** The end's message, once the job rests. */
        String ended;
    }

    private final ClientNotifier notifier;
    private final WorkDoneTokens tokens;
    private final Map<String, Progress> jobs = new HashMap<>();

    WorkDoneReporter(ClientNotifier notifier, WorkDoneTokens tokens) {
        this.notifier = notifier;
        this.tokens = tokens;
    }

    private Progress of(String jobId) {
        return tokens.isOpen(jobId) ? jobs.computeIfAbsent(jobId, id -> new Progress()) : null;
    }

    /** The addJob answer of the job is written: ask the client for the token. */
    void addJobAnswered(String jobId, String name) {
        Progress p = of(jobId);
        if (p == null || p.phase != Phase.ADDED) return;
        if (p.title == null) p.title = title(jobId, name);
        p.phase = Phase.CREATING;
        JsonElement token = WorkDoneTokens.tokenOf(jobId);
        CompletableFuture<Void> answer;
        try {
            answer = notifier.client().createWorkDoneProgress(new WorkDoneProgressCreateParams(token));
        } catch (RuntimeException e) {
            answer = CompletableFuture.failedFuture(e);
        }
        // The answer completes on LSP4J's reader thread: hand it back, do nothing there.
        answer.whenComplete((ok, error) -> notifier.post(() -> created(jobId, error)));
    }

    /** The client answered window/workDoneProgress/create. */
    private void created(String jobId, Throwable error) {
        Progress p = jobs.get(jobId);
        if (p == null || p.phase != Phase.CREATING) return;
        if (error != null) {
            // The client refused the token: LSP says nothing may be reported on it.
            LOG.fine("the client refused the work-done token of job " + jobId + ": " + error);
            forget(jobId);
            return;
        }
        p.phase = Phase.BEGUN;
        send(jobId, new WorkDoneProgressValue("begin", p.title, true, null, 0));
        if (p.ended != null) {
            end(jobId, p.ended); // it rested meanwhile: begin and end at once
        } else if (p.latest != null) {
            report(jobId, p.latest);
        }
    }

    void stateChanged(Job job) {
        Progress p = of(job.jobId());
        if (p == null) return;
        if (p.title == null) p.title = title(job.jobId(), job.name());
        if (job.state().isLive()) return;
        String message = job.state().name().toLowerCase()
                + (job.state().carriesError() && job.error() != null ? ": " + job.error().message() : "");
        if (p.phase == Phase.BEGUN) {
            end(job.jobId(), message);
        } else {
            p.ended = message; // ended when the client has answered the create request
        }
    }

    void progress(JobProgressParams params) {
        Progress p = jobs.get(params.jobId());
        if (p == null) return;
        p.latest = params;
        if (p.phase == Phase.BEGUN && p.ended == null) report(params.jobId(), params);
    }

    /** The job left the table: whatever still waits for it is dropped. */
    void removed(String jobId) {
        if (jobs.containsKey(jobId) && jobs.get(jobId).phase != Phase.CREATING) forget(jobId);
    }

    private void report(String jobId, JobProgressParams params) {
        int percent = (int) Math.round(Math.max(0, Math.min(1, params.progress())) * 100);
        send(jobId, new WorkDoneProgressValue("report", null, null, params.message(), percent));
    }

    private void end(String jobId, String message) {
        send(jobId, new WorkDoneProgressValue("end", null, null, message, null));
        forget(jobId);
    }

    private void forget(String jobId) {
        jobs.remove(jobId);
        tokens.close(jobId);
    }

    private void send(String jobId, WorkDoneProgressValue value) {
        WorkDoneProgressParams params = new WorkDoneProgressParams(WorkDoneTokens.tokenOf(jobId), value);
        notifier.send(() -> notifier.client().workDoneProgress(params));
    }

    static String title(String jobId, String name) {
        return "Blender job " + (name != null ? name : jobId);
    }
}
