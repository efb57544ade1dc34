package dev.blenderjobs.workers.slurm;

import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What Slurm says about one job, parsed defensively from {@code squeue} and {@code scontrol}
 * output: anything that does not look as expected is left out rather than guessed.
 *
 * @param id              the job id
 * @param name            its job name (squeue only)
 * @param state           PENDING, RUNNING, COMPLETED, CANCELLED, NODE_FAIL, ...
 * @param reason          why it waits or ended (squeue %r, scontrol Reason), or null for "None"
 * @param node            the node it runs on, or null
 * @param timeLeftSeconds squeue %L in seconds, or null when unknown or unlimited
 * @param exitCode        the batch script's exit code (128+N for signal N), scontrol only, or null
 */
record SlurmJob(String id, String name, String state, String reason, String node, Long timeLeftSeconds,
                Integer exitCode) {

    /** The squeue output format the parser below expects: id|name|state|reason|node|time left. */
    static final String SQUEUE_FORMAT = "%i|%j|%T|%r|%N|%L";
    private static final Pattern JOB_ID = Pattern.compile("\\d{1,18}(_\\d{1,9})?");
    /** States in which a job still holds (or waits for) resources. */
    static final Set<String> LIVE = Set.of("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
            "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD");
    /**
     * Reasons a pending job gives while it simply waits its turn; any other reason (a down or
     * unknown partition, a hold, a limit it can never meet) counts against the start timeout.
     */
    static final Set<String> WAITING_TURN = Set.of("None", "Priority", "Resources", "BeginTime", "Dependency",
            "Licenses", "JobArrayTaskLimit", "Reservation");
    /** Final states in which the job was taken away rather than ending by itself. */
    static final Set<String> TAKEN_AWAY = Set.of("CANCELLED", "NODE_FAIL", "TIMEOUT", "PREEMPTED", "BOOT_FAIL",
            "DEADLINE", "OUT_OF_MEMORY", "REVOKED");

    boolean live() {
        return LIVE.contains(state);
    }

    boolean running() {
        return "RUNNING".equals(state) || "CONFIGURING".equals(state);
    }

    /** The job id sbatch --parsable printed ("id" or "id;cluster"), or empty when it is not one. */
    static Optional<String> parseSbatch(String stdout) {
        String first = stdout.strip().split("\\s+", 2)[0];
        String id = first.split(";", 2)[0];
        return JOB_ID.matcher(id).matches() ? Optional.of(id) : Optional.empty();
    }

    /** squeue -h -o {@link #SQUEUE_FORMAT}: one job per line; malformed lines are skipped. */
    static Map<String, SlurmJob> parseSqueue(String stdout) {
        Map<String, SlurmJob> jobs = new HashMap<>();
        for (String line : stdout.split("\n")) {
            String[] f = line.strip().split("\\|", -1);
            if (f.length != 6 || !JOB_ID.matcher(f[0]).matches() || !f[2].matches("[A-Z_]+")) continue;
            jobs.put(f[0], new SlurmJob(f[0], f[1], f[2], reason(f[3]), f[4].isBlank() ? null : f[4].strip(),
                    parseTimeLeft(f[5]), null));
        }
        return jobs;
    }

    private static String reason(String r) {
        String s = r.strip();
        if (s.startsWith("(") && s.endsWith(")")) s = s.substring(1, s.length() - 1);
        return s.isEmpty() || s.equals("None") ? null : s;
    }

    /** squeue's %L: [days-]hours:minutes:seconds, minutes:seconds, or UNLIMITED / NOT_SET / INVALID. */
    static Long parseTimeLeft(String text) {
        Matcher m = Pattern.compile("(?:(\\d+)-)?(?:(\\d+):)?(\\d+):(\\d+)").matcher(text.strip());
        if (!m.matches()) return null;
        long days = m.group(1) == null ? 0 : Long.parseLong(m.group(1));
        long hours = m.group(2) == null ? 0 : Long.parseLong(m.group(2));
        return ((days * 24 + hours) * 60 + Long.parseLong(m.group(3))) * 60 + Long.parseLong(m.group(4));
    }

    /** scontrol -o show job ID: the fields needed, each found by its key (values may hold spaces elsewhere). */
    static Optional<SlurmJob> parseScontrol(String stdout) {
        String id = field(stdout, "JobId");
        String state = field(stdout, "JobState");
        if (id == null || state == null || !JOB_ID.matcher(id).matches() || !state.matches("[A-Z_]+")) {
            return Optional.empty();
        }
        String node = field(stdout, "BatchHost");
        if (node == null) node = field(stdout, "NodeList");
        if (node != null && (node.equals("(null)") || node.isBlank())) node = null;
        Integer exit = null;
        String code = field(stdout, "ExitCode");
        if (code != null) {
            Matcher m = Pattern.compile("(\\d+):(\\d+)").matcher(code);
            if (m.matches()) {
                int status = Integer.parseInt(m.group(1));
                int signal = Integer.parseInt(m.group(2));
                exit = signal > 0 ? 128 + signal : status;
            }
        }
        String reason = field(stdout, "Reason");
        return Optional.of(new SlurmJob(id, field(stdout, "JobName"), state, reason == null ? null : reason(reason), node,
                null, exit));
    }

    private static String field(String text, String key) {
        Matcher m = Pattern.compile("(?:^|\\s)" + key + "=(\\S*)").matcher(text);
        return m.find() ? m.group(1) : null;
    }
}
