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
 */
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
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
    JobProgressNotification,
    JobProgressParams,
    JobStateChangedNotification,
    JobStateChangedParams,
    ListJobsParams,
    ListJobsRequest,
    ListJobsResult,
    ProgressToken,
    RemoveJobRequest,
    RemoveJobResult,
    ShutdownRequest,
    WorkDoneProgressCancelNotification,
    WorkDoneProgressCreateRequest,
    WorkDoneProgressParams,
    isFinalState,
} from './protocol';

/** The JVM flags the server is normally started with. */
export const DEFAULT_JVM_ARGS: readonly string[] = ['-XX:+UseSerialGC', '-Xmx512m', '-Xmn24m'];

export interface BlenderJobsClientOptions {
    /** The server jar. Default: $BLENDER_JOBS_JAR, else ../../server/target/blender-jobs-server.jar. */
    jar?: string;
    /** The java executable. Default: $JAVA_HOME/bin/java if it exists, else `java` from PATH. */
    java?: string;
    /** JVM flags before `-jar`. Default: DEFAULT_JVM_ARGS. */
    jvmArgs?: string[];
    /** `--workers N`. Default: the server's default (number of CPU cores). */
    workers?: number;
    /** More server flags, e.g. `['--blender', '/opt/blender/blender', '--log-level', 'FINE']`. */
    serverArgs?: string[];
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

/** `BLENDER_JOBS_JAR`, else the build output relative to this package. */
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
/** How long waitForJob waits for a final job/stateChanged after getJob showed the final state. */
const FINAL_NOTIFICATION_GRACE_MS = 2_000;

export class BlenderJobsClient {
    readonly options: Readonly<BlenderJobsClientOptions>;
    /** The initialize result, once start() has finished. */
    serverDescription: InitializeResult | undefined;

    private child: ChildProcessWithoutNullStreams | undefined;
    private connection: MessageConnection | undefined;
    private exited: ServerExitedError | undefined;
    private exitedPromise: Promise<never> | undefined;
    private closedPromise: Promise<void> | undefined;
    private readonly stderrTail: string[] = [];
    private readonly progressEmitter = new Emitter<JobProgressParams>();
    private readonly stateEmitter = new Emitter<JobStateChangedParams>();
    private readonly workDoneEmitter = new Emitter<WorkDoneProgressParams>();
    /** Latest job/stateChanged per job, kept so no notification is lost to a race. */
    private readonly lastState = new Map<string, JobStateChangedParams>();
    /** Final job/stateChanged per job (insertion-ordered, bounded). */
    private readonly finalStates = new Map<string, JobStateChangedParams>();
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

    /** Fired for every LSP `$/progress` notification (jobs added with a `workDoneToken`). */
    get onWorkDoneProgress(): Event<WorkDoneProgressParams> {
        return this.workDoneEmitter.event;
    }

    /** The server's process id, once started. */
    get pid(): number | undefined {
        return this.child?.pid;
    }

    /** The last lines the server wrote to stderr. */
    get serverLog(): readonly string[] {
        return this.stderrTail;
    }

    get jarPath(): string {
        return this.options.jar ? path.resolve(this.options.jar) : defaultJarPath();
    }

    // ------------------------------------------------------------------------------ lifecycle

    /**
     * Spawns the server, sends `initialize` (declaring work-done progress support) and
     * `initialized`, and returns the server's description.
     */
    async start(): Promise<InitializeResult> {
        if (this.child) throw new BlenderJobsError('start() was already called');
        const jar = this.jarPath;
        if (!fs.existsSync(jar)) {
            throw new BlenderJobsError(`the server jar ${jar} does not exist; build it ` +
                '(cd <repo> && mvn -q package -Dmaven.test.skip=true) or set BLENDER_JOBS_JAR');
        }
        const args = [...(this.options.jvmArgs ?? DEFAULT_JVM_ARGS), '-jar', jar];
        if (this.options.workers !== undefined) args.push('--workers', String(this.options.workers));
        args.push(...(this.options.serverArgs ?? []));

        const child = spawn(this.options.java ?? defaultJava(), args, {
            cwd: this.options.cwd,
            env: this.options.env ?? process.env,
            stdio: ['pipe', 'pipe', 'pipe'],
        });
        this.child = child;

        let rejectExited!: (error: Error) => void;
        this.exitedPromise = new Promise<never>((_, reject) => { rejectExited = reject; });
        this.exitedPromise.catch(() => undefined); // observed by whoever races against it
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
            child.once('close', (code, signal) => finish(new ServerExitedError(
                'the server exited', code, signal, this.stderrTail)));
        });
        child.stdin.on('error', () => undefined); // EPIPE after the server died: reported via 'close'

        const lines = readline.createInterface({ input: child.stderr, crlfDelay: Infinity });
        lines.on('line', (line) => {
            this.stderrTail.push(line);
            if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
            this.options.onStderrLine?.(line);
        });

        const connection = createMessageConnection(
            new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
        this.connection = connection;
        connection.onNotification(JobProgressNotification.type, (p) => this.progressEmitter.fire(p));
        connection.onNotification(JobStateChangedNotification.type, (p) => this.handleStateChanged(p));
        // vscode-jsonrpc routes $/progress itself: tokens without a registered handler come here.
        connection.onUnhandledProgress((p) => this.workDoneEmitter.fire(p as WorkDoneProgressParams));
        // Server-initiated progress (not used by blender-jobs today): accept any token.
        connection.onRequest(WorkDoneProgressCreateRequest.type, () => null);
        connection.onError(() => undefined); // surfaced through the requests and 'close'
        connection.listen();

        const params: InitializeParams = {
            processId: process.pid,
            clientInfo: this.options.clientInfo ?? { name: 'blender-jobs-node-client', version: '0.1.0' },
            capabilities: { window: { workDoneProgress: true } },
        };
        const result = await this.initialize(params);
        await this.notify(InitializedNotification.type, {});
        return result;
    }

    /** `initialize`. start() sends it already; it may be sent again and answers the same way. */
    async initialize(params: InitializeParams): Promise<InitializeResult> {
        const result = await this.request(InitializeRequest.type, params,
            this.options.initializeTimeoutMs ?? 60_000);
        this.serverDescription = result;
        return result;
    }

    /** `shutdown`: cancels every unfinished job; job requests fail afterwards. */
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

    addJob(params: AddJobParams, timeoutMs?: number): Promise<AddJobResult> {
        return this.request(AddJobRequest.type, params, timeoutMs);
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

    cancelAll(timeoutMs?: number): Promise<CancelAllResult> {
        return this.request(CancelAllRequest.type, {}, timeoutMs);
    }

    removeJob(jobId: string, timeoutMs?: number): Promise<RemoveJobResult> {
        return this.request(RemoveJobRequest.type, { jobId }, timeoutMs);
    }

    getStats(timeoutMs?: number): Promise<GetStatsResult> {
        return this.request(GetStatsRequest.type, {}, timeoutMs);
    }

    // ---------------------------------------------------------------- LSP work-done progress

    /** A fresh token to pass as `addJob.workDoneToken`. */
    createWorkDoneToken(): string {
        this.tokenCounter += 1;
        return `blender-jobs-${process.pid}-${this.tokenCounter}`;
    }

    /** Sends `window/workDoneProgress/cancel {token}`: the server cancels the job with that token. */
    cancelWorkDoneProgress(token: ProgressToken): Promise<void> {
        return this.notify(WorkDoneProgressCancelNotification.type, { token });
    }

    // ------------------------------------------------------------------------------- waiting

    /** The latest `job/stateChanged` received for a job, if any. */
    lastKnownState(jobId: string): JobStateChangedParams | undefined {
        return this.lastState.get(jobId);
    }

    /**
     * Resolves with the job's final `job/stateChanged` (COMPLETED, FAILED or CANCELED). Works
     * when the notification arrived before the call (even before the addJob response). Should the
     * notification never come, the result is made from getJob (then without `previousState`). Rejects
     * with JobWaitTimeoutError after `timeoutMs`, with JsonRpcError 1001 for an unknown job,
     * and with ServerExitedError if the server dies.
     */
    waitForJob(jobId: string, timeoutMs = 600_000): Promise<JobStateChangedParams> {
        const known = this.finalStates.get(jobId);
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
                if (done || !isFinalState(job.state)) return;
                const grace = setTimeout(() => {
                    waiter.resolve(this.finalStates.get(jobId) ?? {
                        jobId: job.jobId, name: job.name, state: job.state,
                        attempt: job.attempt, error: job.error,
                    });
                }, Math.min(FINAL_NOTIFICATION_GRACE_MS, Math.max(0, timeoutMs - 1)));
                grace.unref();
            }, (error: unknown) => {
                if (error instanceof JsonRpcError && error.isJobNotFound) waiter.reject(error);
                // other errors (timeout, shutdown): keep waiting for the notification
            });
        });
    }

    private handleStateChanged(params: JobStateChangedParams): void {
        this.lastState.set(params.jobId, params);
        if (isFinalState(params.state)) {
            this.finalStates.set(params.jobId, params);
            if (this.finalStates.size > FINAL_CACHE_SIZE) {
                const oldest = this.finalStates.keys().next().value as string;
                this.finalStates.delete(oldest);
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
