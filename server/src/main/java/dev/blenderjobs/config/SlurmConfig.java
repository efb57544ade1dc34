package dev.blenderjobs.config;

import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * How the Slurm executor ({@code --executor slurm}) submits its pilots: each pilot is one Slurm
 * job running one Blender worker, which connects back to the server's listening address.
 *
 * @param listen       {@code --listen HOST[:PORT]}: where pilots connect; empty = an address of
 *                     this host on the route to the partition's nodes, on a free port
 * @param partition    {@code --slurm-partition}; empty = the cluster's default partition
 * @param timeMinutes  {@code --slurm-time}: walltime of one pilot
 * @param minPilots    pilots kept even when nothing waits
 * @param account      {@code --slurm-account}
 * @param qos          {@code --slurm-qos}
 * @param cpusPerPilot {@code --cpus-per-task} of a pilot
 * @param memMb        {@code --mem} of a pilot in MB; empty = the partition's default
 * @param gres         {@code --gres} of a pilot, e.g. "gpu:1"
 * @param sbatchArgs   extra raw sbatch options, appended last (they may override the others)
 * @param blender      the Blender executable on the nodes
 * @param idleRelease  an idle pilot above the minimum is released after this long
 * @param drainMargin  a pilot with less walltime left than this takes no new job; empty = 10%
 *                     of the walltime, between 10 s and 5 min
 * @param sharedFs     the state directory is on a filesystem the nodes share: job files are
 *                     read and written in place and the runtime is staged there, instead of
 *                     travelling over the channel
 */
public record SlurmConfig(Optional<String> listen, Optional<String> partition, int timeMinutes, int minPilots,
                          Optional<String> account, Optional<String> qos, int cpusPerPilot, Optional<Long> memMb,
                          Optional<String> gres, List<String> sbatchArgs, String blender, Duration idleRelease,
                          Optional<Duration> drainMargin, boolean sharedFs) {

    public SlurmConfig {
        sbatchArgs = List.copyOf(sbatchArgs);
        if (timeMinutes < 1) throw new IllegalArgumentException("--slurm-time must be at least 1 minute, got " + timeMinutes);
        if (minPilots < 0) throw new IllegalArgumentException("--slurm-min-pilots must be 0 or more, got " + minPilots);
        if (cpusPerPilot < 1) throw new IllegalArgumentException("--slurm-cpus-per-pilot must be at least 1, got " + cpusPerPilot);
        if (memMb.isPresent() && memMb.get() < 1) throw new IllegalArgumentException("--slurm-mem-per-pilot must be at least 1 MB");
        if (blender == null || blender.isBlank()) throw new IllegalArgumentException("--slurm-blender must not be empty");
        if (idleRelease.isNegative()) throw new IllegalArgumentException("--slurm-idle-release must not be negative");
        for (String s : List.of(partition.orElse(""), account.orElse(""), qos.orElse(""), gres.orElse(""))) {
            if (s.chars().anyMatch(c -> c < 0x20)) throw new IllegalArgumentException("Slurm options must not hold control characters");
        }
    }

    /** A pilot's walltime. */
    public Duration walltime() {
        return Duration.ofMinutes(timeMinutes);
    }

    /** The drain margin given, or 10% of the walltime between 10 s and 5 min. */
    public Duration effectiveDrainMargin() {
        return drainMargin.orElseGet(() -> {
            long tenth = walltime().toSeconds() / 10;
            return Duration.ofSeconds(Math.max(10, Math.min(300, tenth)));
        });
    }

    /** Defaults for tests: one-hour pilots on the default partition, none kept idle. */
    public static SlurmConfig defaults() {
        return new SlurmConfig(Optional.empty(), Optional.empty(), 60, 0, Optional.empty(), Optional.empty(), 1,
                Optional.empty(), Optional.empty(), List.of(), "blender", Duration.ofMinutes(5), Optional.empty(), false);
    }
}
