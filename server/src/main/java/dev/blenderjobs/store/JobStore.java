package dev.blenderjobs.store;

import com.google.gson.JsonObject;
import dev.blenderjobs.concurrent.Trace;
import dev.blenderjobs.jobs.JobEvents;
import dev.blenderjobs.jobs.JobFiles;
import dev.blenderjobs.jobs.JobManager;
import dev.blenderjobs.model.Job;
import dev.blenderjobs.model.JobState;
import dev.blenderjobs.model.RemovalReason;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
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
 *
 * <p>Group commit: the thread takes every event waiting at once and writes each job's latest
 * record of the batch once, then passes the batch on in order. A job that went QUEUED, ACTIVE
 * and COMPLETED while the disk was busy costs one write, and every notification still follows
 * a record at least as new as itself.
 *
 * <p>A record that cannot be written (disk full, directory unwritable) does not stop the job:
 * its state stays in memory and the client is still told. The store keeps the unwritten
 * record, tells the client once per spell of failures ({@link JobEvents#recordsNotSaved}),
 * tries again with every later batch and every {@value #RETRY_SECONDS} s, and says so when
 * every job's latest state is on disk again ({@link JobEvents#recordsSavedAgain}).
 */
public final class JobStore implements JobEvents, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(JobStore.class.getName());

    /** What passes through the store, in the order the job manager announced it. */
    sealed interface Event {
    }

    record Progress(String jobId, double progress, String message, long reportedAtMillis) implements Event {
    }

    record StateChanged(Job job, JobState previous) implements Event {
    }

    /** done: completed once the removal is on disk (with what could not be deleted), or failed. */
    record Removed(String jobId, RemovalReason reason, CompletableFuture<String> done) implements Event {
    }

    /**
     * What {@link #loadAll} found: the jobs, and the records it could not read ("jobId: why"),
     * which are left in place for a person.
     */
    public record Loaded(List<JobManager.Recovered> jobs, List<String> unreadable) {
    }

    /** Sent by close(): what is queued before it is still committed. */
    record Close() implements Event {
    }

    private static final Event CLOSE = new Close();
    static final int RETRY_SECONDS = 5;

    private final JobEvents downstream;
    private final LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
    private final Thread writer;
    private volatile boolean closed;
    private volatile JobFiles files;
    /** Touched only on the writer thread: the latest record of each job that could not be written. */
    private final Map<String, Job> unsaved = new LinkedHashMap<>();
    /** Touched only on the writer thread: listed jobs whose directory was deleted (told once each). */
    private final Set<String> gone = new HashSet<>();

    public JobStore(JobEvents downstream) {
        this.downstream = downstream;
        this.writer = new Thread(this::run, "job-store");
        writer.setDaemon(true);
        writer.start();
    }

    /** The state directory's files, once it is chosen (at initialize), before any job event. */
    public void bind(JobFiles files) {
        this.files = files;
    }

    /**
     * Reads back every job an earlier server left, and whether each unfinished one can run again
     * (its inputs are all there). A job directory without a record is an addJob that never
     * answered (the server died in it) and is deleted; one with an unreadable record is left in
     * place, logged, and not listed. Records of blender-jobs 0.1 (format 1) are converted.
     */
    public List<JobManager.Recovered> load(JobFiles files) throws IOException {
        return loadAll(files).jobs();
    }

    /**
     * {@link #load}, and the records that could not be read; also deletes what is left of
     * removed jobs (tombstones a removal could not delete completely).
     */
    public Loaded loadAll(JobFiles files) throws IOException {
        List<JobManager.Recovered> found = new ArrayList<>();
        List<String> unreadable = new ArrayList<>();
        List<String> left = files.cleanTombstones();
        if (!left.isEmpty()) {
            LOG.warning("could not delete what is left of removed jobs (they stay removed; the next start tries "
                    + "again): " + String.join("; ", left));
        }
        for (String id : files.listJobIds()) {
            Files.deleteIfExists(files.dirOf(id).resolve("job.json.tmp"));
            Job job;
            try {
                JsonObject record = files.readRecordJson(id);
                int format = record.has("format") && record.get("format").isJsonPrimitive()
                        ? record.get("format").getAsInt() : -1;
                if (format == JobFiles.FORMAT) {
                    job = JobFiles.jobOf(id, record);
                } else if (format == LegacyRecords.FORMAT) {
                    job = LegacyRecords.convert(files, id, record);
                } else {
                    throw new IOException("job.json of " + id + " has format " + format + ", which this server ("
                            + "format " + JobFiles.FORMAT + ") does not know; was it written by a newer blender-jobs?");
                }
            } catch (NoSuchFileException e) {
                LOG.info("deleting " + files.dirOf(id) + ": it has no job.json, so its addJob never answered");
                files.deleteQuietly(id);
                continue;
            } catch (IOException | RuntimeException e) {
                // Only a record that is no JSON at all may be torn; one of another format or job is left alone.
                job = e instanceof JobFiles.NotJson ? files.readEarlierRecord(id) : null;
                if (job == null) {
                    LOG.warning("skipping " + files.dirOf(id) + ": its record cannot be read (" + e.getMessage()
                            + "); it is left in place and not listed");
                    unreadable.add(id + ": " + e.getMessage());
                    continue;
                }
                // Records are not fsynced: after a power cut job.json may be torn, and the record
                // before it is the latest state that can be known.
                LOG.warning("job " + id + ": its record cannot be read (" + e.getMessage() + "), so the record "
                        + "before it is used (state " + job.state() + ", attempt " + job.attempt() + "); the machine "
                        + "may have lost power while it was written");
            }
            boolean resumable = job.state().isFinal() || files.hasInputs(job);
            if (!resumable) LOG.warning("job " + id + " cannot be resumed: its inputs (script.py, input/) are missing");
            found.add(new JobManager.Recovered(job, resumable));
        }
        return new Loaded(found, unreadable);
    }

    @Override
    public void progress(String jobId, double progress, String message, long reportedAtMillis) {
        offer(new Progress(jobId, progress, message, reportedAtMillis));
    }

    @Override
    public void stateChanged(Job job, JobState previous) {
        offer(new StateChanged(job, previous));
    }

    @Override
    public void removed(String jobId, RemovalReason reason) {
        removing(jobId, reason);
    }

    /**
     * Removes the job's files for good on the store's thread (after any write still pending
     * for it), then passes the removal on; the future says when that happened, and what could
     * not be deleted, or fails when the record could not be removed (the job would come back).
     */
    @Override
    public CompletableFuture<String> removing(String jobId, RemovalReason reason) {
        CompletableFuture<String> done = new CompletableFuture<>();
        if (closed) {
            done.completeExceptionally(new IOException("the server is stopping"));
            return done;
        }
        events.add(new Removed(jobId, reason, done));
        return done;
    }

    private void offer(Event event) {
        if (closed) {
            LOG.fine("job event after the store closed; dropped");
            return;
        }
        events.add(event);
    }

    private void run() {
        List<Event> batch = new ArrayList<>();
        while (true) {
            try {
                Event first = unsaved.isEmpty() ? events.take() : events.poll(RETRY_SECONDS, TimeUnit.SECONDS);
                if (first != null) batch.add(first); // null: time to try the unsaved records again
            } catch (InterruptedException e) {
                return;
            }
            events.drainTo(batch);
            boolean close = batch.remove(CLOSE);
            try {
                commit(batch);
            } catch (RuntimeException e) {
                LOG.log(Level.SEVERE, "job store batch failed", e);
            }
            batch.clear();
            if (close) {
                if (!unsaved.isEmpty()) {
                    LOG.warning("stopping with the latest state of " + unsaved.size() + " job(s) not saved to disk "
                            + "(" + String.join(", ", unsaved.keySet()) + "): a restart shows them as they were last saved");
                }
                return;
            }
        }
    }

    /** Writes each job's latest record of the batch, then passes the batch on in order. */
    void commit(List<Event> batch) {
        Map<String, StateChanged> latest = new LinkedHashMap<>();
        Set<String> removed = new HashSet<>();
        for (Event e : batch) {
            if (e instanceof StateChanged s) latest.put(s.job().jobId(), s);
            else if (e instanceof Removed r) removed.add(r.jobId());
        }
        boolean wasFailing = !unsaved.isEmpty();
        Set<String> notRetried = new HashSet<>(latest.keySet()); // written below, or removed: not retried
        notRetried.addAll(removed);
        retryUnsaved(notRetried);
        for (StateChanged s : latest.values()) {
            // A job's first record (QUEUED, no previous state) was written with its files at
            // addJob; a job removed in this batch is not written back.
            if (s.previous() != null && !removed.contains(s.job().jobId())) {
                write(s.job());
                if (s.job().state().isFinal()) Trace.mark(s.job().jobId(), "recorded");
            }
        }
        for (Event e : batch) {
            if (e instanceof Progress p) {
                downstream.progress(p.jobId(), p.progress(), p.message(), p.reportedAtMillis());
            } else if (e instanceof StateChanged s) {
                downstream.stateChanged(s.job(), s.previous());
            } else if (e instanceof Removed r) {
                remove(r);
            }
        }
        if (wasFailing && unsaved.isEmpty()) recovered();
    }

    /** Makes a removal durable, then tells the client; a removal that cannot be is told to the remover. */
    private void remove(Removed r) {
        String left;
        try {
            left = files.remove(r.jobId());
        } catch (IOException | RuntimeException e) {
            LOG.warning("could not remove job " + r.jobId() + ": neither its directory could be renamed nor its "
                    + "record deleted (" + e + "); a restarted server would list it again");
            r.done().completeExceptionally(e);
            return;
        }
        unsaved.remove(r.jobId());
        gone.remove(r.jobId());
        if (left != null) {
            LOG.warning("job " + r.jobId() + " is removed, but some of its files could not be deleted (the next "
                    + "start tries again): " + left);
        }
        downstream.removed(r.jobId(), r.reason());
        r.done().complete(left);
    }

    /**
     * Writes the records left unwritten by earlier batches, except those this batch replaces
     * or removes.
     * Each is tried: one job's record may fail for a reason of its own (its directory was
     * deleted or changed by its script) while the others can be written.
     */
    private void retryUnsaved(Set<String> replaced) {
        for (Job record : new ArrayList<>(unsaved.values())) {
            if (replaced.contains(record.jobId())) continue;
            write(record);
        }
    }

    /**
     * Writes a record; true if it is on disk. A job whose record newly fails is told to the
     * client by name (RECORDS_NOT_SAVED) before its state is passed on; a job whose directory
     * is gone is told once (JOB_FILES_GONE) and not retried: nothing can be saved for it.
     */
    private boolean write(Job record) {
        String id = record.jobId();
        if (gone.contains(id)) return false;
        try {
            files.writeRecord(record);
            unsaved.remove(id);
            return true;
        } catch (IOException | RuntimeException e) {
            if (!Files.isDirectory(files.dirOf(id))) {
                unsaved.remove(id);
                gone.add(id);
                String message = "The directory of job " + id + " (" + files.dirOf(id) + ") was deleted while the "
                        + "server still lists the job, by its own script or by hand: its state (" + record.state()
                        + ") and results cannot be saved, and a restarted server will not list it. removeJob "
                        + "forgets it now; a job's script should keep to its working directory.";
                LOG.warning(message);
                downstream.warning("JOB_FILES_GONE", message);
                return false;
            }
            // The job goes on (its state is in memory and the client is told), but a restart
            // would not know this change: the client hears of each job the first time.
            boolean newlyUnsaved = unsaved.put(id, record) == null;
            String message = "Could not save the state of job " + id + " (" + record.state() + ") to disk: "
                    + e + ". Jobs go on, but a restart of the server would not know their latest state. Check that "
                    + "the state directory " + files.stateDir() + " is writable and its disk is not full; the "
                    + "server tries again every " + RETRY_SECONDS + " s.";
            LOG.log(newlyUnsaved ? Level.WARNING : Level.FINE, "could not write the record of job " + id + ": " + message);
            if (newlyUnsaved) downstream.recordsNotSaved(message);
            return false;
        }
    }

    private void recovered() {
        String message = "Job states are saved to disk again (state directory " + files.stateDir() + ").";
        LOG.info(message);
        downstream.recordsSavedAgain(message);
    }

    /** Writes what is pending and stops; a server stopping waits for its last records. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        events.add(CLOSE);
        try {
            writer.join(5000);
            if (writer.isAlive()) LOG.warning("job records still pending at exit");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
