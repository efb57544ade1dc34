/**
 * BlenderJobsClient: starts the blender-jobs server as a child process and talks JSON-RPC 2.0 to
 * it over stdio (LSP base-protocol framing) with vscode-jsonrpc.
 *
 *     const client = new BlenderJobsClient({ workers: 2 });
 *     await client.start();
 *     const job = await client.addJob({ scriptText: "python_data = {'answer': 42}" });
 *     const final = await client.waitForJob(job.jobId, 60_000);
 *     console.log(final.state, await client.getPythonData(job.jobId));
 *     await client.dispose();
 *
 * With a workspace (or `stateDir`) the server keeps its jobs in a directory that outlives it:
 * `dispose()` (shutdown) leaves unfinished jobs INTERRUPTED, and a later server on the same
 * directory lists them (`initialize.recoveredJobs`) and runs them again with `resumeJob` / `resumeAll`.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import {
    Disposable,
    Emitter,
    Event,
    MessageConnection,
    NotificationType,
    NotificationType0,
    RequestType,
    RequestType0,
    ResponseError,
    StreamMessageReader,
    StreamMessageWriter,
    createMessageConnection,
} from 'vscode-jsonrpc/node';
import {
    BlenderJobsError,
    JobWaitTimeoutError,
    JsonRpcError,
    RequestTimeoutError,
    ServerExitedError,
} from './errors';
import {
    AddJobParams,
    AddJobRequest,
    AddJobResult,
    CancelAllRequest,
    CancelAllResult,
    CancelJobRequest,
    CancelJobResult,
    ExitNotification,
    FollowLogRequest,
    FollowLogResult,
    GetDataBlocksRequest,
    GetDataBlocksResult,
    GetJobRequest,
    GetJobResult,
    GetProgressRequest,
    GetProgressResult,
    GetPythonDataRequest,
    GetPythonDataResult,
    GetStatsRequest,
    GetStatsResult,
    InitializeParams,
    InitializeRequest,
    InitializeResult,
    InitializedNotification,
    JobLogNotification,
    JobLogParams,
    JobProgressNotification,
    JobRemovedNotification,
    JobRemovedParams,
    JobProgressParams,
    JobStateChangedNotification,
    JobStateChangedParams,
    ListJobsParams,
    ListJobsRequest,
    ListJobsResult,
    ProgressToken,
    PublishDiagnosticsNotification,
    PublishDiagnosticsParams,
    RemoveJobRequest,
    RemoveJobResult,
    ResumeAllRequest,
    ResumeAllResult,
    ResumeJobRequest,
    ResumeJobResult,
    ShowMessageNotification,
    ShowMessageParams,
    ShutdownRequest,
    UnfollowLogRequest,
    UnfollowLogResult,
    WorkDoneProgressCancelNotification,
    WorkDoneProgressCreateRequest,
    WorkDoneProgressParams,
    WorkspaceFolder,
    isRestingState,
} from './protocol';
import { ServerLocation, findServer } from './server';

/** The JVM flags the server is normally started with. */
export const DEFAULT_JVM_ARGS: readonly string[] = ['-XX:+UseSerialGC', '-Xms32m', '-Xmx512m', '-Xmn24m', '-XX:TieredStopAtLevel=1'];

export interface BlenderJobsClientOptions {
    /**
     * The server command: the launcher's path (`.../bin/blender-jobs-server`), a command line, or an
     * argument list; a lone `.jar` runs with java. Default: found by `findServer` ($BLENDER_JOBS_SERVER,
     * then `blender-jobs-server` on PATH, then a checkout's build output).
     */
    server?: string | string[];
    /** The server jar, run with java and `jvmArgs` (an explicit option, like `server`). */
    jar?: string;
    /** Checkout folders whose build output the lookup tries (before the current folder and its parents). */
    checkouts?: string[];
    /** The java executable. Default: $BLENDER_JOBS_JAVA, $JAVA_HOME/bin/java if it exists, else `java` from PATH (given to a launcher as $BLENDER_JOBS_JAVA). */
    java?: string;
    /** JVM flags before `-jar`. Default: DEFAULT_JVM_ARGS (given to a launcher as $BLENDER_JOBS_JAVA_OPTS, after its own). */
    jvmArgs?: string[];
    /** `--workers N`. Default: the server's default (number of CPU cores). */
    workers?: number;
    /** `--blender PATH`: the Blender the workers run. Default: the server finds one. */
    blender?: string;
    /** More server flags, e.g. `['--blender', '/opt/blender/blender', '--log-level', 'FINE']`. */
    serverArgs?: string[];
    /**
     * The project the jobs belong to: a folder path or a URI. Sent in `initialize` as `rootUri` and
     * as the one `workspaceFolders` entry; the server then keeps its jobs in that workspace's state
     * directory (`<data home>/blender-jobs/workspaces/<hash>`), which outlives it. Without a
     * workspace (or `stateDir`) the server's jobs end with it.
     */
    workspace?: string;
    /** LSP workspace folders sent as they are (an editor's open folders); the first names the workspace. Overrides `workspace`. */
    workspaceFolders?: WorkspaceFolder[];
    /** `--state-dir DIR`: the state directory, whatever the workspace. */
    stateDir?: string;
    /** `--resume`: queue the jobs an earlier server left INTERRUPTED as soon as initialize opens the state directory. */
    resume?: boolean;
    /** `--retain-jobs N`: finished (and interrupted) jobs kept; 0 = no limit. */
    retainJobs?: number;
    /** `--retain-days DAYS`: days a finished (or interrupted) job is kept; 0 = no limit. */
    retainDays?: number;
    /** The server's working directory (relative `script` paths resolve against it). */
    cwd?: string;
    /** The server's environment. Default: this process's. */
    env?: NodeJS.ProcessEnv;
    /** Default timeout of every request except initialize, in ms. Default 30 000. */
    requestTimeoutMs?: number;
    /** Timeout of initialize (the JVM starting), in ms. Default 60 000. */
    initializeTimeoutMs?: number;
    /** How long dispose() waits for the server to exit after `exit`, in ms. Default 10 000. */
    exitTimeoutMs?: number;
    /** Sent as `clientInfo` in initialize. */
    clientInfo?: { name: string; version?: string };
    /** Called with every line the server writes to stderr (its log). They are drained anyway. */
    onStderrLine?: (line: string) => void;
}

/** The URI `initialize` names a workspace with: a `file://` URI for a path, a URI unchanged. */
export function workspaceUri(workspace: string): string {
    // A URI has a scheme of two or more characters ("C:\\x" is a Windows path).
    if (/^[A-Za-z][A-Za-z0-9+.-]+:\//.test(workspace)) return workspace;
    return pathToFileURL(path.resolve(workspace)).href;
}

/**
 * `BLENDER_JOBS_JAR`, else the build output relative to this package when it sits in a checkout
 * (client-examples/node). The tests use it; clients find the server with `findServer`.
 */
export function defaultJarPath(): string {
    const fromEnv = process.env.BLENDER_JOBS_JAR;
    if (fromEnv) return path.resolve(fromEnv);
    return path.resolve(packageRoot(), '..', '..', 'server', 'target', 'blender-jobs-server.jar');
}

/** client-examples/node, found from this module (src/ or dist/src/). */
export function packageRoot(): string {
    let dir = __dirname;
    for (let i = 0; i < 5; i++) {
        if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
        dir = path.dirname(dir);
    }
    return path.resolve(__dirname, '..', '..');
}

function defaultJava(): string {
    if (process.env.BLENDER_JOBS_JAVA) return process.env.BLENDER_JOBS_JAVA;
    const home = process.env.JAVA_HOME;
    if (home) {
        const candidate = path.join(home, 'bin', process.platform === 'win32' ? 'java.exe' : 'java');
        if (fs.existsSync(candidate)) return candidate;
    }
    return 'java';
}

interface Waiter {
    resolve(value: JobStateChangedParams): void;
    reject(error: Error): void;
}

const STDERR_TAIL_LINES = 50;
const FINAL_CACHE_SIZE = 10_000;
/** How long waitForJob waits for a resting job/stateChanged after getJob showed the resting state. */
const FINAL_NOTIFICATION_GRACE_MS = 2_000;
/** After the server's output closed: how long its last messages may take to be handled. */
const DRAIN_LIMIT_MS = 2_000;

/**
 * Counts the complete `Content-Length` frames in the server's output, so that the client can tell
 * when vscode-jsonrpc (which decodes and dispatches them asynchronously) has handled them all.
 */
class FrameCounter {
    count = 0;
    private header: Buffer = Buffer.alloc(0);
    private bodyLeft = 0;

    push(chunk: Buffer): void {
        let data = chunk;
        while (data.length > 0) {
            if (this.bodyLeft > 0) {
                const n = Math.min(this.bodyLeft, data.length);
                this.bodyLeft -= n;
                data = data.subarray(n);
                if (this.bodyLeft === 0) this.count++;
                continue;
            }
            this.header = Buffer.concat([this.header, data]);
            const end = this.header.indexOf('\r\n\r\n');
            if (end < 0) return;
            const length = /content-length:\s*(\d+)/i.exec(this.header.subarray(0, end).toString('latin1'));
            data = this.header.subarray(end + 4);
            this.header = Buffer.alloc(0);
            this.bodyLeft = length ? Number(length[1]) : 0;
        }
    }
}

export class BlenderJobsClient {
    readonly options: Readonly<BlenderJobsClientOptions>;
    /** The initialize result, once start() has finished. */
    serverDescription: InitializeResult | undefined;

    /** The command line the server was started with (after start()). */
    command: string[] | undefined;
    private location: ServerLocation | undefined;
    private child: ChildProcessWithoutNullStreams | undefined;
    private connection: MessageConnection | undefined;
    private exited: ServerExitedError | undefined;
    private exitedPromise: Promise<never> | undefined;
    private closedPromise: Promise<void> | undefined;
    private readonly stderrTail: string[] = [];
    private readonly progressEmitter = new Emitter<JobProgressParams>();
    private readonly stateEmitter = new Emitter<JobStateChangedParams>();
    private readonly workDoneEmitter = new Emitter<WorkDoneProgressParams>();
    private readonly messageEmitter = new Emitter<ShowMessageParams>();
    private readonly removedEmitter = new Emitter<JobRemovedParams>();
    private readonly logEmitter = new Emitter<JobLogParams>();
    private readonly diagnosticsEmitter = new Emitter<PublishDiagnosticsParams>();
    /** Latest job/stateChanged per job, kept so no notification is lost to a race. */
    private readonly lastState = new Map<string, JobStateChangedParams>();
    /** Resting (final or INTERRUPTED) job/stateChanged per job (insertion-ordered, bounded). */
    private readonly restingStates = new Map<string, JobStateChangedParams>();
    /**
     * Jobs of this server's life: added or resumed by this client, or named by one of its
     * job/stateChanged notifications. Only for them is a resting state's notification on its
     * way; a job that came to rest under an earlier server never gets one.
     */
    private readonly sessionJobs = new Set<string>();
    private readonly waiters = new Map<string, Set<Waiter>>();
    private tokenCounter = 0;
    private disposing: Promise<number | null> | undefined;

    constructor(options: BlenderJobsClientOptions = {}) {
        this.options = { ...options };
    }

    /** Fired for every `job/progress` notification. */
    get onProgress(): Event<JobProgressParams> {
        return this.progressEmitter.event;
    }

    /** Fired for every `job/stateChanged` notification. */
    get onStateChanged(): Event<JobStateChangedParams> {
        return this.stateEmitter.event;
    }

    /**
     * Fired for every LSP `$/progress` notification: on the token the server creates for a job
     * added with `workDoneProgress: true` (`workDoneTokenOf(jobId)`), and on an addJob's own
     * `workDoneToken` (begin and end, before its answer).
     */
    get onWorkDoneProgress(): Event<WorkDoneProgressParams> {
        return this.workDoneEmitter.event;
    }

    /**
     * Fired for every `job/log` notification: text a job followed with followLog() printed, in
     * order, after the followLog answer. The answer's `text` plus these texts is the job's log.
     */
    get onLog(): Event<JobLogParams> {
        return this.logEmitter.event;
    }

    /**
     * Fired for every LSP `textDocument/publishDiagnostics`: the failing line of a job's script
     * file; an empty `diagnostics` clears them (the script's next completed job).
     */
    get onDiagnostics(): Event<PublishDiagnosticsParams> {
        return this.diagnosticsEmitter.event;
    }

    /** Fired for every `job/removed` (removeJob, replaceExisting, retention): the job is gone. */
    get onJobRemoved(): Event<JobRemovedParams> {
        return this.removedEmitter.event;
    }

    /**
     * Fired for every LSP `window/showMessage`: job states that could not be saved to disk
     * (`kind` RECORDS_NOT_SAVED, a warning) and their recovery (RECORDS_SAVED_AGAIN).
     */
    get onServerMessage(): Event<ShowMessageParams> {
        return this.messageEmitter.event;
    }

    /** The server's process id, once started. */
    get pid(): number | undefined {
        return this.child?.pid;
    }

    /** The last lines the server wrote to stderr. */
    get serverLog(): readonly string[] {
        return this.stderrTail;
    }

    /** Where the server is (found when start() runs, or by this getter). Throws ServerNotFoundError. */
    get serverLocation(): ServerLocation {
        if (!this.location) {
            this.location = findServer({
                server: this.options.server, jar: this.options.jar, env: this.options.env,
                checkouts: [...(this.options.checkouts ?? []), path.resolve(packageRoot(), '..', '..')],
            });
        }
        return this.location;
    }

    /** The jar the server runs from, or undefined when it runs through a launcher. */
    get jarPath(): string | undefined {
        return this.serverLocation.jar;
    }

    // ------------------------------------------------------------------------------ lifecycle

    /**
     * Spawns the server, sends `initialize` (declaring work-done progress support) and
     * `initialized`, and returns the server's description.
     */
    async start(): Promise<InitializeResult> {
        if (this.child) throw new BlenderJobsError('start() was already called');
        const location = this.serverLocation;
        let program: string;
        let args: string[];
        let env = this.options.env ?? process.env;
        if (location.jar) {
            program = this.options.java ?? defaultJava();
            args = [...(this.options.jvmArgs ?? DEFAULT_JVM_ARGS), '-jar', location.jar];
        } else {
            [program, ...args] = location.command!;
            // The launcher sets the JVM flags and finds java itself; pass the caller's choices on.
            if (this.options.java || this.options.jvmArgs) {
                env = { ...env };
                if (this.options.java) env.BLENDER_JOBS_JAVA = this.options.java;
                if (this.options.jvmArgs) env.BLENDER_JOBS_JAVA_OPTS = this.options.jvmArgs.join(' ');
            }
        }
        const { workers, stateDir, retainJobs, retainDays } = this.options;
        if (workers !== undefined) args.push('--workers', String(workers));
        if (this.options.blender !== undefined) args.push('--blender', this.options.blender);
        if (stateDir !== undefined) args.push('--state-dir', path.resolve(stateDir));
        if (retainJobs !== undefined) args.push('--retain-jobs', String(retainJobs));
        if (retainDays !== undefined) args.push('--retain-days', String(retainDays));
        if (this.options.resume) args.push('--resume');
        args.push(...(this.options.serverArgs ?? []));

        this.command = [program, ...args];
        const child = spawn(program, args, {
            cwd: this.options.cwd,
            env,
            stdio: ['pipe', 'pipe', 'pipe'],
        });
        this.child = child;

        let rejectExited!: (error: Error) => void;
        this.exitedPromise = new Promise<never>((_, reject) => { rejectExited = reject; });
        this.exitedPromise.catch(() => undefined); // observed by whoever races against it
        const frames = new FrameCounter();
        child.stdout.on('data', (chunk: Buffer) => frames.push(chunk));
        let handled = 0;
        this.closedPromise = new Promise<void>((resolve) => {
            const finish = (error: ServerExitedError) => {
                if (this.exited) return;
                this.exited = error;
                rejectExited(error);
                this.failAllWaiters(error);
                this.connection?.dispose();
                resolve();
            };
            child.once('error', (err) => finish(new ServerExitedError(
                `the server could not be started (${err.message})`, null, null, this.stderrTail)));
            child.once('close', (code, signal) => {
                // The output is complete, but vscode-jsonrpc hands messages over one per tick: let
                // the last ones (e.g. the INTERRUPTED notifications of a shutdown) reach their
                // handlers before the connection is disposed and waiters are rejected.
                const error = new ServerExitedError('the server exited', code, signal, this.stderrTail);
                const deadline = Date.now() + DRAIN_LIMIT_MS;
                const drain = () => {
                    if (handled < frames.count && Date.now() < deadline) setImmediate(drain);
                    else finish(error);
                };
                drain();
            });
        });
        child.stdin.on('error', () => undefined); // EPIPE after the server died: reported via 'close'

        const lines = readline.createInterface({ input: child.stderr, crlfDelay: Infinity });
        lines.on('line', (line) => {
            this.stderrTail.push(line);
            if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
            this.options.onStderrLine?.(line);
        });

        const connection = createMessageConnection(
            new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin), undefined, {
                messageStrategy: {
                    handleMessage: (message, next) => {
                        try {
                            next(message);
                        } finally {
                            handled++;
                        }
                    },
                },
            });
        this.connection = connection;
        connection.onNotification(JobProgressNotification.type, (p) => this.progressEmitter.fire(p));
        connection.onNotification(JobStateChangedNotification.type, (p) => this.handleStateChanged(p));
        connection.onNotification(ShowMessageNotification.type, (p) => this.messageEmitter.fire(p));
        connection.onNotification(JobLogNotification.type, (p) => this.logEmitter.fire(p));
        connection.onNotification(PublishDiagnosticsNotification.type, (p) => this.diagnosticsEmitter.fire(p));
        connection.onNotification(JobRemovedNotification.type, (p) => {
            // The server forgot the job: so does this client (a later waitForJob rejects with 1001).
            this.restingStates.delete(p.jobId);
            this.lastState.delete(p.jobId);
            this.sessionJobs.delete(p.jobId);
            this.removedEmitter.fire(p);
        });
        // vscode-jsonrpc routes $/progress itself: tokens without a registered handler come here.
        connection.onUnhandledProgress((p) => this.workDoneEmitter.fire(p as WorkDoneProgressParams));
        // The server's token for a job added with workDoneProgress: true. Accepted; its $/progress
        // comes through onUnhandledProgress above.
        connection.onRequest(WorkDoneProgressCreateRequest.type, () => null);
        connection.onError(() => undefined); // surfaced through the requests and 'close'
        connection.listen();

        const params: InitializeParams = {
            processId: process.pid,
            clientInfo: this.options.clientInfo ?? { name: 'blender-jobs-node-client', version: '0.2.0' },
            capabilities: { window: { workDoneProgress: true }, textDocument: { publishDiagnostics: {} } },
            ...this.workspaceParams(),
        };
        const result = await this.initialize(params);
        await this.notify(InitializedNotification.type, {});
        return result;
    }

    /** `workspaceFolders` and `rootUri` of initialize, from the `workspaceFolders` / `workspace` options. */
    private workspaceParams(): Pick<InitializeParams, 'workspaceFolders' | 'rootUri'> {
        const folders = this.options.workspaceFolders?.length ? this.options.workspaceFolders
            : this.options.workspace !== undefined ? [this.workspaceFolder(this.options.workspace)] : undefined;
        return folders ? { workspaceFolders: folders, rootUri: folders[0].uri } : {};
    }

    private workspaceFolder(workspace: string): WorkspaceFolder {
        const uri = workspaceUri(workspace);
        const last = uri.replace(/\/+$/, '').split('/').pop() ?? '';
        let name = last;
        try {
            name = decodeURIComponent(last);
        } catch {
            // not percent-encoded: keep it
        }
        return { uri, name: name || uri };
    }

    /**
     * `initialize`. start() sends it already; it may be sent again and answers the same way (the
     * state directory stays the one the first call chose). The result tells where the jobs live
     * (`stateDir`, `stateDirTemporary`, `stateDirNote`) and what an earlier server left there
     * (`recoveredJobs`); their job/stateChanged → INTERRUPTED notifications follow it.
     */
    async initialize(params: InitializeParams): Promise<InitializeResult> {
        const result = await this.request(InitializeRequest.type, params,
            this.options.initializeTimeoutMs ?? 60_000);
        this.serverDescription = result;
        return result;
    }

    /**
     * `shutdown`: every QUEUED and ACTIVE job becomes INTERRUPTED (some of their job/stateChanged
     * notifications may follow the response); job requests fail afterwards. With a persistent
     * state directory a later server can resume them; call cancelAll() first to drop them instead.
     */
    shutdown(timeoutMs?: number): Promise<null> {
        return this.request0(ShutdownRequest.type, timeoutMs);
    }

    /** `exit` notification: the server ends (exit code 0 after shutdown, else 1). */
    exit(): Promise<void> {
        return this.notify0(ExitNotification.type);
    }

    /**
     * shutdown + exit, then waits for the process to end; kills it (TERM, then KILL) if it does not.
     * Returns the server's exit code (null if it was killed by a signal). Safe to call twice.
     */
    dispose(): Promise<number | null> {
        if (!this.disposing) this.disposing = this.doDispose();
        return this.disposing;
    }

    private async doDispose(): Promise<number | null> {
        const child = this.child;
        if (!child) return null;
        if (!this.exited) {
            try {
                await this.shutdown(10_000);
            } catch {
                // the server may be gone or stuck: exit / kill below
            }
            try {
                await this.exit();
            } catch {
                // ignored
            }
            child.stdin.end();
        }
        const exitTimeout = this.options.exitTimeoutMs ?? 10_000;
        if (!(await this.waitClosed(exitTimeout))) {
            child.kill('SIGTERM');
            if (!(await this.waitClosed(3_000))) {
                child.kill('SIGKILL');
                await this.waitClosed(3_000);
            }
        }
        this.progressEmitter.dispose();
        this.stateEmitter.dispose();
        this.workDoneEmitter.dispose();
        this.messageEmitter.dispose();
        this.removedEmitter.dispose();
        this.logEmitter.dispose();
        this.diagnosticsEmitter.dispose();
        return child.exitCode;
    }

    private async waitClosed(timeoutMs: number): Promise<boolean> {
        if (this.exited) return true;
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
        try {
            return await Promise.race([this.closedPromise!.then(() => true), timeout]);
        } finally {
            clearTimeout(timer);
        }
    }

    // ------------------------------------------------------------------------------- requests

    async addJob(params: AddJobParams, timeoutMs?: number): Promise<AddJobResult> {
        const result = await this.request(AddJobRequest.type, params, timeoutMs);
        this.sessionJobs.add(result.jobId);
        return result;
    }

    getProgress(jobId: string, timeoutMs?: number): Promise<GetProgressResult> {
        return this.request(GetProgressRequest.type, { jobId }, timeoutMs);
    }

    getPythonData(jobId: string, timeoutMs?: number): Promise<GetPythonDataResult> {
        return this.request(GetPythonDataRequest.type, { jobId }, timeoutMs);
    }

    getDataBlocks(jobId: string, timeoutMs?: number): Promise<GetDataBlocksResult> {
        return this.request(GetDataBlocksRequest.type, { jobId }, timeoutMs);
    }

    getJob(jobId: string, timeoutMs?: number): Promise<GetJobResult> {
        return this.request(GetJobRequest.type, { jobId }, timeoutMs);
    }

    listJobs(params: ListJobsParams = {}, timeoutMs?: number): Promise<ListJobsResult> {
        return this.request(ListJobsRequest.type, params, timeoutMs);
    }

    cancelJob(jobId: string, timeoutMs?: number): Promise<CancelJobResult> {
        return this.request(CancelJobRequest.type, { jobId }, timeoutMs);
    }

    /** Cancels every QUEUED, ACTIVE and INTERRUPTED job. */
    cancelAll(timeoutMs?: number): Promise<CancelAllResult> {
        return this.request(CancelAllRequest.type, {}, timeoutMs);
    }

    /**
     * Queues an INTERRUPTED job again (same jobId and inputs, a fresh attempt budget). Rejects
     * with JsonRpcError 1007 (JOB_NOT_RESUMABLE) if the job is not INTERRUPTED. A waitForJob
     * after this waits for the resumed run.
     */
    async resumeJob(jobId: string, timeoutMs?: number): Promise<ResumeJobResult> {
        const result = await this.request(ResumeJobRequest.type, { jobId }, timeoutMs);
        this.forgetInterrupted([jobId]);
        this.sessionJobs.add(jobId);
        return result;
    }

    /** Queues every INTERRUPTED job again, oldest first. */
    async resumeAll(timeoutMs?: number): Promise<ResumeAllResult> {
        const result = await this.request(ResumeAllRequest.type, {}, timeoutMs);
        this.forgetInterrupted(result.jobIds);
        for (const jobId of result.jobIds) this.sessionJobs.add(jobId);
        return result;
    }

    removeJob(jobId: string, timeoutMs?: number): Promise<RemoveJobResult> {
        return this.request(RemoveJobRequest.type, { jobId }, timeoutMs);
    }

    getStats(timeoutMs?: number): Promise<GetStatsResult> {
        return this.request(GetStatsRequest.type, {}, timeoutMs);
    }

    // ------------------------------------------------------------------------------ live logs

    /**
     * The job's console so far (`text`, the last 64 KiB) and, while it has not come to rest
     * (`following`), what it prints next as onLog events, until it rests. Following a job again
     * starts over (the answer repeats the text so far).
     */
    followLog(jobId: string, timeoutMs?: number): Promise<FollowLogResult> {
        return this.request(FollowLogRequest.type, { jobId }, timeoutMs);
    }

    /** Stops the onLog events of a followed job; none of the job comes after this resolves. */
    unfollowLog(jobId: string, timeoutMs?: number): Promise<UnfollowLogResult> {
        return this.request(UnfollowLogRequest.type, { jobId }, timeoutMs);
    }

    // ---------------------------------------------------------------- LSP work-done progress

    /** A fresh token to pass as `addJob.workDoneToken` (valid while that addJob is pending). */
    createWorkDoneToken(): string {
        this.tokenCounter += 1;
        return `blender-jobs-${process.pid}-${this.tokenCounter}`;
    }

    /**
     * Sends `window/workDoneProgress/cancel {token}`: the server cancels the job it reports on that
     * token (`workDoneTokenOf(jobId)` for a job added with `workDoneProgress: true`).
     */
    cancelWorkDoneProgress(token: ProgressToken): Promise<void> {
        return this.notify(WorkDoneProgressCancelNotification.type, { token });
    }

    // ------------------------------------------------------------------------------- waiting

    /** The latest `job/stateChanged` received for a job, if any. */
    lastKnownState(jobId: string): JobStateChangedParams | undefined {
        return this.lastState.get(jobId);
    }

    /**
     * Resolves with the `job/stateChanged` that brought the job to rest: a final state (COMPLETED,
     * FAILED, CANCELED) or INTERRUPTED (the server was shut down, or died, while the job was
     * queued or running; `error.kind` is `INTERRUPTED` and `resumeJob` runs it again), so a wait
     * never hangs across a shutdown. Use isFinalState(result.state) to tell them apart. Works when
     * the notification arrived before the call (even before the addJob response). For a job that
     * came to rest under an earlier server (same state directory), or should the notification never
     * come, the result is made from getJob (then without `previousState`). Rejects with
     * JobWaitTimeoutError after `timeoutMs`, with JsonRpcError 1001 for an unknown job, and with
     * ServerExitedError if the server dies.
     */
    waitForJob(jobId: string, timeoutMs = 600_000): Promise<JobStateChangedParams> {
        const known = this.restingStates.get(jobId);
        if (known) return Promise.resolve(known);
        if (this.exited) return Promise.reject(this.exited);

        return new Promise<JobStateChangedParams>((resolve, reject) => {
            let done = false;
            const waiter: Waiter = {
                resolve: (value) => { if (!done) { done = true; cleanup(); resolve(value); } },
                reject: (error) => { if (!done) { done = true; cleanup(); reject(error); } },
            };
            const timer = setTimeout(() => {
                waiter.reject(new JobWaitTimeoutError(jobId, timeoutMs, this.lastState.get(jobId)?.state));
            }, timeoutMs);
            const cleanup = () => {
                clearTimeout(timer);
                const set = this.waiters.get(jobId);
                set?.delete(waiter);
                if (set && set.size === 0) this.waiters.delete(jobId);
            };
            let set = this.waiters.get(jobId);
            if (!set) this.waiters.set(jobId, set = new Set());
            set.add(waiter);

            // Safety net: a job that does not exist, or whose final notification never reaches
            // this client. Responses and notifications may arrive in either order, so when getJob
            // already shows a final state, the notification (which has previousState) gets a
            // grace period before a result is made up from getJob.
            this.getJob(jobId).then((job) => {
                if (done || !isRestingState(job.state)) return;
                // A job that came to rest under an earlier server gets no notification.
                const graceMs = this.sessionJobs.has(jobId) ? FINAL_NOTIFICATION_GRACE_MS : 0;
                const grace = setTimeout(() => {
                    waiter.resolve(this.restingStates.get(jobId) ?? {
                        jobId: job.jobId, name: job.name, state: job.state,
                        attempt: job.attempt, error: job.error,
                    });
                }, Math.min(graceMs, Math.max(0, timeoutMs - 1)));
                grace.unref();
            }, (error: unknown) => {
                if (error instanceof JsonRpcError && error.isJobNotFound) waiter.reject(error);
                // other errors (timeout, shutdown): keep waiting for the notification
            });
        });
    }

    /** A resumed job is no longer at rest: a later waitForJob waits for the new run. */
    private forgetInterrupted(jobIds: readonly string[]): void {
        for (const jobId of jobIds) {
            if (this.restingStates.get(jobId)?.state === 'INTERRUPTED') this.restingStates.delete(jobId);
        }
    }

    private handleStateChanged(params: JobStateChangedParams): void {
        this.lastState.set(params.jobId, params);
        this.sessionJobs.add(params.jobId);
        if (!isRestingState(params.state)) {
            this.restingStates.delete(params.jobId); // e.g. INTERRUPTED -> QUEUED after a resume
        } else {
            this.restingStates.set(params.jobId, params);
            if (this.restingStates.size > FINAL_CACHE_SIZE) {
                const oldest = this.restingStates.keys().next().value as string;
                this.restingStates.delete(oldest);
                this.lastState.delete(oldest);
            }
            const set = this.waiters.get(params.jobId);
            if (set) for (const waiter of [...set]) waiter.resolve(params);
        }
        this.stateEmitter.fire(params);
    }

    private failAllWaiters(error: Error): void {
        for (const set of [...this.waiters.values()]) {
            for (const waiter of [...set]) waiter.reject(error);
        }
    }

    // ------------------------------------------------------------------------------ plumbing

    private requireConnection(): MessageConnection {
        if (this.exited) throw this.exited;
        if (!this.connection) throw new BlenderJobsError('the client is not started; call start() first');
        return this.connection;
    }

    /** Sends any typed request with a timeout; errors become JsonRpcError / RequestTimeoutError. */
    async request<P, R>(type: RequestType<P, R, void>, params: P, timeoutMs?: number): Promise<R> {
        const connection = this.requireConnection();
        return this.withTimeout(type.method, timeoutMs, () => connection.sendRequest(type, params));
    }

    /** Sends a typed request without params. */
    async request0<R>(type: RequestType0<R, void>, timeoutMs?: number): Promise<R> {
        const connection = this.requireConnection();
        return this.withTimeout(type.method, timeoutMs, () => connection.sendRequest(type));
    }

    async notify<P>(type: NotificationType<P>, params: P): Promise<void> {
        await this.requireConnection().sendNotification(type, params);
    }

    async notify0(type: NotificationType0): Promise<void> {
        await this.requireConnection().sendNotification(type);
    }

    private async withTimeout<R>(method: string, timeoutMs: number | undefined, send: () => Promise<R>): Promise<R> {
        const limit = timeoutMs ?? this.options.requestTimeoutMs ?? 30_000;
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new RequestTimeoutError(method, limit)), limit);
        });
        try {
            return await Promise.race([send(), timeout, this.exitedPromise!]);
        } catch (error) {
            throw this.translate(error, method);
        } finally {
            clearTimeout(timer);
        }
    }

    private translate(error: unknown, method: string): Error {
        if (error instanceof BlenderJobsError) return error;
        if (error instanceof ResponseError) {
            return new JsonRpcError(error.code, error.message, error.data, method);
        }
        if (this.exited) return this.exited;
        const message = error instanceof Error ? error.message : String(error);
        return new ServerExitedError(`request ${method} failed: ${message}`, null, null, this.stderrTail);
    }
}

/** Spawns a server and initializes it: `const client = await startClient({workers: 2})`. */
export async function startClient(options: BlenderJobsClientOptions = {}): Promise<BlenderJobsClient> {
    const client = new BlenderJobsClient(options);
    try {
        await client.start();
    } catch (error) {
        await client.dispose().catch(() => undefined);
        throw error;
    }
    return client;
}

export type { Disposable, Event };
