package dev.blenderjobs.workers;

/**
 * The batch-system job a worker runs in (a Slurm pilot), as getStats shows it. Values are what
 * the batch system last said; any may be null while unknown.
 *
 * @param system "slurm"
 * @param id     the batch job's id, e.g. "1234"
 * @param state  its state there, e.g. PENDING, RUNNING
 * @param reason why it waits (Slurm's squeue %r), e.g. "Priority", "PartitionDown"; null when none
 * @param node   the node it runs on
 */
public record BatchJob(String system, String id, String state, String reason, String node) {
}
