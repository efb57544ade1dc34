/**
 * Tests of the client against the real server jar and real Blender.
 * The jar: $BLENDER_JOBS_JAR, else ../../server/target/blender-jobs-server.jar.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { BlenderJobsClient, startClient, workspaceUri } from '../src/client';
import { JsonRpcError } from '../src/errors';
import {
    AddJobParams,
    ErrorCodes,
    FAILURE_KINDS,
    JOB_STATES,
    JobRemovedParams,
    JobStateChangedParams,
    RESTING_STATES,
    ShowMessageParams,
    WorkDoneProgressBegin,
    WorkDoneProgressEnd,
    WorkDoneProgressParams,
    WorkDoneProgressReport,
    workDoneTokenOf,
} from '../src/protocol';
import { LIBRARY, MARKER_SCRIPT, Recorded, Recorder, jobScript, slowScript } from './helpers';

const JOB_TIMEOUT = 120_000;

/** An assert.rejects predicate: a JsonRpcError with this code (and `data` fields, if given). */
function rpcError(code: number, data?: Record<string, unknown>) {
    return (error: unknown): boolean => {
        assert.ok(error instanceof JsonRpcError, `expected a JsonRpcError, got ${String(error)}`);
        assert.equal(error.code, code, `code of: ${error.message}`);
        assert.equal(typeof error.message, 'string');
        assert.ok(error.message.length > 0);
        if (data) {
            assert.ok(error.data && typeof error.data === 'object', 'error has data');
            for (const [key, value] of Object.entries(data)) {
                assert.equal((error.data as Record<string, unknown>)[key], value, `data.${key}`);
            }
        }
        return true;
    };
}

describe('blender-jobs client against the real server', () => {
    let client: BlenderJobsClient;
    let recorder: Recorder;
    const serverLog: string[] = [];

    before(async () => {
        client = new BlenderJobsClient({ workers: 2, onStderrLine: (line) => serverLog.push(line) });
        recorder = new Recorder(client);
        await client.start();
    });

    after(async () => {
        if (client) await client.dispose();
    });

    test('initialize answers with the server description', async () => {
        const described = client.serverDescription;
        assert.ok(described, 'start() keeps the initialize result');
        assert.equal(described.serverInfo.name, 'blender-jobs');
        assert.match(described.serverInfo.version, /^\d+\.\d+\.\d+/);
        assert.equal(described.blender.available, true, `Blender must be available: ${described.blender.problem}`);
        assert.equal(described.workers, 2);
        for (const method of ['addJob', 'resumeJob', 'resumeAll']) {
            assert.ok(described.capabilities.requests.includes(method), method);
        }
        // The client's constants are exactly what the server announces.
        assert.deepEqual([...described.capabilities.jobStates].sort(), [...JOB_STATES].sort());
        assert.deepEqual([...described.capabilities.failureKinds].sort(), [...FAILURE_KINDS].sort());
        assert.deepEqual([...RESTING_STATES].sort(), ['CANCELED', 'COMPLETED', 'FAILED', 'INTERRUPTED']);
        assert.ok(described.capabilities.maxMessageBytes > 0);
        // No workspace and no stateDir: a temporary state directory, nothing recovered.
        assert.equal(described.stateDirTemporary, true);
        assert.equal(described.stateDirNote, undefined);
        assert.deepEqual(described.recoveredJobs, { jobs: 0, interrupted: 0, resumed: 0, pruned: 0, unreadable: 0 });

        // initialize may be sent again and answers the same way (its capabilities are the ones
        // that count from then on: the same as start() declared).
        const again = await client.initialize({
            capabilities: { window: { workDoneProgress: true }, textDocument: { publishDiagnostics: {} } },
        });
        assert.equal(again.serverInfo.name, 'blender-jobs');
        assert.equal(again.stateDir, described.stateDir);
    });

    test('a scriptText job completes and getPythonData returns its value', { timeout: JOB_TIMEOUT }, async () => {
        const added = await client.addJob({
            name: 'answer',
            scriptText: 'python_data = {"answer": x * 7, "items": [1, None, "two"], "text": passed_data["s"]}',
            passedData: { x: 6, s: "quotes ' \" and <tags>" },
        });
        assert.match(added.jobId, /^job-[0-9a-f]{12}$/);
        assert.equal(added.name, 'answer');
        assert.ok(added.state === 'QUEUED' || added.state === 'ACTIVE');

        const final = await client.waitForJob(added.jobId, JOB_TIMEOUT);
        assert.equal(final.state, 'COMPLETED', JSON.stringify(final.error));
        assert.deepEqual(await client.getPythonData(added.jobId),
            { answer: 42, items: [1, null, 'two'], text: "quotes ' \" and <tags>" });

        const job = await client.getJob(added.jobId);
        assert.equal(job.state, 'COMPLETED');
        assert.equal(job.script, '<scriptText>');
        assert.equal(job.progress, 1);
        const progress = await client.getProgress(added.jobId);
        assert.equal(progress.state, 'COMPLETED');
        const blocks = await client.getDataBlocks(added.jobId);
        assert.deepEqual(blocks, { jobId: added.jobId, blocks: {}, count: 0 });
        const listed = await client.listJobs({ name: 'answer' });
        assert.ok(listed.jobs.some((j) => j.jobId === added.jobId));
        const stats = await client.getStats();
        assert.ok(stats.completed >= 1);
        assert.equal(stats.interrupted, 0);
        assert.equal(stats.workers, 2);
    });

    test('progress notifications are non-decreasing and precede COMPLETED', { timeout: JOB_TIMEOUT }, async () => {
        const added = await client.addJob({
            name: 'bmesh',
            script: jobScript('bmesh_quad.py'),
            passedDataBlocks: { library: LIBRARY, names: { objects: ['Cube'] } },
        });
        const final = await client.waitForJob(added.jobId, JOB_TIMEOUT);
        assert.equal(final.state, 'COMPLETED', JSON.stringify(final.error));
        assert.deepEqual(await client.getPythonData(added.jobId), { faces_before: 6, faces_after: 7 });
        assert.deepEqual((await client.getDataBlocks(added.jobId)).blocks, { objects: ['Cube_quad'] });

        const events = recorder.forJob(added.jobId);
        const states = events.flatMap((e) => (e.kind === 'state' ? [e.params.state] : []));
        assert.deepEqual(states, ['QUEUED', 'ACTIVE', 'COMPLETED']);
        const completedAt = events.findIndex((e) => e.kind === 'state' && e.params.state === 'COMPLETED');
        const progress = events.flatMap((e, i) => (e.kind === 'progress' ? [{ i, value: e.params.progress }] : []));
        assert.ok(progress.length >= 1, 'at least one job/progress');
        for (const p of progress) assert.ok(p.i < completedAt, 'every job/progress comes before COMPLETED');
        for (let k = 1; k < progress.length; k++) {
            assert.ok(progress[k].value >= progress[k - 1].value,
                `progress went down: ${progress.map((p) => p.value).join(', ')}`);
        }
        assert.equal(progress[progress.length - 1].value, 1, 'the final report (1.0) is delivered before COMPLETED');
        // 100 reports with no delay are coalesced (at most one per 20 ms).
        assert.ok(progress.length < 100, `expected coalescing, got ${progress.length} notifications`);
    });

    test('waitForJob resolves for a job whose final notification arrived before the wait', { timeout: JOB_TIMEOUT }, async () => {
        const added = await client.addJob({ scriptText: 'python_data = 1' });
        await recorder.waitFor((e) => e.kind === 'state' && e.params.jobId === added.jobId && e.params.state === 'COMPLETED',
            JOB_TIMEOUT, 'COMPLETED');
        const started = Date.now();
        const final = await client.waitForJob(added.jobId, 5_000);
        assert.equal(final.state, 'COMPLETED');
        assert.ok(Date.now() - started < 1_000, 'resolved at once from the recorded notification');
        assert.equal(await client.getPythonData(added.jobId), 1);
    });

    test('a failing script ends FAILED with SCRIPT_ERROR; getPythonData answers 1003', { timeout: JOB_TIMEOUT }, async () => {
        const added = await client.addJob({ script: jobScript('raises.py') });
        const final = await client.waitForJob(added.jobId, JOB_TIMEOUT);
        assert.equal(final.state, 'FAILED');
        assert.equal(final.error?.kind, 'SCRIPT_ERROR');
        assert.match(final.error?.traceback ?? '', /fixture failure: expected/);
        await assert.rejects(client.getPythonData(added.jobId),
            rpcError(ErrorCodes.JobFailed, { errorKind: 'JOB_FAILED', failureKind: 'SCRIPT_ERROR', jobId: added.jobId }));
        const removed = new Promise<JobRemovedParams>((resolve) => {
            client.onJobRemoved((p) => { if (p.jobId === added.jobId) resolve(p); });
        });
        assert.equal((await client.removeJob(added.jobId)).removed, true);
        assert.deepEqual(await removed, { jobId: added.jobId, reason: 'REMOVED' });
        // The client forgot the job's FAILED state with it: a wait says the job is unknown.
        await assert.rejects(client.waitForJob(added.jobId, JOB_TIMEOUT), rpcError(ErrorCodes.JobNotFound));
    });

    test('onServerMessage reports job states that could not be saved, then their recovery', { timeout: JOB_TIMEOUT }, async () => {
        const messages: ShowMessageParams[] = [];
        const savedAgain = new Promise<void>((resolve) => {
            client.onServerMessage((m) => {
                messages.push(m);
                if (m.kind === 'RECORDS_SAVED_AGAIN') resolve();
            });
        });
        const added = await client.addJob({ script: jobScript('unsaved_record.py') });
        const final = await client.waitForJob(added.jobId, JOB_TIMEOUT);
        assert.equal(final.state, 'COMPLETED', JSON.stringify(final));
        assert.deepEqual(await client.getPythonData(added.jobId), { still: 'served' });
        await savedAgain;
        assert.equal(messages[0].kind, 'RECORDS_NOT_SAVED');
        assert.equal(messages[0].type, 2);
        assert.match(messages[0].message, new RegExp(`${added.jobId}.*No space left on device`));
        assert.equal(messages[messages.length - 1].type, 3);
    });

    test('an unknown job is answered with error 1001', async () => {
        const jobId = 'job-000000000000';
        const notFound = rpcError(ErrorCodes.JobNotFound, { errorKind: 'JOB_NOT_FOUND', jobId });
        await assert.rejects(client.getJob(jobId), notFound);
        await assert.rejects(client.getProgress(jobId), notFound);
        await assert.rejects(client.getPythonData(jobId), notFound);
        await assert.rejects(client.cancelJob(jobId), notFound);
        await assert.rejects(client.removeJob(jobId), notFound);
        // waitForJob does not hang on a job that does not exist.
        await assert.rejects(client.waitForJob(jobId, 30_000), notFound);
    });

    test('bad params are answered with -32602 naming the field in data.field', async () => {
        const misspelled = { scriptText: 'pass', nmae: 'x' } as unknown as AddJobParams;
        await assert.rejects(client.addJob(misspelled), rpcError(ErrorCodes.InvalidParams, { field: 'nmae' }));
        await assert.rejects(client.addJob({ scriptText: 'pass', timeout: -1 }),
            rpcError(ErrorCodes.InvalidParams, { field: 'timeout' }));
        await assert.rejects(client.addJob({}), rpcError(ErrorCodes.InvalidParams, { field: 'script' }));
        await assert.rejects(client.addJob({ script: '/nope/missing.py' }),
            rpcError(ErrorCodes.InvalidParams, { field: 'script' }));
        await assert.rejects(client.getJob(12 as unknown as string), rpcError(ErrorCodes.InvalidParams, { field: 'jobId' }));
        await assert.rejects(client.listJobs({ state: 'DONE' as never }), rpcError(ErrorCodes.InvalidParams, { field: 'state' }));
        try {
            await client.addJob({ scriptText: 'pass', maxAttempts: 1.5 });
            assert.fail('maxAttempts 1.5 was accepted');
        } catch (error) {
            assert.ok(error instanceof JsonRpcError);
            assert.equal(error.isInvalidParams, true);
            assert.equal(error.field, 'maxAttempts');
            assert.equal(typeof error.reason, 'string');
            assert.equal(error.method, 'addJob');
        }
    });

    test('cancelJob on a running job ends it CANCELED', { timeout: JOB_TIMEOUT }, async () => {
        const added = await client.addJob({ name: 'to cancel', scriptText: slowScript(60) });
        // The script is running once it has reported progress.
        await recorder.waitFor((e) => e.kind === 'progress' && e.params.jobId === added.jobId, JOB_TIMEOUT, 'first progress');
        const canceled = await client.cancelJob(added.jobId);
        assert.deepEqual(canceled, { jobId: added.jobId, state: 'CANCELED', previousState: 'ACTIVE', canceled: true });
        const final = await client.waitForJob(added.jobId, 30_000);
        assert.equal(final.state, 'CANCELED');
        assert.equal(final.previousState, 'ACTIVE');
        await assert.rejects(client.getPythonData(added.jobId), rpcError(ErrorCodes.JobCanceled, { errorKind: 'JOB_CANCELED' }));
        // Canceling again is not an error.
        const again = await client.cancelJob(added.jobId);
        assert.equal(again.canceled, false);
        assert.equal(again.state, 'CANCELED');
    });

    describe('LSP work-done progress', () => {
        test('a job added with workDoneProgress is reported on the token the server creates', { timeout: JOB_TIMEOUT }, async () => {
            const added = await client.addJob({
                name: 'work done',
                script: jobScript('remesh.py'),
                passedData: { duration: 0.5 },
                passedDataBlocks: { library: LIBRARY, names: { objects: ['Cube'] } },
                workDoneProgress: true,
            });
            const token = workDoneTokenOf(added.jobId);
            const final = await client.waitForJob(added.jobId, JOB_TIMEOUT);
            assert.equal(final.state, 'COMPLETED', JSON.stringify(final.error));
            await recorder.waitFor((e) => e.kind === 'workDone' && e.params.token === token && e.params.value.kind === 'end',
                10_000, `$/progress end for ${token}`);

            const values = recorder.forToken(token).map((p: WorkDoneProgressParams) => p.value);
            assert.ok(values.length >= 3, `begin, report(s), end: ${JSON.stringify(values)}`);
            const begin = values[0] as WorkDoneProgressBegin;
            assert.equal(begin.kind, 'begin');
            assert.equal(begin.title, 'Blender job work done');
            assert.equal(begin.cancellable, true);
            assert.equal(begin.percentage, 0);

            const end = values[values.length - 1] as WorkDoneProgressEnd;
            assert.equal(end.kind, 'end');
            assert.equal(end.message, 'completed');

            const reports = values.slice(1, -1) as WorkDoneProgressReport[];
            assert.ok(reports.length >= 1, 'at least one report');
            let last = 0;
            for (const report of reports) {
                assert.equal(report.kind, 'report', `only reports between begin and end: ${JSON.stringify(values)}`);
                assert.ok(Number.isInteger(report.percentage), `integer percentage: ${report.percentage}`);
                assert.ok(report.percentage! >= 0 && report.percentage! <= 100);
                assert.ok(report.percentage! >= last, 'percentages do not go down');
                last = report.percentage!;
            }
            assert.equal(last, 100, 'remesh.py reports 1.0 at its end');
            assert.ok(reports.some((r) => r.message === 'evaluating'), 'the script messages are passed on');
            // The usual job/* notifications still come too.
            assert.ok(recorder.forJob(added.jobId).some((e) => e.kind === 'progress'));
        });

        test('a client workDoneToken gets begin and end before the addJob answer, and nothing after', { timeout: JOB_TIMEOUT }, async () => {
            const token = client.createWorkDoneToken();
            const added = await client.addJob({ name: 'client token', scriptText: slowScript(0.5), workDoneToken: token });
            // Both are here with the answer: the server sent them before it.
            const during = recorder.forToken(token).map((p) => p.value);
            assert.deepEqual(during.map((v) => v.kind), ['begin', 'end'], JSON.stringify(during));
            assert.equal((during[0] as WorkDoneProgressBegin).title, 'Adding Blender job client token');
            assert.match((during[1] as WorkDoneProgressEnd).message ?? '', new RegExp(`^(queued|started) as ${added.jobId}$`));
            assert.equal((await client.waitForJob(added.jobId, JOB_TIMEOUT)).state, 'COMPLETED');
            assert.equal(recorder.forToken(token).length, 2, 'nothing on the token after the answer');
            assert.equal(recorder.forToken(workDoneTokenOf(added.jobId)).length, 0, 'no server token without workDoneProgress');
        });

        test('window/workDoneProgress/cancel with the server token cancels a running job', { timeout: JOB_TIMEOUT }, async () => {
            const added = await client.addJob({ name: 'work done cancel', scriptText: slowScript(60), workDoneProgress: true });
            const token = workDoneTokenOf(added.jobId);
            await recorder.waitFor((e) => e.kind === 'workDone' && e.params.token === token && e.params.value.kind === 'report',
                JOB_TIMEOUT, `a $/progress report for token ${token}`);
            await client.cancelWorkDoneProgress(token);
            const final = await client.waitForJob(added.jobId, 30_000);
            assert.equal(final.state, 'CANCELED');
            assert.equal(final.previousState, 'ACTIVE');
            await recorder.waitFor((e) => e.kind === 'workDone' && e.params.token === token && e.params.value.kind === 'end',
                10_000, `$/progress end for token ${token}`);
            const values = recorder.forToken(token).map((p) => p.value);
            assert.equal(values[0].kind, 'begin');
            assert.equal(values.filter((v) => v.kind === 'end').length, 1, 'exactly one end');
            assert.deepEqual(values[values.length - 1], { kind: 'end', message: 'canceled' });
        });
    });

    describe('live logs and diagnostics', () => {
        test('followLog + onLog: the console so far, then every print, until the job rests', { timeout: JOB_TIMEOUT }, async () => {
            const script = [
                'import time',
                'print("first")',
                'for i in range(4):',
                '    update_job_progress((i + 1) / 4)',
                '    time.sleep(0.3)',
                '    print("tick %d \u00e9" % i)',
                'print("last")',
            ].join('\n');
            const added = await client.addJob({ name: 'printer', scriptText: script });
            await recorder.waitFor((e) => e.kind === 'progress' && e.params.jobId === added.jobId, JOB_TIMEOUT, 'progress');
            const followed = await client.followLog(added.jobId);
            assert.equal(followed.jobId, added.jobId);
            assert.equal(followed.following, true);
            assert.ok(followed.text.startsWith('first\n'), followed.text);
            const final = await client.waitForJob(added.jobId, JOB_TIMEOUT);
            assert.equal(final.state, 'COMPLETED');
            const live = recorder.logOf(added.jobId);
            assert.ok(live.length >= 1, 'job/log notifications came');
            const whole = followed.text + live.join('');
            const logFile = (await client.getJob(added.jobId)).logFile;
            assert.equal(whole, fs.readFileSync(logFile, 'utf8'), 'answer + job/log = the log');
            assert.ok(whole.endsWith('tick 3 é\nlast\n'), whole);
            // The last job/log came before the COMPLETED notification.
            let lastLog = -1;
            recorder.events.forEach((e, i) => { if (e.kind === 'log' && e.params.jobId === added.jobId) lastLog = i; });
            const completed = recorder.events.findIndex((e) => e.kind === 'state' && e.params.jobId === added.jobId
                && e.params.state === 'COMPLETED');
            assert.ok(lastLog < completed, `job/log ${lastLog} before COMPLETED ${completed}`);
            // A resting job: the whole log, not followed.
            assert.deepEqual(await client.followLog(added.jobId), { jobId: added.jobId, text: whole, following: false });
            assert.deepEqual(await client.unfollowLog(added.jobId), { jobId: added.jobId, following: false });
            await assert.rejects(client.followLog('job-000000000000'), rpcError(ErrorCodes.JobNotFound));
        });

        test('onDiagnostics: the failing line of a script file, cleared by its next completed job', { timeout: JOB_TIMEOUT }, async () => {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bj-node-diag-'));
            try {
                const file = path.join(dir, 'failing job.py');
                fs.writeFileSync(file, 'x = 1\n\ndef f():\n    raise KeyError("missing")\n\nf()\n');
                const uri = pathToFileURL(file).href;
                const failed = await client.addJob({ script: file });
                assert.equal((await client.waitForJob(failed.jobId, JOB_TIMEOUT)).state, 'FAILED');
                const published = await recorder.waitFor((e) => e.kind === 'diagnostics' && e.params.uri === uri,
                    10_000, `diagnostics for ${uri}`) as Extract<Recorded, { kind: 'diagnostics' }>;
                assert.equal(published.params.diagnostics.length, 1);
                const [d] = published.params.diagnostics;
                assert.deepEqual(d.range.start, { line: 3, character: 0 });
                assert.equal(d.range.end.line, 3);
                assert.equal(d.severity, 1);
                assert.equal(d.source, 'blender-jobs');
                assert.equal(d.message, "KeyError: 'missing'");
                assert.deepEqual(d.relatedInformation?.map((r) => [r.location.uri, r.location.range.start.line, r.message]),
                    [[uri, 5, 'in <module>: f()']]);

                fs.writeFileSync(file, 'python_data = {"fixed": True}\n');
                const fixed = await client.addJob({ script: file });
                assert.equal((await client.waitForJob(fixed.jobId, JOB_TIMEOUT)).state, 'COMPLETED');
                await recorder.waitFor((e) => e.kind === 'diagnostics' && e.params.uri === uri && e.params.diagnostics.length === 0,
                    10_000, `cleared diagnostics for ${uri}`);
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        });
    });

    test('requests time out on the client side', async () => {
        // A 0 ms limit is (almost always) too short for a round trip through the JVM; the late
        // answer is dropped. Tried a few times so a very fast answer cannot make this flaky.
        let timedOut = 0;
        for (let i = 0; i < 5; i++) {
            try {
                await client.getStats(0);
            } catch (error) {
                assert.equal((error as Error).name, 'RequestTimeoutError', String(error));
                assert.equal((error as { method?: string }).method, 'getStats');
                timedOut++;
            }
        }
        assert.ok(timedOut > 0, 'a request with a 0 ms timeout timed out');
        // The connection is still usable afterwards.
        assert.equal((await client.getStats()).workers, 2);
    });

    test('dispose sends shutdown and exit; the running job becomes INTERRUPTED; exit code 0', { timeout: 60_000 }, async () => {
        const own = await startClient({ workers: 1 });
        const ownRecorder = new Recorder(own);
        const running = await own.addJob({ scriptText: slowScript(60) });
        await ownRecorder.waitFor((e) => e.kind === 'progress' && e.params.jobId === running.jobId, JOB_TIMEOUT, 'first progress');
        // A wait under way when the server shuts down resolves with INTERRUPTED: it does not hang.
        const waiting = own.waitForJob(running.jobId, 30_000);
        const exitCode = await own.dispose();
        assert.equal(exitCode, 0);
        const final = await waiting;
        assert.equal(final.state, 'INTERRUPTED');
        assert.equal(final.previousState, 'ACTIVE');
        assert.equal(final.error?.kind, 'INTERRUPTED');
        // shutdown interrupted the running job (not CANCELED; the notification may follow the
        // shutdown response, and is still delivered before dispose() returns).
        assert.equal(own.lastKnownState(running.jobId)?.state, 'INTERRUPTED');
        const states = ownRecorder.forJob(running.jobId).flatMap((e) => (e.kind === 'state' ? [e.params.state] : []));
        assert.deepEqual(states, ['QUEUED', 'ACTIVE', 'INTERRUPTED']);
        // after exit, requests fail with ServerExitedError
        await assert.rejects(own.getStats(), (error: unknown) => {
            assert.equal((error as Error).name, 'ServerExitedError');
            return true;
        });
    });
});

describe('durability: jobs outlive the server', () => {
    let tmp: string;
    const clients: BlenderJobsClient[] = [];

    before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bj-node-durability-')); });
    after(async () => {
        for (const c of clients) await c.dispose().catch(() => undefined);
        fs.rmSync(tmp, { recursive: true, force: true });
    });

    async function start(options: ConstructorParameters<typeof BlenderJobsClient>[0]): Promise<BlenderJobsClient> {
        const c = new BlenderJobsClient({ workers: 1, ...options });
        clients.push(c);
        await c.start();
        return c;
    }

    /** A server with a running job (MARKER_SCRIPT) and a queued one, shut down: both INTERRUPTED. */
    async function interruptedJobs(options: ConstructorParameters<typeof BlenderJobsClient>[0], marker: string) {
        const first = await start(options);
        const recorder = new Recorder(first);
        const running = await first.addJob({ name: 'long', scriptText: MARKER_SCRIPT, passedData: { marker } });
        const queued = await first.addJob({ name: 'waiting', scriptText: 'python_data = {"queued": True}' });
        await recorder.waitFor((e) => e.kind === 'progress' && e.params.jobId === running.jobId, JOB_TIMEOUT, 'first progress');
        assert.ok(fs.existsSync(marker), 'the first run created the marker');
        const waits = Promise.all([first.waitForJob(running.jobId, 30_000), first.waitForJob(queued.jobId, 30_000)]);
        assert.equal(await first.dispose(), 0);
        const [a, b]: JobStateChangedParams[] = await waits;
        assert.deepEqual([a.state, a.previousState, a.error?.kind], ['INTERRUPTED', 'ACTIVE', 'INTERRUPTED']);
        assert.deepEqual([b.state, b.previousState, b.error?.kind], ['INTERRUPTED', 'QUEUED', 'INTERRUPTED']);
        assert.ok(!recorder.events.some((e) => e.kind === 'state' && e.params.state === 'CANCELED'), 'nothing was canceled');
        return { running, queued };
    }

    test('workspaceUri makes file URIs of paths and keeps URIs', () => {
        assert.equal(workspaceUri('/home/me/my project'), 'file:///home/me/my%20project');
        assert.equal(workspaceUri('file:///home/me/project'), 'file:///home/me/project');
        assert.equal(workspaceUri('vscode-remote://ssh-remote+box/src'), 'vscode-remote://ssh-remote+box/src');
    });

    test('shutdown interrupts a running job; a server on the same --state-dir resumes it', { timeout: JOB_TIMEOUT }, async () => {
        const stateDir = path.join(tmp, 'state');
        const marker = path.join(tmp, 'marker-1');
        const { running, queued } = await interruptedJobs({ stateDir }, marker);

        const second = await start({ stateDir });
        const info = second.serverDescription!;
        assert.equal(fs.realpathSync(info.stateDir), fs.realpathSync(stateDir));
        assert.equal(info.stateDirTemporary, false);
        assert.deepEqual(info.recoveredJobs, { jobs: 2, interrupted: 2, resumed: 0, pruned: 0, unreadable: 0 });
        const listed = await second.listJobs({ state: 'INTERRUPTED' });
        assert.deepEqual(listed.jobs.map((j) => [j.jobId, j.errorKind]),
            [[running.jobId, 'INTERRUPTED'], [queued.jobId, 'INTERRUPTED']]);
        assert.equal((await second.getStats()).interrupted, 2);
        await assert.rejects(second.getPythonData(running.jobId), (error: unknown) => {
            rpcError(ErrorCodes.JobInterrupted, { errorKind: 'JOB_INTERRUPTED', state: 'INTERRUPTED', jobId: running.jobId })(error);
            assert.equal((error as JsonRpcError).isJobInterrupted, true);
            assert.equal((error as JsonRpcError).failureKind, 'INTERRUPTED');
            return true;
        });
        // Waiting on a job that came to rest under the earlier server answers at once.
        const started = Date.now();
        const rested = await second.waitForJob(running.jobId, 10_000);
        assert.equal(rested.state, 'INTERRUPTED');
        assert.equal(rested.error?.kind, 'INTERRUPTED');
        assert.ok(Date.now() - started < 1_500, `waitForJob took ${Date.now() - started} ms`);

        const resumed = await second.resumeJob(running.jobId);
        assert.equal(resumed.jobId, running.jobId);
        assert.equal(resumed.previousState, 'INTERRUPTED');
        assert.ok(resumed.state === 'QUEUED' || resumed.state === 'ACTIVE', resumed.state);
        const final = await second.waitForJob(running.jobId, JOB_TIMEOUT); // the resumed run, not the old rest
        assert.equal(final.state, 'COMPLETED', JSON.stringify(final.error));
        assert.deepEqual(await second.getPythonData(running.jobId), { resumed: true });
        assert.deepEqual((await second.getJob(running.jobId)).earlierErrors.map((e) => e.kind), ['INTERRUPTED']);
        await assert.rejects(second.resumeJob(running.jobId),
            rpcError(ErrorCodes.JobNotResumable, { errorKind: 'JOB_NOT_RESUMABLE', state: 'COMPLETED' }));
        // The queued one is still INTERRUPTED; cancelJob drops it.
        const canceled = await second.cancelJob(queued.jobId);
        assert.deepEqual([canceled.previousState, canceled.state, canceled.canceled], ['INTERRUPTED', 'CANCELED', true]);
        assert.equal((await second.waitForJob(queued.jobId, 10_000)).state, 'CANCELED');
        assert.equal(await second.dispose(), 0);
    });

    test('a workspace names a persistent state directory; resumeAll runs its interrupted jobs', { timeout: JOB_TIMEOUT }, async () => {
        const env = { ...process.env, XDG_DATA_HOME: path.join(tmp, 'data') };
        const workspace = path.join(tmp, 'project');
        fs.mkdirSync(workspace);
        const marker = path.join(tmp, 'marker-2');

        const probe = await start({ workspace, env });
        const stateDir = probe.serverDescription!.stateDir;
        assert.equal(probe.serverDescription!.stateDirTemporary, false);
        assert.equal(path.dirname(stateDir), path.join(tmp, 'data', 'blender-jobs', 'workspaces'));
        // A second window on the same workspace: a temporary directory, and the note says why.
        const window2 = await start({ workspaceFolders: [{ uri: workspaceUri(workspace), name: 'project' }], env });
        assert.equal(window2.serverDescription!.stateDirTemporary, true);
        assert.notEqual(window2.serverDescription!.stateDir, stateDir);
        assert.ok(window2.serverDescription!.stateDirNote?.includes(stateDir), window2.serverDescription!.stateDirNote);
        assert.equal(await window2.dispose(), 0);
        assert.equal(await probe.dispose(), 0);

        const { running, queued } = await interruptedJobs({ workspace, env }, marker);
        const later = await start({ workspace, env });
        assert.equal(later.serverDescription!.stateDir, stateDir);
        assert.deepEqual(later.serverDescription!.recoveredJobs, { jobs: 2, interrupted: 2, resumed: 0, pruned: 0, unreadable: 0 });
        assert.deepEqual(await later.resumeAll(), { resumed: 2, jobIds: [running.jobId, queued.jobId] });
        const finals = await Promise.all([later.waitForJob(running.jobId, JOB_TIMEOUT), later.waitForJob(queued.jobId, JOB_TIMEOUT)]);
        assert.deepEqual(finals.map((f) => f.state), ['COMPLETED', 'COMPLETED']);
        assert.deepEqual(await later.getPythonData(queued.jobId), { queued: true });
        assert.deepEqual(await later.resumeAll(), { resumed: 0, jobIds: [] });
        assert.equal(await later.dispose(), 0);
    });
});
