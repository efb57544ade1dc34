/**
 * The messages this extension exchanges with the server, beyond what vscode-languageclient does by
 * itself (initialize, shutdown, `$/progress`, `window/workDoneProgress/create`,
 * `textDocument/publishDiagnostics`, `window/showMessage`). protocol.md is the reference; the
 * shapes come from the Node client's types (client-examples/node/src/protocol.ts; a type-only
 * import: none of it is bundled).
 */
import type { JobState } from '../../node/src/protocol';

export type {
    AddJobParams,
    AddJobResult,
    CancelJobResult,
    FollowLogParams,
    FollowLogResult,
    GetDataBlocksResult,
    GetJobResult,
    InitializeResult,
    JobLogParams,
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

