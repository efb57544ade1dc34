/**
 * The messages this extension exchanges with the server, beyond what vscode-languageclient does by
 * itself (initialize, shutdown, `$/progress`, `window/workDoneProgress/create`,
 * `textDocument/publishDiagnostics`, `window/showMessage`). protocol.md is the reference; the
 * shapes of today's messages come from the Node client's types (type-only import: nothing of the
 * Node client is bundled), the ones of the coming live-log messages are written here.
 */
import type { AddJobParams, JobState } from '../../node/src/protocol';

export type {
    AddJobResult,
    CancelJobResult,
    GetDataBlocksResult,
    GetJobResult,
    InitializeResult,
    JobRemovedParams,
    JobState,
    JobStateChangedParams,
    JobSummary,
    JsonObject,
    JsonValue,
    ListJobsParams,
    ListJobsResult,
    ResumeAllResult,
} from '../../node/src/protocol';

/**
 * addJob with `workDoneProgress: true`: the server creates a work-done token of its own
 * (`window/workDoneProgress/create`) and reports the job on it, which vscode-languageclient shows.
 */
export type AddJobWithProgressParams = AddJobParams & { workDoneProgress?: boolean };

/** `followLog` request. */
export interface FollowLogParams {
    jobId: string;
}

/** `followLog` result: the console so far (a bounded tail); `following` is false for a resting job. */
export interface FollowLogResult {
    jobId: string;
    text: string;
    following: boolean;
}

/** `job/log` notification: text the job's script printed, exactly as printed. */
export interface JobLogParams {
    jobId: string;
    text: string;
}

/** Method names. */
export const Methods = {
    addJob: 'addJob',
    getPythonData: 'getPythonData',
    getDataBlocks: 'getDataBlocks',
    getJob: 'getJob',
    listJobs: 'listJobs',
    cancelJob: 'cancelJob',
    resumeAll: 'resumeAll',
    followLog: 'followLog',
    jobStateChanged: 'job/stateChanged',
    jobRemoved: 'job/removed',
    jobLog: 'job/log',
} as const;

/** JSON-RPC error codes the extension reacts to (protocol.md §5). */
export const Codes = {
    MethodNotFound: -32601,
    InvalidParams: -32602,
} as const;

/** A state a job rests in: final, or INTERRUPTED. */
export function isResting(state: JobState): boolean {
    return state === 'COMPLETED' || state === 'FAILED' || state === 'CANCELED' || state === 'INTERRUPTED';
}

