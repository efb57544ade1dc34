/**
 * Live job logs: `followLog` answers with the console so far, then `job/log` notifications carry
 * what the script prints next. Notifications are written by another thread of the server than
 * responses, so a `job/log` can arrive before the `followLog` answer: those are held and written
 * after the answer's text. The server stops sending when the job comes to rest, but its last text
 * may arrive next to its resting job/stateChanged, so a follow is kept until it is ended or replaced.
 * No vscode import: the sink is any text destination (an output channel).
 */
import type { FollowLogResult, JobLogParams } from './wire';

export interface LogSink {
    /** Starts over with the console so far (a second follow of the same job repeats it). */
    replace(text: string): void;
    append(text: string): void;
}

type Follow = { state: 'pending'; held: string[]; sink: LogSink } | { state: 'following'; sink: LogSink };

export class LogFollowers {
    private readonly follows = new Map<string, Follow>();

    constructor(private readonly request: (jobId: string) => Promise<FollowLogResult>) {}

    /** Follows a job's log into `sink`. Resolves with the server's answer; rejects as the request does. */
    async follow(jobId: string, sink: LogSink): Promise<FollowLogResult> {
        const follow: Follow = { state: 'pending', held: [], sink };
        this.follows.set(jobId, follow);
        let result: FollowLogResult;
        try {
            result = await this.request(jobId);
        } catch (error) {
            if (this.follows.get(jobId) === follow) this.follows.delete(jobId);
            throw error;
        }
        if (this.follows.get(jobId) !== follow) return result; // followed again meanwhile: that one wins
        sink.replace(result.text);
        for (const text of follow.held) sink.append(text);
        if (result.following) this.follows.set(jobId, { state: 'following', sink });
        else this.follows.delete(jobId);
        return result;
    }

    /** A `job/log` notification. Text of jobs nobody follows is dropped. */
    onLog(params: JobLogParams): void {
        const follow = this.follows.get(params.jobId);
        if (!follow) return;
        if (follow.state === 'pending') follow.held.push(params.text);
        else follow.sink.append(params.text);
    }

    /** The job was removed: nothing more will come. */
    end(jobId: string): void {
        const follow = this.follows.get(jobId);
        if (follow?.state === 'following') this.follows.delete(jobId);
    }

    isFollowing(jobId: string): boolean {
        return this.follows.has(jobId);
    }

    clear(): void {
        this.follows.clear();
    }
}
