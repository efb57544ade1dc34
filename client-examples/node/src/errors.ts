/** Errors the blender-jobs client raises. */
import { ErrorCodes, ErrorKind, FailureKind, JobState } from './protocol';

/** Base class of every error this package raises. */
export class BlenderJobsError extends Error {
    constructor(message: string) {
        super(message);
        this.name = new.target.name;
    }
}

/**
 * A JSON-RPC error response from the server. `code`, `message` and `data` are the error object's
 * fields exactly as the server sent them; `method` is the request that failed.
 */
export class JsonRpcError extends BlenderJobsError {
    readonly code: number;
    readonly data: unknown;
    readonly method: string | undefined;

    constructor(code: number, message: string, data?: unknown, method?: string) {
        super(message);
        this.code = code;
        this.data = data;
        this.method = method;
    }

    /** `data.errorKind` of application errors (1001–1012), e.g. `JOB_NOT_FOUND`. */
    get errorKind(): ErrorKind | undefined {
        return this.dataField('errorKind') as ErrorKind | undefined;
    }

    /** `data.field` of -32602 (Invalid params): the offending parameter. */
    get field(): string | undefined {
        return this.dataField('field') as string | undefined;
    }

    /** `data.reason` of -32602 (Invalid params). */
    get reason(): string | undefined {
        return this.dataField('reason') as string | undefined;
    }

    /** `data.state` of 1002–1007. */
    get state(): JobState | undefined {
        return this.dataField('state') as JobState | undefined;
    }

    /** `data.failureKind` of 1003 (JOB_FAILED) and 1006 (JOB_INTERRUPTED, where it is `INTERRUPTED`). */
    get failureKind(): FailureKind | undefined {
        return this.dataField('failureKind') as FailureKind | undefined;
    }

    /** `data.failureMessage` of 1003 and 1006. */
    get failureMessage(): string | undefined {
        return this.dataField('failureMessage') as string | undefined;
    }

    get isJobNotFound(): boolean {
        return this.code === ErrorCodes.JobNotFound;
    }

    /** 1006: the job is INTERRUPTED, so it has no results; resumeJob runs it again. */
    get isJobInterrupted(): boolean {
        return this.code === ErrorCodes.JobInterrupted;
    }

    /** 1007: resumeJob on a job that is not INTERRUPTED. */
    get isJobNotResumable(): boolean {
        return this.code === ErrorCodes.JobNotResumable;
    }

    get isInvalidParams(): boolean {
        return this.code === ErrorCodes.InvalidParams;
    }

    private dataField(key: string): unknown {
        const data = this.data;
        if (data !== null && typeof data === 'object' && key in data) {
            return (data as Record<string, unknown>)[key];
        }
        return undefined;
    }

    override toString(): string {
        return `${this.name} ${this.code}${this.method ? ` (${this.method})` : ''}: ${this.message}`;
    }
}

/** A request got no response within its timeout. A late response is dropped. */
export class RequestTimeoutError extends BlenderJobsError {
    constructor(readonly method: string, readonly timeoutMs: number) {
        super(`request ${method} got no response within ${timeoutMs} ms`);
    }
}

/** waitForJob gave up before the job came to rest (a final state or INTERRUPTED). */
export class JobWaitTimeoutError extends BlenderJobsError {
    constructor(readonly jobId: string, readonly timeoutMs: number, readonly lastState?: JobState) {
        super(`job ${jobId} did not finish within ${timeoutMs} ms` +
            (lastState ? ` (last known state: ${lastState})` : ''));
    }
}

/** The server process is gone (or could not start); no response will come. */
export class ServerExitedError extends BlenderJobsError {
    constructor(
        message: string,
        readonly exitCode: number | null = null,
        readonly signal: NodeJS.Signals | null = null,
        readonly stderrTail: string[] = [],
    ) {
        super(ServerExitedError.describe(message, exitCode, signal, stderrTail));
    }

    private static describe(message: string, code: number | null, signal: string | null, tail: string[]): string {
        let text = message;
        if (code !== null) text += ` (exit code ${code})`;
        if (signal !== null) text += ` (signal ${signal})`;
        const last = tail.slice(-5);
        if (last.length > 0) text += `; last server log lines:\n  ${last.join('\n  ')}`;
        return text;
    }
}
