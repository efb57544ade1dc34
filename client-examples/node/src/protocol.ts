/**
 * TypeScript types for every message of the blender-jobs wire protocol (see ../../../protocol.md),
 * plus the typed vscode-jsonrpc `RequestType` / `NotificationType` objects used to send and receive them.
 *
 * Conventions: a field the server omits when it does not apply is optional (`?`). The server never
 * sends `null` for a field: it leaves the field out.
 */
import {
    NotificationType,
    NotificationType0,
    RequestType,
    RequestType0,
} from 'vscode-jsonrpc/node';

// ------------------------------------------------------------------------------------------ enums

export type JobState = 'QUEUED' | 'ACTIVE' | 'COMPLETED' | 'FAILED' | 'CANCELED' | 'INTERRUPTED';

/** A state a job never leaves. */
export type FinalState = 'COMPLETED' | 'FAILED' | 'CANCELED';

/**
 * A state a job rests in: nothing more happens to it unless a client acts. The final states plus
 * INTERRUPTED (the server stopped, or died, while the job was QUEUED or ACTIVE; `resumeJob` queues
 * it again, `cancelJob` makes it CANCELED). `waitForJob` resolves on any of them, so a wait never
 * hangs across a `shutdown`.
 */
export type RestingState = FinalState | 'INTERRUPTED';

export const JOB_STATES: readonly JobState[] = ['QUEUED', 'ACTIVE', 'COMPLETED', 'FAILED', 'CANCELED', 'INTERRUPTED'];
export const FINAL_STATES: readonly FinalState[] = ['COMPLETED', 'FAILED', 'CANCELED'];
export const RESTING_STATES: readonly RestingState[] = ['COMPLETED', 'FAILED', 'CANCELED', 'INTERRUPTED'];

/** COMPLETED, FAILED or CANCELED: the job never changes state again. */
export function isFinalState(state: string | undefined): state is FinalState {
    return state === 'COMPLETED' || state === 'FAILED' || state === 'CANCELED';
}

/** A final state or INTERRUPTED: the job stays so until a client resumes, cancels or removes it. */
export function isRestingState(state: string | undefined): state is RestingState {
    return isFinalState(state) || state === 'INTERRUPTED';
}

export type FailureKind =
    | 'SCRIPT_ERROR'
    | 'SCRIPT_EXITED'
    | 'TIMED_OUT'
    | 'BLENDER_CRASHED'
    | 'BLENDER_EXITED'
    | 'RESULT_NOT_SERIALIZABLE'
    | 'RESULT_WRITE_FAILED'
    | 'SETUP_FAILED'
    | 'WORKER_START_FAILED'
    | 'WORKER_ERROR'
    /** The worker broke the server's channel while running the job (the script may have caused it). */
    | 'PROTOCOL_VIOLATION'
    /** Not a failure of the job: the kind of an INTERRUPTED job's error. */
    | 'INTERRUPTED'
    /** The worker was lost with its cluster node or pilot job (node down, scancel, walltime): retried. */
    | 'WORKER_LOST';

/** Every failure kind (protocol.md §5), as `initialize.capabilities.failureKinds` lists them. */
export const FAILURE_KINDS: readonly FailureKind[] = [
    'SCRIPT_ERROR', 'SCRIPT_EXITED', 'TIMED_OUT', 'BLENDER_CRASHED', 'BLENDER_EXITED', 'RESULT_NOT_SERIALIZABLE',
    'RESULT_WRITE_FAILED', 'SETUP_FAILED', 'WORKER_START_FAILED', 'WORKER_ERROR', 'PROTOCOL_VIOLATION', 'INTERRUPTED',
    'WORKER_LOST',
];

export type Isolation = 'worker' | 'process';

/** A JSON value, as `passedData` and `python_data` carry. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** `{<bpy.data collection>: [<names>]}`, e.g. `{"objects": ["Cube"]}`. */
export type DataBlockNames = { [collection: string]: string[] };

/** An LSP progress token. */
export type ProgressToken = number | string;

// ----------------------------------------------------------------------------------- error codes

/** Every JSON-RPC error code the server uses (protocol.md §5). */
export const ErrorCodes = {
    ParseError: -32700,
    InvalidRequest: -32600,
    MethodNotFound: -32601,
    InvalidParams: -32602,
    InternalError: -32603,
    RequestCancelled: -32800,
    ServerNotInitialized: -32002,
    JobNotFound: 1001,
    JobNotFinished: 1002,
    JobFailed: 1003,
    JobCanceled: 1004,
    JobNotRemovable: 1005,
    /** getPythonData / getDataBlocks on an INTERRUPTED job. */
    JobInterrupted: 1006,
    /** resumeJob on a job that is not INTERRUPTED. */
    JobNotResumable: 1007,
    BlenderUnavailable: 1010,
    ShuttingDown: 1011,
    JobFilesUnavailable: 1012,
} as const;

export type ErrorKind =
    | 'JOB_NOT_FOUND'
    | 'JOB_NOT_FINISHED'
    | 'JOB_FAILED'
    | 'JOB_CANCELED'
    | 'JOB_NOT_REMOVABLE'
    | 'JOB_INTERRUPTED'
    | 'JOB_NOT_RESUMABLE'
    | 'BLENDER_UNAVAILABLE'
    | 'SHUTTING_DOWN'
    | 'JOB_FILES_UNAVAILABLE';

/** `data` of a -32602 error. */
export interface InvalidParamsData {
    field: string;
    reason: string;
}

/** `data` of an application error (1001–1012). */
export interface ApplicationErrorData {
    errorKind: ErrorKind;
    jobId?: string;
    state?: JobState;
    /** 1003 and 1006 only. */
    failureKind?: FailureKind;
    /** 1003 and 1006 only. */
    failureMessage?: string;
}

/** `data` of a -32700 error. */
export interface ParseErrorData {
    message: string;
}

export type ErrorData = InvalidParamsData | ApplicationErrorData | ParseErrorData;

// ------------------------------------------------------------------------------- shared shapes

/** A job failure (getJob.error, earlierErrors, job/stateChanged.error). */
export interface ErrorInfo {
    kind: FailureKind;
    message: string;
    attempt: number;
    /** SCRIPT_ERROR, WORKER_ERROR. */
    traceback?: string;
    /** BLENDER_CRASHED, when Blender wrote one. */
    crashReport?: string;
    logTail: string[];
}

// ------------------------------------------------------------------------------------ initialize

export interface ClientCapabilities {
    window?: {
        /**
         * Declare it to get LSP work-done progress: for jobs added with `workDoneProgress: true`
         * (on a token the server creates), and for the addJob request on its `workDoneToken`.
         */
        workDoneProgress?: boolean;
    };
    textDocument?: {
        /** Declare it (any object) to get `textDocument/publishDiagnostics` for failed scripts. */
        publishDiagnostics?: Record<string, unknown>;
        [key: string]: unknown;
    };
    [key: string]: unknown;
}

/** LSP `WorkspaceFolder`. */
export interface WorkspaceFolder {
    uri: string;
    name: string;
}

/**
 * Params of `initialize`: any object; LSP-style fields are accepted. The workspace (the first of
 * `workspaceFolders[].uri`, else `rootUri`, else `rootPath`) chooses the server's default state
 * directory, which outlives the server; without one the server's jobs end with it.
 */
export interface InitializeParams {
    processId?: number | null;
    clientInfo?: { name: string; version?: string };
    capabilities?: ClientCapabilities;
    workspaceFolders?: WorkspaceFolder[] | null;
    rootUri?: string | null;
    /** Deprecated in LSP; used when neither of the above is given. */
    rootPath?: string | null;
    [key: string]: unknown;
}

export interface BlenderInfo {
    available: boolean;
    path?: string;
    version?: string;
    /** Only when `available` is false. */
    problem?: string;
}

export interface ServerCapabilities {
    requests: string[];
    notifications: string[];
    jobStates: JobState[];
    failureKinds: FailureKind[];
    maxMessageBytes: number;
    [key: string]: unknown;
}

/** What an earlier server left in the state directory (`initialize.recoveredJobs`). */
export interface RecoveredJobs {
    /** Jobs listed now. */
    jobs: number;
    /** Of them, INTERRUPTED (they wait for resumeJob / resumeAll unless `--resume`). */
    interrupted: number;
    /** Queued again at once (`--resume`). */
    resumed: number;
    /** Removed by the retention policy (`--retain-jobs`, `--retain-days`). */
    pruned: number;
    /** Job directories whose record could not be read (not listed; a RECORDS_UNREADABLE message names them). */
    unreadable: number;
}

export interface InitializeResult {
    serverInfo: { name: string; version: string };
    blender: BlenderInfo;
    workers: number;
    maxJobsPerWorker: number;
    stateDir: string;
    /** True when the state directory (and every job in it) is deleted at exit. */
    stateDirTemporary: boolean;
    /** Why the server is not using the directory the client would expect. */
    stateDirNote?: string;
    recoveredJobs: RecoveredJobs;
    capabilities: ServerCapabilities;
}

/** Params of the `initialized` notification (ignored by the server). */
export type InitializedParams = Record<string, never>;

// ---------------------------------------------------------------------------------------- addJob

export interface PassedDataBlocks {
    /** Path of a .blend library, copied at addJob time. */
    library: string;
    /** Which blocks to append; without it every block is appended. */
    names?: DataBlockNames;
}

export interface AddJobParams {
    /** Path of a .py file readable by the server. Give exactly one of `script` / `scriptText`. */
    script?: string;
    /** The script's source. Give exactly one of `script` / `scriptText`. */
    scriptText?: string;
    name?: string;
    /** Seconds per attempt; 0 = none. */
    timeout?: number;
    passedData?: JsonObject;
    passedDataBlocks?: PassedDataBlocks;
    blendFile?: string;
    /** 1 … 100, default 1. */
    maxAttempts?: number;
    isolation?: Isolation;
    /** -1000000 … 1000000, default 0: a waiting job with a higher priority starts first. */
    priority?: number;
    /** Needs `name`: cancels and removes every job with the same name first. */
    replaceExisting?: boolean;
    /**
     * The job is reported as LSP work-done progress for its whole life on a token the server
     * creates (`window/workDoneProgress/create`, token `blender-jobs/<jobId>`, see
     * workDoneTokenOf), after the addJob answer. Needs the `window.workDoneProgress` capability.
     */
    workDoneProgress?: boolean;
    /**
     * An LSP work-done token of the client's: valid only while the addJob request is pending
     * (LSP). The server reports the request on it (begin "Adding Blender job ...", end "queued
     * as job-..."), both before the answer, and nothing after.
     */
    workDoneToken?: ProgressToken;
}

/** The token the server creates for a job added with `workDoneProgress: true`. */
export function workDoneTokenOf(jobId: string): string {
    return `blender-jobs/${jobId}`;
}

export interface AddJobResult {
    jobId: string;
    name?: string;
    state: JobState;
    attempt: number;
}

// --------------------------------------------------------------------- requests taking a jobId

export interface JobIdParams {
    jobId: string;
}

export type GetProgressParams = JobIdParams;

export interface GetProgressResult {
    jobId: string;
    name?: string;
    state: JobState;
    /** 0.0 … 1.0. */
    progress: number;
    message?: string;
    attempt: number;
    maxAttempts: number;
    createdAt: number;
    startedAt?: number;
    finishedAt?: number;
    elapsedMs: number;
}

export type GetPythonDataParams = JobIdParams;

/** The JSON value the script left in `python_data` (usually an object). */
export type GetPythonDataResult = JsonValue;

export type GetDataBlocksParams = JobIdParams;

export interface GetDataBlocksResult {
    jobId: string;
    /** Omitted when the script listed no blocks. */
    library?: string;
    blocks: DataBlockNames;
    count: number;
}

export type GetJobParams = JobIdParams;

export interface JobTiming {
    setupMs: number;
    scriptMs: number;
    /** Undoing what the script changed in the interpreter; absent in the records of older servers. */
    resetMs?: number;
    collectMs: number;
}

/** The job's options as `addJob` took them: the first fields of `getJob` and of `listJobs` entries. */
export interface JobOptions {
    name?: string;
    /** The script path, or `"<scriptText>"`. */
    script: string;
    /** Seconds per attempt; 0 = none. */
    timeout: number;
    maxAttempts: number;
    isolation: Isolation;
    priority: number;
    /** The client's library path and names, as given (a label: the job uses a private copy). */
    passedDataBlocks?: PassedDataBlocks;
    /** The client's .blend path, as given (a label: the job uses a private copy). */
    blendFile?: string;
}

export interface GetJobResult extends JobOptions {
    jobId: string;
    state: JobState;
    progress: number;
    progressMessage?: string;
    attempt: number;
    createdAt: number;
    startedAt?: number;
    finishedAt?: number;
    elapsedMs: number;
    /** Present when the state is FAILED or INTERRUPTED. */
    error?: ErrorInfo;
    /** Failures of retried attempts and interruptions of a resumed job, oldest first. */
    earlierErrors: ErrorInfo[];
    workerPid?: number;
    pythonDataBytes?: number;
    dataBlocks?: GetDataBlocksResult;
    timing?: JobTiming;
    directory: string;
    logFile: string;
    logTail: string[];
}

export interface ListJobsParams {
    state?: JobState;
    states?: JobState[];
    name?: string;
}

export interface JobSummary extends JobOptions {
    jobId: string;
    state: JobState;
    progress: number;
    progressMessage?: string;
    attempt: number;
    createdAt: number;
    startedAt?: number;
    finishedAt?: number;
    elapsedMs: number;
    errorKind?: FailureKind;
}

export interface ListJobsResult {
    jobs: JobSummary[];
    count: number;
}

export type CancelJobParams = JobIdParams;

export interface CancelJobResult {
    jobId: string;
    state: JobState;
    previousState: JobState;
    /** True if this call canceled the job. */
    canceled: boolean;
}

/** `cancelAll` takes no params (`{}`). */
export type CancelAllParams = Record<string, never>;

export interface CancelAllResult {
    canceled: number;
}

export type ResumeJobParams = JobIdParams;

export interface ResumeJobResult {
    jobId: string;
    /** QUEUED, or ACTIVE if a worker was idle. */
    state: JobState;
    previousState: 'INTERRUPTED';
}

/** `resumeAll` takes no params (`{}`). */
export type ResumeAllParams = Record<string, never>;

export interface ResumeAllResult {
    resumed: number;
    /** The jobs this call queued, in queue order (oldest first). */
    jobIds: string[];
}

export type RemoveJobParams = JobIdParams;

export interface RemoveJobResult {
    jobId: string;
    /** The job is gone and a restarted server will not list it again. */
    removed: true;
    /** Files of the job that could not be deleted ("path: reason; ..."); the next server tries again. */
    leftBehind?: string;
}

/** `getStats` ignores its params. */
export type GetStatsParams = Record<string, never>;

export type WorkerState = 'STARTING' | 'IDLE' | 'BUSY' | 'WAITING_TO_RESTART' | 'SHUT_DOWN';

export interface WorkerDetails {
    worker: string;
    state: WorkerState;
    /** -1 if none. */
    pid: number;
    jobsRun: number;
    processesStarted: number;
    jobId?: string;
    /** Seconds until the worker's lease ends (a Slurm pilot's walltime); absent for local workers. */
    timeLeftSeconds?: number;
    /** True while a worker near the end of its lease takes no more jobs. */
    draining?: boolean;
    /** The batch job the worker runs in (a Slurm pilot). */
    batchJob?: BatchJob;
}

export interface BatchJob {
    /** "slurm" */
    system: string;
    /** The Slurm job id. */
    id?: string;
    /** PENDING, RUNNING, ... as squeue says. */
    state?: string;
    /** Why it waits (squeue %r), e.g. "Priority", "PartitionDown". */
    reason?: string;
    node?: string;
}

export interface GetStatsResult {
    queued: number;
    active: number;
    completed: number;
    failed: number;
    canceled: number;
    interrupted: number;
    total: number;
    /** Where workers run: "local" or "slurm"; absent when no Blender is available. */
    executor?: string;
    workers: number;
    freeWorkers: number;
    busyWorkers: number;
    workerDetails: WorkerDetails[];
}

// ------------------------------------------------------------------- notifications server→client

export interface JobProgressParams {
    jobId: string;
    /** 0.0 … 1.0. */
    progress: number;
    message?: string;
    /** Epoch ms at which the script reported. */
    reportedAt: number;
}

export interface JobStateChangedParams {
    jobId: string;
    name?: string;
    state: JobState;
    /** Absent only for the first QUEUED. */
    previousState?: JobState;
    attempt: number;
    /** On FAILED, on INTERRUPTED (kind `INTERRUPTED`) and on a retry's QUEUED / ACTIVE. */
    error?: ErrorInfo;
}

// ---------------------------------------------------------------- LSP work-done progress shapes

/** LSP `WorkDoneProgressBegin`. */
export interface WorkDoneProgressBegin {
    kind: 'begin';
    title: string;
    cancellable?: boolean;
    message?: string;
    /** 0 … 100. */
    percentage?: number;
}

/** LSP `WorkDoneProgressReport`. */
export interface WorkDoneProgressReport {
    kind: 'report';
    cancellable?: boolean;
    message?: string;
    /** 0 … 100 (integer). */
    percentage?: number;
}

/** LSP `WorkDoneProgressEnd`. */
export interface WorkDoneProgressEnd {
    kind: 'end';
    message?: string;
}

export type WorkDoneProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

/** LSP `ProgressParams<T>` (the params of `$/progress`). */
export interface ProgressParams<T> {
    token: ProgressToken;
    value: T;
}

export type WorkDoneProgressParams = ProgressParams<WorkDoneProgressValue>;

/** `job/removed` (server → client): the job left the server; later requests about it get 1001. */
export interface JobRemovedParams {
    jobId: string;
    /** REMOVED (removeJob), REPLACED (replaceExisting), RETENTION (--retain-jobs / --retain-days). */
    reason: 'REMOVED' | 'REPLACED' | 'RETENTION';
}

/**
 * LSP `window/showMessage` (server → client). blender-jobs sends it when job states cannot be
 * saved to disk (`RECORDS_NOT_SAVED`, a warning) and when they are saved again
 * (`RECORDS_SAVED_AGAIN`, info). `kind` is blender-jobs' addition to the LSP params.
 */
export interface ShowMessageParams {
    /** LSP MessageType: 1 error, 2 warning, 3 info, 4 log. */
    type: 1 | 2 | 3 | 4;
    message: string;
    kind?: 'RECORDS_NOT_SAVED' | 'RECORDS_SAVED_AGAIN' | 'JOB_FILES_GONE' | 'RECORDS_UNREADABLE'
        | 'SERVER_OUT_OF_MEMORY' | string;
}

/** LSP `WorkDoneProgressCancelParams` (client → server). */
export interface WorkDoneProgressCancelParams {
    token: ProgressToken;
}

/** LSP `WorkDoneProgressCreateParams` (server → client request, for jobs added with `workDoneProgress: true`). */
export interface WorkDoneProgressCreateParams {
    token: ProgressToken;
}

// ------------------------------------------------------------------------------ live logs

export interface FollowLogParams {
    jobId: string;
}

/**
 * `followLog` result: the job's console so far (the last 64 KiB, invalid UTF-8 replaced);
 * `following` is false when the job already rests (then nothing follows).
 */
export interface FollowLogResult {
    jobId: string;
    text: string;
    following: boolean;
}

export interface UnfollowLogParams {
    jobId: string;
}

export interface UnfollowLogResult {
    jobId: string;
    following: false;
}

/**
 * `job/log` (server → client): the next part of a followed job's console, exactly as printed
 * (coalesced; at most 128 KiB a second, beyond which a marker line says how many bytes were
 * skipped). Never before the followLog answer; the last one before the job's resting
 * job/stateChanged.
 */
export interface JobLogParams {
    jobId: string;
    text: string;
}

// ---------------------------------------------------------------------------- diagnostics

/** LSP `Position`: 0-based line, UTF-16 character. */
export interface Position {
    line: number;
    character: number;
}

export interface Range {
    start: Position;
    end: Position;
}

export interface Location {
    uri: string;
    range: Range;
}

/** LSP `Diagnostic` as blender-jobs sends it. */
export interface Diagnostic {
    /** The failing line, character 0 to 2147483647 (the line's end). */
    range: Range;
    /** 1 = Error. */
    severity: 1 | 2 | 3 | 4;
    source: 'blender-jobs' | string;
    /** The exception's line, e.g. "ValueError: value 42 is not allowed". */
    message: string;
    /** The traceback's other frames in files. */
    relatedInformation?: { location: Location; message: string }[];
}

/**
 * LSP `textDocument/publishDiagnostics` (server → client): the diagnostics of a job's script
 * file after it failed with a traceback through it; an empty array (the next completed job of
 * the script) clears them.
 */
export interface PublishDiagnosticsParams {
    uri: string;
    diagnostics: Diagnostic[];
}

// --------------------------------------------------------------------- typed message objects

export namespace InitializeRequest {
    export const type = new RequestType<InitializeParams, InitializeResult, void>('initialize');
}
export namespace InitializedNotification {
    export const type = new NotificationType<InitializedParams>('initialized');
}
export namespace ShutdownRequest {
    export const type = new RequestType0<null, void>('shutdown');
}
export namespace ExitNotification {
    export const type = new NotificationType0('exit');
}
export namespace AddJobRequest {
    export const type = new RequestType<AddJobParams, AddJobResult, void>('addJob');
}
export namespace GetProgressRequest {
    export const type = new RequestType<GetProgressParams, GetProgressResult, void>('getProgress');
}
export namespace GetPythonDataRequest {
    export const type = new RequestType<GetPythonDataParams, GetPythonDataResult, void>('getPythonData');
}
export namespace GetDataBlocksRequest {
    export const type = new RequestType<GetDataBlocksParams, GetDataBlocksResult, void>('getDataBlocks');
}
export namespace GetJobRequest {
    export const type = new RequestType<GetJobParams, GetJobResult, void>('getJob');
}
export namespace ListJobsRequest {
    export const type = new RequestType<ListJobsParams, ListJobsResult, void>('listJobs');
}
export namespace CancelJobRequest {
    export const type = new RequestType<CancelJobParams, CancelJobResult, void>('cancelJob');
}
export namespace CancelAllRequest {
    export const type = new RequestType<CancelAllParams, CancelAllResult, void>('cancelAll');
}
export namespace ResumeJobRequest {
    export const type = new RequestType<ResumeJobParams, ResumeJobResult, void>('resumeJob');
}
export namespace ResumeAllRequest {
    export const type = new RequestType<ResumeAllParams, ResumeAllResult, void>('resumeAll');
}
export namespace RemoveJobRequest {
    export const type = new RequestType<RemoveJobParams, RemoveJobResult, void>('removeJob');
}
export namespace GetStatsRequest {
    export const type = new RequestType<GetStatsParams, GetStatsResult, void>('getStats');
}
export namespace FollowLogRequest {
    export const type = new RequestType<FollowLogParams, FollowLogResult, void>('followLog');
}
export namespace UnfollowLogRequest {
    export const type = new RequestType<UnfollowLogParams, UnfollowLogResult, void>('unfollowLog');
}
export namespace JobLogNotification {
    export const type = new NotificationType<JobLogParams>('job/log');
}
/** LSP `textDocument/publishDiagnostics` (server → client). */
export namespace PublishDiagnosticsNotification {
    export const type = new NotificationType<PublishDiagnosticsParams>('textDocument/publishDiagnostics');
}
export namespace JobProgressNotification {
    export const type = new NotificationType<JobProgressParams>('job/progress');
}
export namespace JobStateChangedNotification {
    export const type = new NotificationType<JobStateChangedParams>('job/stateChanged');
}
/** LSP `$/progress` (server → client). */
export namespace WorkDoneProgressNotification {
    export const type = new NotificationType<WorkDoneProgressParams>('$/progress');
}
export namespace JobRemovedNotification {
    export const type = new NotificationType<JobRemovedParams>('job/removed');
}
/** LSP `window/showMessage` (server → client). */
export namespace ShowMessageNotification {
    export const type = new NotificationType<ShowMessageParams>('window/showMessage');
}
/** LSP `window/workDoneProgress/cancel` (client → server). */
export namespace WorkDoneProgressCancelNotification {
    export const type = new NotificationType<WorkDoneProgressCancelParams>('window/workDoneProgress/cancel');
}
/** LSP `window/workDoneProgress/create` (server → client). */
export namespace WorkDoneProgressCreateRequest {
    export const type = new RequestType<WorkDoneProgressCreateParams, null, void>('window/workDoneProgress/create');
}
