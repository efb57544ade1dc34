#!/usr/bin/env node
/**
 * Command-line example: submits jobs to a blender-jobs server, shows a progress bar per job and
 * prints the results.
 *
 *   node dist/src/cli.js                     # the example jobs of test-fixtures/jobs
 *   node dist/src/cli.js a.py b.py           # your own scripts
 *
 * Without scripts it runs remesh.py, bmesh_quad.py, metaballs.py (passedData {delay: 0.5}) and
 * timeout_loop.py (timeout 3 s, which must FAIL with TIMED_OUT), each with a mesh object from
 * test-fixtures/blend/library.blend. Exit code 0 when every job ended as expected, 1 otherwise,
 * 2 for a usage error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlenderJobsClient, packageRoot } from './client';
import { JsonRpcError } from './errors';
import { AddJobParams, FailureKind, JobState, JsonObject, JsonValue, isRestingState } from './protocol';

const USAGE = `usage: blender-jobs-cli [options] [script.py ...]

Without scripts, runs the example jobs of test-fixtures/jobs.

options:
  --jar PATH        server jar (default: $BLENDER_JOBS_JAR or ../../server/target/blender-jobs-server.jar)
  --workers N       Blender workers (default 2)
  --timeout S       per-attempt timeout in seconds for the given scripts (default 0 = none)
  --data JSON       passedData object for the given scripts, e.g. '{"delay": 0.5}'
  --library PATH    passedDataBlocks.library for the given scripts
  --objects A,B     passedDataBlocks.names.objects for the given scripts
  --plain           plain progress lines even on a terminal
  -h, --help        this help
`;

interface Expectation {
    state: JobState;
    failureKind?: FailureKind;
}

interface JobSpec {
    label: string;
    params: AddJobParams;
    expect: Expectation;
}

interface Row {
    spec: JobSpec;
    jobId?: string;
    state: JobState | 'SUBMITTING';
    progress: number;
    message?: string;
    outcome?: string;
    ok?: boolean;
}

interface CliOptions {
    jar?: string;
    workers: number;
    timeout: number;
    data?: JsonObject;
    library?: string;
    objects?: string[];
    plain: boolean;
    scripts: string[];
}

class UsageError extends Error {}

function parseArgs(argv: string[]): CliOptions {
    const options: CliOptions = { workers: 2, timeout: 0, plain: false, scripts: [] };
    const value = (i: number, flag: string): string => {
        const v = argv[i + 1];
        if (v === undefined) throw new UsageError(`${flag} needs a value`);
        return v;
    };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        switch (arg) {
            case '-h':
            case '--help':
                process.stdout.write(USAGE);
                process.exit(0);
                break;
            case '--jar':
                options.jar = value(i++, arg);
                break;
            case '--workers':
                options.workers = Number(value(i++, arg));
                if (!Number.isInteger(options.workers) || options.workers < 1) throw new UsageError('--workers needs a whole number >= 1');
                break;
            case '--timeout':
                options.timeout = Number(value(i++, arg));
                if (!Number.isFinite(options.timeout) || options.timeout < 0) throw new UsageError('--timeout needs a number >= 0');
                break;
            case '--data': {
                let parsed: unknown;
                try {
                    parsed = JSON.parse(value(i++, arg));
                } catch (e) {
                    throw new UsageError(`--data is not valid JSON: ${(e as Error).message}`);
                }
                if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('--data must be a JSON object');
                options.data = parsed as JsonObject;
                break;
            }
            case '--library':
                options.library = path.resolve(value(i++, arg));
                break;
            case '--objects':
                options.objects = value(i++, arg).split(',').map((s) => s.trim()).filter(Boolean);
                break;
            case '--plain':
                options.plain = true;
                break;
            default:
                if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
                options.scripts.push(path.resolve(arg));
        }
    }
    return options;
}

function exampleJobs(): JobSpec[] {
    const fixtures = path.resolve(packageRoot(), '..', '..', 'test-fixtures');
    const library = path.join(fixtures, 'blend', 'library.blend');
    const script = (name: string) => path.join(fixtures, 'jobs', name);
    const blocks = (object: string) => ({ library, names: { objects: [object] } });
    return [
        {
            label: 'remesh.py',
            params: { name: 'remesh', script: script('remesh.py'), passedDataBlocks: blocks('Cube') },
            expect: { state: 'COMPLETED' },
        },
        {
            label: 'bmesh_quad.py',
            params: { name: 'bmesh_quad', script: script('bmesh_quad.py'), passedDataBlocks: blocks('Cube') },
            expect: { state: 'COMPLETED' },
        },
        {
            label: 'metaballs.py',
            params: {
                name: 'metaballs', script: script('metaballs.py'),
                passedData: { delay: 0.5 }, passedDataBlocks: blocks('Tetra'),
            },
            expect: { state: 'COMPLETED' },
        },
        {
            label: 'timeout_loop.py',
            params: { name: 'timeout_loop', script: script('timeout_loop.py'), timeout: 3, passedDataBlocks: blocks('Cube') },
            expect: { state: 'FAILED', failureKind: 'TIMED_OUT' },
        },
    ];
}

function scriptJobs(options: CliOptions): JobSpec[] {
    return options.scripts.map((script) => {
        if (!fs.existsSync(script)) throw new UsageError(`no such script: ${script}`);
        const params: AddJobParams = { name: path.basename(script), script };
        if (options.timeout > 0) params.timeout = options.timeout;
        if (options.data) params.passedData = options.data;
        if (options.library) {
            params.passedDataBlocks = { library: options.library };
            if (options.objects) params.passedDataBlocks.names = { objects: options.objects };
        }
        return { label: path.basename(script), params, expect: { state: 'COMPLETED' } };
    });
}

// ------------------------------------------------------------------------------------- display

const BAR_WIDTH = 24;

function bar(fraction: number): string {
    const filled = Math.round(Math.max(0, Math.min(1, fraction)) * BAR_WIDTH);
    return '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
}

function percent(fraction: number): string {
    return `${Math.floor(fraction * 100)}%`.padStart(4);
}

class ProgressView {
    private drawn = 0;
    private timer: NodeJS.Timeout | undefined;
    private readonly lastPrinted = new Map<Row, string>();
    private readonly labelWidth: number;

    constructor(private readonly rows: Row[], private readonly tty: boolean) {
        this.labelWidth = Math.max(...rows.map((r) => r.spec.label.length), 8);
    }

    private line(row: Row): string {
        const label = row.spec.label.padEnd(this.labelWidth);
        const state = String(row.state).padEnd(10);
        const message = row.outcome ?? row.message ?? '';
        return `${label} [${bar(row.progress)}] ${percent(row.progress)} ${state} ${message}`;
    }

    /** Something changed: redraw (TTY, at most every 50 ms) or print a plain line. */
    update(row: Row): void {
        if (this.tty) {
            if (!this.timer) this.timer = setTimeout(() => { this.timer = undefined; this.redraw(); }, 50);
            return;
        }
        // Plain output: one line per state change and per 25 % step, so logs stay short.
        const key = `${row.state} ${Math.floor(row.progress * 4)} ${row.outcome ?? ''}`;
        if (this.lastPrinted.get(row) === key) return;
        this.lastPrinted.set(row, key);
        const id = row.jobId ? ` ${row.jobId}` : '';
        process.stdout.write(`[${row.spec.label}${id}] ${percent(row.progress).trim()} ${row.state}` +
            `${row.outcome ? ` ${row.outcome}` : row.message ? ` ${row.message}` : ''}\n`);
    }

    redraw(): void {
        if (!this.tty) return;
        const width = process.stdout.columns || 120;
        let out = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
        for (const row of this.rows) out += `\r\x1b[2K${this.line(row).slice(0, width - 1)}\n`;
        process.stdout.write(out);
        this.drawn = this.rows.length;
    }

    finish(): void {
        if (this.timer) clearTimeout(this.timer);
        this.timer = undefined;
        this.redraw();
    }
}

// ----------------------------------------------------------------------------------------- run

function short(value: JsonValue, max = 160): string {
    const text = JSON.stringify(value);
    return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

async function runJob(client: BlenderJobsClient, row: Row, view: ProgressView): Promise<void> {
    const { spec } = row;
    try {
        const added = await client.addJob(spec.params);
        row.jobId = added.jobId;
        row.state = client.lastKnownState(added.jobId)?.state ?? added.state;
        view.update(row);
        const final = await client.waitForJob(added.jobId, 10 * 60_000);
        row.state = final.state;
        const matches = final.state === spec.expect.state &&
            (spec.expect.failureKind === undefined || final.error?.kind === spec.expect.failureKind);
        row.ok = matches;
        if (final.state === 'COMPLETED') {
            row.progress = 1;
            const data = await client.getPythonData(added.jobId);
            const blocks = await client.getDataBlocks(added.jobId);
            const names = Object.entries(blocks.blocks).map(([kind, list]) => `${kind}: ${list.join(', ')}`).join('; ');
            row.outcome = `python_data=${short(data)}${names ? `  data_blocks=${names}` : ''}`;
        } else if (final.state === 'FAILED') {
            row.outcome = `${final.error?.kind ?? '?'}: ${final.error?.message ?? ''}`;
        } else if (final.state === 'INTERRUPTED') {
            row.outcome = `interrupted: ${final.error?.message ?? 'the server stopped'}`;
        } else {
            row.outcome = 'canceled';
        }
        if (!matches) {
            row.outcome += `  (expected ${spec.expect.state}${spec.expect.failureKind ? ` ${spec.expect.failureKind}` : ''})`;
        }
    } catch (error) {
        row.ok = false;
        row.state = row.state === 'SUBMITTING' ? 'FAILED' : row.state;
        row.outcome = error instanceof JsonRpcError
            ? `error ${error.code}: ${error.message}`
            : `error: ${(error as Error).message}`;
    }
    view.update(row);
}

async function main(argv: string[]): Promise<number> {
    let options: CliOptions;
    let specs: JobSpec[];
    try {
        options = parseArgs(argv);
        specs = options.scripts.length > 0 ? scriptJobs(options) : exampleJobs();
    } catch (error) {
        if (error instanceof UsageError) {
            process.stderr.write(`blender-jobs-cli: ${error.message}\n\n${USAGE}`);
            return 2;
        }
        throw error;
    }

    const tty = Boolean(process.stdout.isTTY) && !options.plain;
    const client = new BlenderJobsClient({
        jar: options.jar,
        workers: options.workers,
        onStderrLine: process.env.BLENDER_JOBS_DEBUG ? (line) => process.stderr.write(`[server] ${line}\n`) : undefined,
    });
    const interrupt = () => {
        process.stderr.write('\ninterrupted: stopping the server (its unfinished jobs become INTERRUPTED)\n');
        void client.dispose().finally(() => process.exit(130));
    };
    process.once('SIGINT', interrupt);

    try {
        const info = await client.start();
        process.stdout.write(`blender-jobs ${info.serverInfo.version}, Blender ${info.blender.version ?? '(none)'}` +
            `, ${info.workers} worker(s)\n`);
        if (!info.blender.available) {
            process.stderr.write(`no usable Blender: ${info.blender.problem ?? 'unknown reason'}\n`);
            return 1;
        }

        const rows: Row[] = specs.map((spec) => ({ spec, state: 'SUBMITTING', progress: 0 }));
        const view = new ProgressView(rows, tty);
        const byJob = (jobId: string) => rows.find((r) => r.jobId === jobId);
        client.onProgress((p) => {
            const row = byJob(p.jobId);
            if (!row) return; // before the addJob response: the state catches up below
            row.progress = p.progress;
            row.message = p.message;
            view.update(row);
        });
        client.onStateChanged((s) => {
            const row = byJob(s.jobId);
            // Resting states (final or INTERRUPTED) are shown by runJob, together with the results.
            if (!row || row.ok !== undefined || isRestingState(s.state)) return;
            row.state = s.state;
            if (s.state === 'QUEUED' || (s.state === 'ACTIVE' && s.previousState === 'QUEUED' && s.attempt > 1)) {
                row.progress = 0; // a retry restarts progress
            }
            view.update(row);
        });
        view.redraw();

        await Promise.all(rows.map((row) => runJob(client, row, view)));
        view.finish();

        const good = rows.filter((r) => r.ok).length;
        process.stdout.write('\nresults:\n');
        for (const row of rows) {
            process.stdout.write(`  ${row.ok ? 'ok  ' : 'FAIL'} ${row.spec.label} ${row.jobId ?? ''}: ${row.state}` +
                ` ${row.outcome ?? ''}\n`);
        }
        process.stdout.write(`${good} of ${rows.length} jobs ended as expected\n`);
        return good === rows.length ? 0 : 1;
    } finally {
        process.removeListener('SIGINT', interrupt);
        await client.dispose();
    }
}

main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
}, (error: unknown) => {
    process.stderr.write(`blender-jobs-cli: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
});
