package dev.blenderjobs.workers;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.blenderjobs.concurrent.EventLoop;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The worker slots: {@code --workers N} Blender processes kept warm, each running one job at a
 * time. Owns every slot's state on the event loop; starts, recycles and replaces processes;
 * turns process events into attempt outcomes for its owner ({@link WorkerEvents}).
 * Recycling: after {@code maxJobsPerWorker} jobs, past {@code maxWorkerMemoryMb} of resident
 * memory, after a job that needed a fresh process, and always after an aborted or crashed job.
 */
public final class WorkerPool {
    private static final Logger LOG = Logger.getLogger(WorkerPool.class.getName());
    /** Consecutive failed starts of one slot after which waiting jobs are failed. */
    static final int FAILING_AFTER = 3;

    /** Pool-wide settings. */
    public record Settings(int workers, int maxJobsPerWorker, long maxWorkerMemoryMb, Path workersDir,
                           WorkerProcess.Launch launch) {
    }

    enum SlotState { STARTING, IDLE, BUSY, WAITING_TO_RESTART, SHUT_DOWN }

    /** Mutable state of one slot; touched only on the event loop. */
    private static final class Slot {
        final int index;
        SlotState state = SlotState.STARTING;
        WorkerProcess process;
        int generation;
        int jobsRun;
        RunRequest job;
        boolean aborting;
        int failedStarts;

        Slot(int index) {
            this.index = index;
        }

        String name() {
            return "w" + index;
        }
    }

    private final Settings settings;
    private final EventLoop loop;
    private final WorkerEvents events;
    private final List<Slot> slots = new ArrayList<>();
    /** Replaced processes still finishing their exit; reaped by their supervisors. */
    private final List<WorkerProcess> retiring = new ArrayList<>();
    private boolean shuttingDown;

    public WorkerPool(Settings settings, EventLoop loop, WorkerEvents events) {
        this.settings = settings;
        this.loop = loop;
        this.events = events;
        for (int i = 1; i <= settings.workers(); i++) slots.add(new Slot(i));
    }

    /** Starts every slot's first process in the background. */
    public void start() {
        loop.execute(() -> slots.forEach(this::launch));
    }

    private void launch(Slot slot) {
        loop.assertInLoop();
        if (shuttingDown) {
            slot.state = SlotState.SHUT_DOWN;
            return;
        }
        slot.generation++;
        slot.jobsRun = 0;
        slot.job = null;
        slot.aborting = false;
        slot.state = SlotState.STARTING;
        String id = slot.name() + "." + slot.generation;
        Path dir = settings.workersDir().resolve(slot.name());
        WorkerProcess process = new WorkerProcess(id, dir, settings.launch(), new WorkerProcess.Listener() {
            @Override
            public void ready(WorkerProcess w, JsonObject hello) {
                loop.execute(() -> onReady(slot, w, hello));
            }

            @Override
            public void message(WorkerProcess w, JsonObject message) {
                loop.execute(() -> onMessage(slot, w, message));
            }

            @Override
            public void exited(WorkerProcess w, WorkerProcess.Exit exit) {
                loop.execute(() -> onExit(slot, w, exit));
            }
        });
        slot.process = process;
        LOG.fine("starting worker " + id);
        process.start();
    }

    // ------------------------------------------------------------------ commands (event loop)

    /**
     * Hands the attempt to an idle worker. Returns false when none can take it now; for a job
     * that needs a fresh process, an idle used worker is then recycled so that one soon can.
     */
    public boolean tryRun(RunRequest request) {
        loop.assertInLoop();
        Slot chosen = null;
        for (Slot s : slots) {
            if (s.state != SlotState.IDLE) continue;
            if (request.freshProcess() && s.jobsRun > 0) continue;
            chosen = s;
            break;
        }
        if (chosen == null) {
            if (request.freshProcess() && !hasFreshSoon()) {
                for (Slot s : slots) {
                    if (s.state == SlotState.IDLE) {
                        recycle(s, "a job asked for a fresh process");
                        break;
                    }
                }
            }
            return false;
        }
        chosen.state = SlotState.BUSY;
        chosen.job = request;
        chosen.aborting = false;
        chosen.process.expectOutput(request.jobId(), request.log());
        try {
            chosen.process.send(request.toMessage());
        } catch (IOException e) {
            LOG.warning("could not send job " + request.jobId() + " to worker " + chosen.process.id() + ": " + e.getMessage());
            chosen.process.kill(); // its exit fails the attempt and restarts the slot
        }
        return true;
    }

    private boolean hasFreshSoon() {
        for (Slot s : slots) {
            if (s.state == SlotState.STARTING || s.state == SlotState.WAITING_TO_RESTART) return true;
        }
        return false;
    }

    /** Kills the worker running the job; the attempt's outcome is then the caller's to decide. */
    public void abort(String jobId) {
        loop.assertInLoop();
        for (Slot s : slots) {
            if (s.job != null && s.job.jobId().equals(jobId) && !s.aborting) {
                s.aborting = true;
                LOG.fine("aborting job " + jobId + " on worker " + s.process.id());
                s.process.kill();
            }
        }
    }

    /** The pid of the Blender running the job, or -1. */
    public long pidOf(String jobId) {
        loop.assertInLoop();
        for (Slot s : slots) {
            if (s.job != null && s.job.jobId().equals(jobId)) return s.process.pid();
        }
        return -1;
    }

    public int idleWorkers() {
        loop.assertInLoop();
        return (int) slots.stream().filter(s -> s.state == SlotState.IDLE).count();
    }

    public int busyWorkers() {
        loop.assertInLoop();
        return (int) slots.stream().filter(s -> s.state == SlotState.BUSY).count();
    }

    public int size() {
        return slots.size();
    }

    /** One line per slot, for getStats. */
    public List<JsonObject> describe() {
        loop.assertInLoop();
        List<JsonObject> out = new ArrayList<>();
        for (Slot s : slots) {
            JsonObject o = new JsonObject();
            o.addProperty("worker", s.name());
            o.addProperty("state", s.state.name());
            o.addProperty("pid", s.process == null ? -1 : s.process.pid());
            o.addProperty("jobsRun", s.jobsRun);
            o.addProperty("processesStarted", s.generation);
            if (s.job != null) o.addProperty("jobId", s.job.jobId());
            out.add(o);
        }
        return out;
    }

    // ------------------------------------------------------------------ process events (event loop)

    private void onReady(Slot slot, WorkerProcess w, JsonObject hello) {
        if (slot.process != w) return;
        slot.failedStarts = 0;
        if (shuttingDown) {
            w.stop();
            return;
        }
        slot.state = SlotState.IDLE;
        LOG.fine("worker " + w.id() + " ready: pid " + w.pid() + ", Blender " + optString(hello, "blenderVersion"));
        events.workerAvailable();
    }

    private void onMessage(Slot slot, WorkerProcess w, JsonObject message) {
        if (slot.process != w || slot.job == null || slot.aborting) return;
        String jobId = optString(message, "jobId");
        if (!slot.job.jobId().equals(jobId)) return;
        String type = optString(message, "type");
        if ("progress".equals(type)) {
            events.progress(jobId, slot.job.attempt(), message.get("progress").getAsDouble(),
                    optString(message, "message"),
                    message.has("reportedAt") ? message.get("reportedAt").getAsLong() : System.currentTimeMillis());
        } else if ("result".equals(type)) {
            RunRequest finished = slot.job;
            slot.job = null;
            slot.jobsRun++;
            AttemptOutcome outcome = toOutcome(message, w.pid());
            String recycleReason = recycleReason(slot, finished, outcome);
            if (recycleReason != null) {
                recycle(slot, recycleReason);
            } else {
                slot.state = SlotState.IDLE;
            }
            events.attemptFinished(finished.jobId(), finished.attempt(), outcome);
            if (slot.state == SlotState.IDLE) events.workerAvailable();
        }
    }

    private String recycleReason(Slot slot, RunRequest finished, AttemptOutcome outcome) {
        if (finished.freshProcess()) return "its job asked for a fresh process";
        if (slot.jobsRun >= settings.maxJobsPerWorker()) return "it ran " + slot.jobsRun + " jobs";
        if (outcome instanceof AttemptOutcome.Failed f && "WORKER_ERROR".equals(f.kind())) return "its runtime failed";
        if (settings.maxWorkerMemoryMb() > 0) {
            OptionalLong rss = slot.process.residentBytes();
            if (rss.isPresent() && rss.getAsLong() > settings.maxWorkerMemoryMb() * 1024 * 1024) {
                return "its resident memory is " + rss.getAsLong() / (1024 * 1024) + " MB (limit "
                        + settings.maxWorkerMemoryMb() + " MB)";
            }
        }
        return null;
    }

    /**
     * Replaces the slot's process: the old one is asked to exit (and killed if it does not),
     * and its successor starts at once rather than after the old one is gone, so a fresh
     * Blender per job costs one Blender start, not a stop plus a start.
     */
    private void recycle(Slot slot, String reason) {
        WorkerProcess old = slot.process;
        LOG.fine("recycling worker " + old.id() + ": " + reason);
        retiring.add(old);
        old.stop();
        launch(slot);
    }

    private void onExit(Slot slot, WorkerProcess w, WorkerProcess.Exit exit) {
        if (slot.process != w) {
            retiring.remove(w);
            return;
        }
        RunRequest lost = slot.job;
        boolean aborted = slot.aborting;
        slot.job = null;
        slot.aborting = false;
        if (lost != null && !aborted) {
            events.attemptFinished(lost.jobId(), lost.attempt(), describeDeath(exit));
        }
        if (shuttingDown) {
            slot.state = SlotState.SHUT_DOWN;
            return;
        }
        long delayMs = 0;
        if (!exit.connected()) {
            slot.failedStarts++;
            String why = startFailure(exit);
            LOG.warning("worker " + w.id() + " failed to start (" + slot.failedStarts + " in a row): " + why);
            if (slot.failedStarts >= FAILING_AFTER) events.workersFailing(why);
            delayMs = Math.min(30_000, 500L << Math.min(6, slot.failedStarts - 1));
        } else if (lost == null) {
            LOG.warning("worker " + w.id() + " exited unexpectedly while idle (exit code " + exit.exitCode() + ")");
        }
        slot.state = SlotState.WAITING_TO_RESTART;
        loop.schedule(() -> {
            if (slot.process == w) launch(slot);
        }, delayMs, TimeUnit.MILLISECONDS);
    }

    static String startFailure(WorkerProcess.Exit exit) {
        StringBuilder sb = new StringBuilder();
        sb.append(exit.problem() != null ? exit.problem() : "Blender exited before it was ready");
        sb.append(" (exit code ").append(exit.exitCode()).append(")");
        if (!exit.consoleTail().isEmpty()) {
            sb.append(". Its last output:\n").append(String.join("\n", lastLines(exit.consoleTail(), 15)));
        }
        return sb.toString();
    }

    static AttemptOutcome.Failed describeDeath(WorkerProcess.Exit exit) {
        int code = exit.exitCode();
        boolean signalled = code > 128 && code < 160;
        if (exit.crashReport() != null || signalled) {
            String what = signalled ? "Blender was killed by signal " + (code - 128)
                    : "Blender crashed (exit code " + code + ")";
            return new AttemptOutcome.Failed("BLENDER_CRASHED",
                    what + " while running the job" + (exit.crashReport() != null ? "; its crash report is attached" : ""),
                    null, exit.crashReport());
        }
        return new AttemptOutcome.Failed("BLENDER_EXITED",
                "Blender exited with code " + code + " while running the job, without reporting a result "
                        + "(did the script call os._exit() or quit Blender?)", null, null);
    }

    private static AttemptOutcome toOutcome(JsonObject m, long pid) {
        if (m.has("ok") && m.get("ok").getAsBoolean()) {
            JsonElement blocks = m.get("dataBlocks");
            return new AttemptOutcome.Succeeded(Path.of(m.get("pythonDataFile").getAsString()),
                    m.get("pythonDataBytes").getAsLong(),
                    blocks != null && blocks.isJsonObject() ? blocks.getAsJsonObject() : null,
                    m.has("timing") && m.get("timing").isJsonObject() ? m.getAsJsonObject("timing") : new JsonObject(),
                    pid);
        }
        return new AttemptOutcome.Failed(optString(m, "kind") == null ? "WORKER_ERROR" : optString(m, "kind"),
                optString(m, "message"), optString(m, "traceback"), null);
    }

    private static List<String> lastLines(List<String> lines, int n) {
        return lines.subList(Math.max(0, lines.size() - n), lines.size());
    }

    private static String optString(JsonObject o, String key) {
        JsonElement e = o.get(key);
        return e == null || e.isJsonNull() ? null : e.getAsString();
    }

    // ------------------------------------------------------------------ shutdown

    /**
     * Stops every worker: asks each runtime to exit, then kills what is left after the grace
     * period. Blocks the calling thread (never the event loop) until all are reaped.
     */
    public void shutdown(Duration grace) {
        List<WorkerProcess> processes;
        try {
            processes = loop.call(() -> {
                shuttingDown = true;
                List<WorkerProcess> all = new ArrayList<>(retiring);
                for (Slot s : slots) {
                    if (s.process != null) all.add(s.process);
                }
                return all;
            }).get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.log(Level.WARNING, "event loop did not answer during shutdown; killing workers directly", e);
            processes = List.of();
        }
        for (WorkerProcess p : processes) p.stop();
        long deadline = System.nanoTime() + grace.toNanos();
        for (WorkerProcess p : processes) {
            p.awaitExit(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
        }
        for (WorkerProcess p : processes) p.killAndWait(Duration.ofMillis(500));
    }
}
