#!/usr/bin/env node
/**
 * Command-line example: submits scripts as jobs to a blender-jobs server, shows a progress bar per
 * job and prints the results.
 *
 *   blender-jobs-cli my_job.py other.py              # each script becomes a job
 *   blender-jobs-cli --data '{"size": 2}' --library scene.blend --objects Cube job.py
 *
 * The server is found like every client finds it (--server, $BLENDER_JOBS_SERVER,
 * blender-jobs-server on PATH, a checkout's build output); server flags such as --blender and
 * --workers are passed on. The current folder (or --workspace) names the workspace, so the server
 * keeps the jobs and their results after the command ends. Exit code 0 when every job completed
 * (or ended as --expect says), 1 otherwise, 2 for a usage error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlenderJobsClient } from './client';
import { JsonRpcError } from './errors';
import { AddJobParams, FAILURE_KINDS, FailureKind, JOB_STATES, JobState, JsonObject, JsonValue, isRestingState } from './protocol';
import { ServerNotFoundError } from './server';

const USAGE = `usage: blender-jobs-cli [options] script.py [script.py ...]

Runs each script as a job in a warm background Blender and prints its results.

job options (for every script given):
  --data JSON|@FILE     passedData: a JSON object whose keys become globals of the script
  --library PATH        passedDataBlocks.library: a .blend whose blocks are appended first
  --objects A,B         passedDataBlocks.names.objects (default: every block of --library)
  --blend PATH          run the scripts in (a private copy of) this .blend
  --timeout S           seconds per attempt (default 0 = none)
  --attempts N          attempts before a job fails (default 1)
  --expect STATE[:KIND] the state every job should end in (default COMPLETED), e.g. FAILED:TIMED_OUT

server options (passed on to the server):
  --server CMD          the server command (default: $BLENDER_JOBS_SERVER, then blender-jobs-server
                        on PATH, then a checkout's build output)
  --jar PATH            run this server jar with java instead
  --blender PATH        the Blender the workers run (default: the server finds one)
  --workers N           Blender workers (default 2)
  --workspace DIR       the folder whose jobs these are (default: the current folder)
  --state-dir DIR       keep the jobs in this directory instead of the workspace's
  --max-jobs-per-worker N, --max-worker-memory MB, --retain-jobs N, --retain-days D,
  --progress-interval MS, --worker-start-timeout S, --max-message-size MB,
  --log-level LEVEL, --log-file FILE, --resume
  -- ARGS...            everything after -- goes to the server as it is

output:
  --plain               plain progress lines even on a terminal
  -h, --help            this help
`;

/** Server flags the CLI passes on unchanged: name -> takes a value. */
const SERVER_FLAGS: Record<string, boolean> = {
    '--max-jobs-per-worker': true, '--max-worker-memory': true, '--retain-jobs': true, '--retain-days': true,
    '--progress-interval': true, '--worker-start-timeout': true, '--max-message-size': true,
    '--log-level': true, '--log-file': true, '--resume': false,
};

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
    server?: string;
    jar?: string;
    blender?: string;
    workers: number;
    workspace?: string;
    stateDir?: string;
    serverArgs: string[];
    timeout: number;
    attempts?: number;
    data?: JsonObject;
    library?: string;
    objects?: string[];
    blend?: string;
    expect: Expectation;
    plain: boolean;
    scripts: string[];
}

class UsageError extends Error {}

function parseData(text: string): JsonObject {
    let source = '--data';
    if (text.startsWith('@')) {
        source = text.slice(1);
        try {
            text = fs.readFileSync(source, 'utf8');
        } catch (e) {
            throw new UsageError(`--data @${source}: cannot read it (${(e as Error).message})`);
        }
    }
    let parsed: unknown;
    try {
        parsed = JSON.parse(text);
    } catch (e) {
        throw new UsageError(`${source} is not valid JSON: ${(e as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`${source} must be a JSON object`);
    return parsed as JsonObject;
}

function parseExpect(text: string): Expectation {
    const [state, kind] = text.split(':');
    if (!(JOB_STATES as readonly string[]).includes(state)) throw new UsageError(`--expect: ${state} is not one of ${JOB_STATES.join(', ')}`);
    if (kind !== undefined && !(FAILURE_KINDS as readonly string[]).includes(kind)) {
        throw new UsageError(`--expect: ${kind} is not one of ${FAILURE_KINDS.join(', ')}`);
    }
    return { state: state as JobState, failureKind: kind as FailureKind | undefined };
}

function parseArgs(argv: string[]): CliOptions {
    const options: CliOptions = { workers: 2, timeout: 0, plain: false, scripts: [], serverArgs: [], expect: { state: 'COMPLETED' } };
    const value = (i: number, flag: string): string => {
        const v = argv[i + 1];
        if (v === undefined) throw new UsageError(`${flag} needs a value`);
        return v;
    };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === '--') {
            options.serverArgs.push(...argv.slice(i + 1));
            break;
        }
        if (arg in SERVER_FLAGS) {
            options.serverArgs.push(arg);
            if (SERVER_FLAGS[arg]) options.serverArgs.push(value(i++, arg));
            continue;
        }
        switch (arg) {
            case '-h':
            case '--help':
                process.stdout.write(USAGE);
                process.exit(0);
                break;
            case '--server':
                options.server = value(i++, arg);
                break;
            case '--jar':
                options.jar = path.resolve(value(i++, arg));
                break;
            case '--blender':
                options.blender = value(i++, arg);
                break;
            case '--workspace':
                options.workspace = path.resolve(value(i++, arg));
                break;
            case '--state-dir':
                options.stateDir = path.resolve(value(i++, arg));
                break;
            case '--workers':
                options.workers = Number(value(i++, arg));
                if (!Number.isInteger(options.workers) || options.workers < 1) throw new UsageError('--workers needs a whole number >= 1');
                break;
            case '--timeout':
                options.timeout = Number(value(i++, arg));
                if (!Number.isFinite(options.timeout) || options.timeout < 0) throw new UsageError('--timeout needs a number >= 0');
                break;
            case '--attempts':
                options.attempts = Number(value(i++, arg));
                if (!Number.isInteger(options.attempts) || options.attempts < 1) throw new UsageError('--attempts needs a whole number >= 1');
                break;
            case '--data':
                options.data = parseData(value(i++, arg));
                break;
            case '--library':
                options.library = path.resolve(value(i++, arg));
                break;
            case '--objects':
                options.objects = value(i++, arg).split(',').map((s) => s.trim()).filter(Boolean);
                break;
            case '--blend':
                options.blend = path.resolve(value(i++, arg));
                break;
            case '--expect':
                options.expect = parseExpect(value(i++, arg));
                break;
            case '--plain':
                options.plain = true;
                break;
            default:
                if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
                options.scripts.push(path.resolve(arg));
        }
    }
    if (options.scripts.length === 0) throw new UsageError('give at least one script');
    if (options.objects && !options.library) throw new UsageError('--objects selects blocks of --library; give --library too');
    return options;
}

function scriptJobs(options: CliOptions): JobSpec[] {
    return options.scripts.map((script) => {
        if (!fs.existsSync(script)) throw new UsageError(`no such script: ${script}`);
        const params: AddJobParams = { name: path.basename(script), script };
        if (options.timeout > 0) params.timeout = options.timeout;
        if (options.attempts !== undefined) params.maxAttempts = options.attempts;
        if (options.data) params.passedData = options.data;
        if (options.blend) params.blendFile = options.blend;
        if (options.library) {
            params.passedDataBlocks = { library: options.library };
            if (options.objects) params.passedDataBlocks.names = { objects: options.objects };
        }
        return { label: path.basename(script), params, expect: options.expect };
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
        specs = scriptJobs(options);
    } catch (error) {
        if (error instanceof UsageError) {
            process.stderr.write(`blender-jobs-cli: ${error.message}\n\n${USAGE}`);
            return 2;
        }
        throw error;
    }

    const tty = Boolean(process.stdout.isTTY) && !options.plain;
    const client = new BlenderJobsClient({
        server: options.server,
        jar: options.jar,
        workers: options.workers,
        blender: options.blender,
        serverArgs: options.serverArgs,
        stateDir: options.stateDir,
        workspace: options.stateDir ? undefined : options.workspace ?? process.cwd(),
        onStderrLine: process.env.BLENDER_JOBS_DEBUG ? (line) => process.stderr.write(`[server] ${line}\n`) : undefined,
    });
    const interrupt = () => {
        process.stderr.write('\ninterrupted: stopping the server (its unfinished jobs become INTERRUPTED)\n');
        void client.dispose().finally(() => process.exit(130));
    };
    process.once('SIGINT', interrupt);

    try {
        let info;
        try {
            info = await client.start();
        } catch (error) {
            if (error instanceof ServerNotFoundError) {
                process.stderr.write(`blender-jobs-cli: ${error.message}\n`);
                return 1;
            }
            throw error;
        }
        process.stdout.write(`blender-jobs ${info.serverInfo.version}, Blender ${info.blender.version ?? '(none)'}` +
            `, ${info.workers} worker(s); jobs kept in ${info.stateDir}` +
            `${info.stateDirTemporary ? ` (temporary: ${info.stateDirNote ?? 'deleted when the server stops'})` : ''}\n`);
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
