/**
 * What the extension knows of the server's jobs, kept from `job/stateChanged` and `job/removed`
 * (seeded by `listJobs` when a server starts): the status bar counts, the pickers' lists, and
 * waiting for a job to come to rest. A job's notifications may arrive before the `addJob` answer
 * that names it (protocol.md, Ordering), so every change is kept, and a wait that starts late
 * still sees the state the job rests in. No vscode import.
 */
import { isResting, JobState, JobStateChangedParams, JobSummary } from './wire';

export interface JobEntry {
    jobId: string;
    name?: string;
    state: JobState;
    /** The latest job/stateChanged (absent for a job known only from listJobs). */
    change?: JobStateChangedParams;
    /** Order of first sight: larger is newer. */
    seen: number;
    /** job/stateChanged notifications received for it. */
    changes: number;
}

export interface Counts {
    queued: number;
    active: number;
    interrupted: number;
    total: number;
}

type Waiter = { jobId: string; after: number; resolve: (change: JobStateChangedParams | JobEntry) => void };

export class JobTable {
    private readonly jobs = new Map<string, JobEntry>();
    private readonly waiters = new Set<Waiter>();
    private readonly listeners = new Set<() => void>();
    private counter = 0;

    /** Replaces the table with the server's list (a new server, or one restarted). */
    seed(summaries: readonly JobSummary[]): void {
        this.jobs.clear();
        for (const job of summaries) {
            this.jobs.set(job.jobId, { jobId: job.jobId, name: job.name, state: job.state, seen: ++this.counter, changes: 0 });
        }
        this.changed();
        for (const waiter of [...this.waiters]) {
            const job = this.jobs.get(waiter.jobId);
            if (job && this.rests(job, waiter.after)) this.settle(waiter, job);
        }
    }

    apply(change: JobStateChangedParams): void {
        const known = this.jobs.get(change.jobId);
        this.jobs.set(change.jobId, {
            jobId: change.jobId,
            name: change.name ?? known?.name,
            state: change.state,
            change,
            seen: known?.seen ?? ++this.counter,
            changes: (known?.changes ?? 0) + 1,
        });
        this.changed();
        const job = this.jobs.get(change.jobId)!;
        for (const waiter of [...this.waiters]) {
            if (waiter.jobId === change.jobId && this.rests(job, waiter.after)) this.settle(waiter, change);
        }
    }

    remove(jobId: string): void {
        if (this.jobs.delete(jobId)) this.changed();
    }

    get(jobId: string): JobEntry | undefined {
        return this.jobs.get(jobId);
    }

    /** Newest first. */
    list(filter: (job: JobEntry) => boolean = () => true): JobEntry[] {
        return [...this.jobs.values()].filter(filter).sort((a, b) => b.seen - a.seen);
    }

    counts(): Counts {
        const counts: Counts = { queued: 0, active: 0, interrupted: 0, total: this.jobs.size };
        for (const job of this.jobs.values()) {
            if (job.state === 'QUEUED') counts.queued++;
            else if (job.state === 'ACTIVE') counts.active++;
            else if (job.state === 'INTERRUPTED') counts.interrupted++;
        }
        return counts;
    }

    /** How many job/stateChanged notifications of the job have arrived (0 for an unknown job). */
    changeCount(jobId: string): number {
        return this.jobs.get(jobId)?.changes ?? 0;
    }

    /**
     * Resolves with the job's resting state change (COMPLETED, FAILED, CANCELED or INTERRUPTED),
     * at once if the job already rests; a job known only from listJobs resolves with its entry.
     * `after`: rest only counts after that many state changes, so a resumed job (resting as
     * INTERRUPTED until its QUEUED arrives) waits for its next rest: pass changeCount() taken
     * before resuming. Its notifications may come before the resume answer and still count.
     */
    waitForRest(jobId: string, after = -1): Promise<JobStateChangedParams | JobEntry> {
        const job = this.jobs.get(jobId);
        if (job && this.rests(job, after)) return Promise.resolve(job.change ?? job);
        return new Promise((resolve) => this.waiters.add({ jobId, after, resolve }));
    }

    /**
     * The server stopped for good (the extension stops it, e.g. when a setting changes): every
     * wait ends with what is known of its job, which may not be a resting state.
     */
    releaseWaiters(): void {
        for (const waiter of [...this.waiters]) {
            const job = this.jobs.get(waiter.jobId);
            this.settle(waiter, job ?? { jobId: waiter.jobId, state: 'INTERRUPTED', seen: 0, changes: 0 });
        }
    }

    onDidChange(listener: () => void): { dispose(): void } {
        this.listeners.add(listener);
        return { dispose: () => this.listeners.delete(listener) };
    }

    private rests(job: JobEntry, after: number): boolean {
        return isResting(job.state) && job.changes > after;
    }

    private settle(waiter: Waiter, value: JobStateChangedParams | JobEntry): void {
        this.waiters.delete(waiter);
        waiter.resolve(value);
    }

    private changed(): void {
        for (const listener of [...this.listeners]) listener();
    }
}
