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
 */
public record WorkerExit(boolean connected, int exitCode, String problem, List<String> consoleTail,
                         String crashReport) {

    public WorkerExit {
        consoleTail = consoleTail == null ? List.of() : List.copyOf(consoleTail);
    }
}
