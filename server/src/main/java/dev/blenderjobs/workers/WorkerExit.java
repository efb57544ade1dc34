package dev.blenderjobs.workers;

import java.util.List;

/**
 * How a worker ended.
 *
 * @param connected   whether its runtime ever connected (false = it failed to start)
 * @param exitCode    its exit code, 128+N for signal N, -1 when unknown
 * @param problem     what went wrong on the server's side, if anything (e.g. no connection in time)
 * @param consoleTail its last console lines outside any job
 * @param crashReport the *.crash.txt Blender wrote, if any
 * @param lost        set when the worker was lost rather than exited: its machine or its batch
 *                    job went away (node down, cancelled, walltime), so what it ran failed with
 *                    WORKER_LOST; says what happened, e.g. "Slurm job 12 on node2 was cancelled"
 */
public record WorkerExit(boolean connected, int exitCode, String problem, List<String> consoleTail,
                         String crashReport, String lost) {

    public WorkerExit {
        consoleTail = consoleTail == null ? List.of() : List.copyOf(consoleTail);
    }

    /** A worker that ended by itself (a process that exited or was killed). */
    public WorkerExit(boolean connected, int exitCode, String problem, List<String> consoleTail, String crashReport) {
        this(connected, exitCode, problem, consoleTail, crashReport, null);
    }
}
