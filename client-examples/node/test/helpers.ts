/** Shared helpers of the tests: fixture paths and a recorder of every notification. */
import * as path from 'node:path';
import { BlenderJobsClient, packageRoot } from '../src/client';
import {
    JobLogParams,
    JobProgressParams,
    JobStateChangedParams,
    PublishDiagnosticsParams,
    WorkDoneProgressParams,
} from '../src/protocol';

export const REPO_ROOT = path.resolve(packageRoot(), '..', '..');
export const FIXTURES = path.join(REPO_ROOT, 'test-fixtures');
export const LIBRARY = path.join(FIXTURES, 'blend', 'library.blend');
export const jobScript = (name: string): string => path.join(FIXTURES, 'jobs', name);

export type Recorded =
    | { kind: 'progress'; params: JobProgressParams }
    | { kind: 'state'; params: JobStateChangedParams }
    | { kind: 'workDone'; params: WorkDoneProgressParams }
    | { kind: 'log'; params: JobLogParams }
    | { kind: 'diagnostics'; params: PublishDiagnosticsParams };

/**
 * Records every notification from the moment it is created, in arrival order, so tests can look
 * at notifications that came before the addJob response too.
 */
export class Recorder {
    readonly events: Recorded[] = [];
    private readonly listeners = new Set<() => void>();

    constructor(client: BlenderJobsClient) {
        client.onProgress((params) => this.push({ kind: 'progress', params }));
        client.onStateChanged((params) => this.push({ kind: 'state', params }));
        client.onWorkDoneProgress((params) => this.push({ kind: 'workDone', params }));
        client.onLog((params) => this.push({ kind: 'log', params }));
        client.onDiagnostics((params) => this.push({ kind: 'diagnostics', params }));
    }

    private push(event: Recorded): void {
        this.events.push(event);
        for (const listener of [...this.listeners]) listener();
    }

    /** Events of one job (job/progress and job/stateChanged). */
    forJob(jobId: string): Recorded[] {
        return this.events.filter((e) => (e.kind === 'progress' || e.kind === 'state') && e.params.jobId === jobId);
    }

    /** `$/progress` values of one token. */
    forToken(token: string | number): WorkDoneProgressParams[] {
        return this.events
            .filter((e): e is Extract<Recorded, { kind: 'workDone' }> => e.kind === 'workDone' && e.params.token === token)
            .map((e) => e.params);
    }

    /** The texts of a job's job/log notifications, in order. */
    logOf(jobId: string): string[] {
        return this.events
            .filter((e): e is Extract<Recorded, { kind: 'log' }> => e.kind === 'log' && e.params.jobId === jobId)
            .map((e) => e.params.text);
    }

    /** Resolves with the first recorded event (past or future) that matches. */
    waitFor<T extends Recorded>(predicate: (e: Recorded) => e is T, timeoutMs: number, what: string): Promise<T>;
    waitFor(predicate: (e: Recorded) => boolean, timeoutMs: number, what: string): Promise<Recorded>;
    waitFor(predicate: (e: Recorded) => boolean, timeoutMs: number, what: string): Promise<Recorded> {
        const found = this.events.find(predicate);
        if (found) return Promise.resolve(found);
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.listeners.delete(check);
                reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
            }, timeoutMs);
            const check = () => {
                const hit = this.events.find(predicate);
                if (hit) {
                    clearTimeout(timer);
                    this.listeners.delete(check);
                    resolve(hit);
                }
            };
            this.listeners.add(check);
        });
    }
}

/** A script that reports progress every 0.1 s for about `seconds` seconds. */
export function slowScript(seconds: number): string {
    const steps = Math.round(seconds * 10);
    return [
        'import time',
        `for i in range(${steps}):`,
        '    time.sleep(0.1)',
        `    update_job_progress((i + 1) / ${steps}, "step %d" % (i + 1))`,
        'python_data = {"finished": True}',
    ].join('\n');
}

/**
 * A script that runs long the first time and finishes at once when run again: the first run
 * creates the file `passedData.marker` and sleeps; a resumed run finds it and sets python_data.
 */
export const MARKER_SCRIPT = [
    'import os, time',
    'if os.path.exists(marker):',
    '    python_data = {"resumed": True}',
    'else:',
    '    open(marker, "w").close()',
    '    update_job_progress(0.1, "first run: sleeping")',
    '    time.sleep(60)',
].join('\n');
