package dev.blenderjobs.workers.slurm;

import dev.blenderjobs.config.SlurmConfig;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The batch script of one pilot and the sbatch options that go with it. The script is given to
 * {@code sbatch} on its standard input: it carries the pilot's secret (exported to Blender's
 * environment, which the runtime clears before any job runs), so the secret is never on a command
 * line, in squeue or scontrol output, or in a file of the server's; Slurm keeps the script only
 * where its owner and the Slurm administrators can read it. On the node the script makes a
 * private (0700) folder, writes the runtime into it (umask 077: files 0600), starts Blender with
 * it, and deletes the folder when Blender ends.
 *
 * <p>Exit codes of its own, read back by the server when a pilot ends before connecting:
 * {@link #EXIT_NO_RUNTIME}, {@link #EXIT_NO_TEMP}, {@link #EXIT_NO_BLENDER}.
 *
 * @param text       the whole batch script
 * @param sbatchArgs the sbatch command line, without the script (which goes on stdin)
 */
record PilotScript(String text, List<String> sbatchArgs) {
    /** The runtime staged in the shared state directory is not readable on the node. */
    static final int EXIT_NO_RUNTIME = 95;
    /** The node has no writable temporary folder. */
    static final int EXIT_NO_TEMP = 96;
    /** The Blender executable is not found on the node. */
    static final int EXIT_NO_BLENDER = 97;

    /**
     * @param runtimeSource  the runtime's source, embedded in the script; null when it is staged
     * @param stagedRuntime  where the runtime was staged on a filesystem the nodes share, or null
     */
    static PilotScript build(SlurmConfig cfg, String jobName, String comment, String workerId, String host, int port,
                             String secret, String marker, Duration progressInterval, String runtimeSource,
                             Path stagedRuntime) {
        StringBuilder s = new StringBuilder();
        s.append("#!/bin/bash\n");
        s.append("# blender-jobs pilot ").append(workerId).append(": one Blender worker that connects back to its server.\n");
        s.append("# Written by the server and given to sbatch on stdin (it holds the pilot's secret).\n");
        s.append("umask 077\n");
        s.append("dir=$(mktemp -d \"${TMPDIR:-/tmp}/blender-jobs-pilot.XXXXXXXX\") || exit ").append(EXIT_NO_TEMP).append('\n');
        // A folder a job made unreadable (mode 000) is given back to its owner before the delete
        // (folders only: a file may be a hard link to one elsewhere).
        s.append("trap 'find \"$dir\" -type d ! -perm -700 -exec chmod u+rwx {} \\; 2>/dev/null; rm -rf \"$dir\"' EXIT\n");
        s.append("trap 'exit 143' TERM INT HUP\n");
        s.append("mkdir -p \"$dir/config\" \"$dir/tmp\" \"$dir/stage\" || exit ").append(EXIT_NO_TEMP).append('\n');
        if (runtimeSource != null) {
            String delimiter = "BJ_RUNTIME_" + dev.blenderjobs.channel.WorkerChannel.randomHex(8);
            if (runtimeSource.contains(delimiter)) throw new IllegalStateException("the runtime contains " + delimiter);
            s.append("cat >\"$dir/worker_runtime.py\" <<'").append(delimiter).append("'\n");
            s.append(runtimeSource);
            if (!runtimeSource.endsWith("\n")) s.append('\n');
            s.append(delimiter).append('\n');
            s.append("runtime=\"$dir/worker_runtime.py\"\n");
        } else {
            s.append("runtime=").append(quote(stagedRuntime.toString())).append('\n');
            s.append("[ -r \"$runtime\" ] || exit ").append(EXIT_NO_RUNTIME).append('\n');
        }
        s.append("blender=").append(quote(cfg.blender())).append('\n');
        s.append("command -v \"$blender\" >/dev/null 2>&1 || exit ").append(EXIT_NO_BLENDER).append('\n');
        s.append("export BLENDER_JOBS_HOST=").append(quote(host)).append(" BLENDER_JOBS_PORT=").append(port)
                .append(" BLENDER_JOBS_WORKER=").append(quote(workerId)).append(" BLENDER_JOBS_MARKER=").append(quote(marker))
                .append(" BLENDER_JOBS_PROGRESS_INTERVAL_MS=").append(progressInterval.toMillis())
                .append(" BLENDER_JOBS_CONSOLE=channel\n");
        s.append("export BLENDER_JOBS_SECRET=").append(quote(secret)).append('\n');
        if (stagedRuntime == null) s.append("export BLENDER_JOBS_STAGE_DIR=\"$dir/stage\"\n");
        s.append("export BLENDER_USER_CONFIG=\"$dir/config\" TMPDIR=\"$dir/tmp\" TEMP=\"$dir/tmp\" TMP=\"$dir/tmp\""
                + " PYTHONIOENCODING=utf-8:backslashreplace\n");
        // The pilot keeps the local launcher's promise for its temp folder: private to this one
        // Blender (0700, in the pilot's own folder) and deleted with it (the trap above), so the
        // runtime may empty it after each job. It makes no lifeline promise: Blender's stdin is
        // /dev/null and BLENDER_JOBS_LIFELINE stays unset; the pilot's lifeline is its channel.
        s.append("export BLENDER_JOBS_TMPDIR=\"$dir/tmp\"\n");
        s.append("unset PYTHONPATH PYTHONHOME PYTHONSTARTUP\n");
        s.append("cd \"$dir\"\n");
        s.append("\"$blender\" -b --factory-startup -noaudio --python-exit-code 1 --python \"$runtime\" </dev/null &\n");
        s.append("pid=$!\n");
        s.append("trap 'kill -TERM \"$pid\" 2>/dev/null; wait \"$pid\"; exit 143' TERM INT HUP\n");
        s.append("wait \"$pid\"\n");
        s.append("exit $?\n");

        List<String> args = new ArrayList<>(List.of("sbatch", "--parsable", "--job-name=" + jobName,
                "--comment=" + comment, "--time=" + cfg.timeMinutes(), "--nodes=1", "--ntasks=1",
                "--cpus-per-task=" + cfg.cpusPerPilot(), "--output=/dev/null", "--error=/dev/null", "--chdir=/tmp"));
        cfg.partition().ifPresent(p -> args.add("--partition=" + p));
        cfg.account().ifPresent(a -> args.add("--account=" + a));
        cfg.qos().ifPresent(q -> args.add("--qos=" + q));
        cfg.memMb().ifPresent(m -> args.add("--mem=" + m));
        cfg.gres().ifPresent(g -> args.add("--gres=" + g));
        args.addAll(cfg.sbatchArgs());
        return new PilotScript(s.toString(), List.copyOf(args));
    }

    /** A shell word: single quotes, with any single quote closed, escaped and reopened. */
    static String quote(String value) {
        return "'" + value.replace("'", "'\\''") + "'";
    }

    /** What a pilot's exit code means when it ended before connecting, or null when nothing special. */
    static String meaningOf(int exitCode, SlurmConfig cfg, String node) {
        String where = node == null ? "the node" : node;
        return switch (exitCode) {
            case EXIT_NO_RUNTIME -> "the worker runtime staged in the state directory is not readable on " + where
                    + ": is the state directory really on a filesystem the nodes share (--slurm-shared-fs)?";
            case EXIT_NO_TEMP -> where + " has no writable temporary folder ($TMPDIR or /tmp)";
            case EXIT_NO_BLENDER -> "Blender was not found on " + where + " as " + quote(cfg.blender())
                    + "; install it there or give its path with --slurm-blender PATH";
            case 3 -> "the server refused the worker's handshake (see the server log)";
            default -> null;
        };
    }
}
