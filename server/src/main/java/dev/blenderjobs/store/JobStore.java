package dev.blenderjobs.store;

import dev.blenderjobs.jobs.JobEvents;
import dev.blenderjobs.jobs.JobFiles;
import dev.blenderjobs.jobs.JobManager;
import dev.blenderjobs.jobs.JobRecord;
import dev.blenderjobs.jobs.JobSpec;
import dev.blenderjobs.jobs.JobState;
import dev.blenderjobs.jobs.JobView;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Makes job state durable. It sits between the {@link JobManager} and the client notifier:
 * each state change is written to the job's record on the store's own thread and only then
 * passed on, so a client is never told of a state that a restart could forget. Progress is
 * passed through the same thread (unwritten) to keep its order with state changes. Removed
 * jobs' directories are deleted here too, after any write still pending for them: one thread
 * owns every write to the jobs' records.
 */
public final class JobStore implements JobEvents, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(JobStore.class.getName());

    private final JobEvents downstream;
    private final ExecutorService writer = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "job-store");
        t.setDaemon(true);
        return t;
    });
    private volatile JobFiles files;
    /** Touched only on the writer thread: whether the last write failed (logged once per spell). */
    private boolean failing;

    public JobStore(JobEvents downstream) {
        this.downstream = downstream;
    }

    /** The state directory's files, once it is chosen (at initialize), before any job event. */
    public void bind(JobFiles files) {
        this.files = files;
    }

    /**
     * Reads back every job an earlier server left: final and interrupted jobs with their
     * records, and, for jobs that can run again, their inputs. A job directory without a
     * record is an addJob that never answered (the server died in it) and is deleted; one
     * with an unreadable record is left in place, logged, and not listed.
     */
    public List<JobManager.Recovered> load(JobFiles files) throws IOException {
        List<JobManager.Recovered> found = new ArrayList<>();
        for (String id : files.listJobIds()) {
            Files.deleteIfExists(files.dirOf(id).resolve("job.json.tmp"));
            JobRecord record;
            try {
                record = files.readRecord(id);
            } catch (NoSuchFileException e) {
                LOG.info("deleting " + files.dirOf(id) + ": it has no job.json, so its addJob never answered");
                deleteQuietly(files, id);
                continue;
            } catch (IOException | RuntimeException e) {
                LOG.warning("skipping " + files.dirOf(id) + ": its record cannot be read (" + e.getMessage()
                        + "); it is left in place and not listed");
                continue;
            }
            JobSpec spec = null;
            if (!record.state().isFinal()) {
                try {
                    spec = files.readSpec(id);
                } catch (IOException | RuntimeException e) {
                    LOG.warning("job " + id + " cannot be resumed: " + e.getMessage());
                }
            }
            found.add(new JobManager.Recovered(record, spec, files.existingInputs(id)));
        }
        return found;
    }

    @Override
    public void progress(String jobId, double progress, String message, long reportedAtMillis) {
        submit(() -> downstream.progress(jobId, progress, message, reportedAtMillis));
    }

    @Override
    public void stateChanged(JobView job, JobState previous) {
        submit(() -> {
            write(JobRecord.of(job));
            downstream.stateChanged(job, previous);
        });
    }

    @Override
    public void removed(String jobId) {
        submit(() -> {
            deleteQuietly(files, jobId);
            downstream.removed(jobId);
        });
    }

    private void write(JobRecord record) {
        try {
            files.writeRecord(record);
            if (failing) LOG.info("job records are being written again");
            failing = false;
        } catch (IOException | RuntimeException e) {
            // The job goes on (its state is in memory and the client is told), but a restart
            // would not know this change: worth a warning, once per spell of failures.
            Level level = failing ? Level.FINE : Level.WARNING;
            LOG.log(level, "could not write the record of job " + record.id() + " (" + e + "); it will not "
                    + "survive a restart in state " + record.state() + ". Check that the state directory "
                    + files.stateDir() + " is writable and its disk is not full.");
            failing = true;
        }
    }

    private static void deleteQuietly(JobFiles files, String id) {
        try {
            files.delete(id);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "could not delete the files of job " + id, e);
        }
    }

    private void submit(Runnable task) {
        try {
            writer.execute(task);
        } catch (RejectedExecutionException closed) {
            LOG.fine("job event after the store closed; dropped");
        }
    }

    /** Writes what is pending and stops; a server stopping waits for its last records. */
    @Override
    public void close() {
        writer.shutdown();
        try {
            if (!writer.awaitTermination(5, TimeUnit.SECONDS)) LOG.warning("job records still pending at exit");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
