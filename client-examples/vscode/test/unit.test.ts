/**
 * Fast tests of the extension's parts that do not need VS Code: where the server comes from,
 * passed data, the job table (waits, counts, notifications before answers) and live-log
 * following (job/log before the followLog answer). The whole extension runs in real VS Code in
 * ../test-real.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { JobTable } from '../src/jobTable';
import { LogFollowers } from '../src/logFollowers';
import { parsePassedData } from '../src/passedData';
import { checkoutRoot, JVM_FLAGS, resolveServerCommand, ServerCommandInputs } from '../src/serverCommand';
import type { FollowLogResult, JobStateChangedParams, JobSummary } from '../src/wire';

/**
 * The lookup is the Node client's findServer, run here on real files: a scratch folder with a
 * checkout (client-examples/vscode inside it), a bin/ for PATH, a JDK, an executable and a jar.
 */
const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), 'bj-vscode-unit-'));
const CHECKOUT = path.join(SCRATCH, 'checkout');
const EXT = path.join(CHECKOUT, 'client-examples', 'vscode');
const TARGET = path.join(CHECKOUT, 'server', 'target');
const BIN = path.join(SCRATCH, 'bin');
const EMPTY = path.join(SCRATCH, 'empty');
const JDK = path.join(SCRATCH, 'jdk');

function executable(file: string): string {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    return file;
}

function plainFile(file: string): string {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'not really a jar');
    return file;
}

for (const dir of [EXT, TARGET, BIN, EMPTY]) fs.mkdirSync(dir, { recursive: true });
const ON_PATH = executable(path.join(BIN, 'blender-jobs-server'));
const OWN = executable(path.join(SCRATCH, 'own', 'run-server'));
const JAVA = executable(path.join(JDK, 'bin', 'java'));
const JAR = plainFile(path.join(SCRATCH, 'dist', 's.jar'));
after(() => fs.rmSync(SCRATCH, { recursive: true, force: true }));

function inputs(overrides: Partial<ServerCommandInputs> = {}): ServerCommandInputs {
    return { server: '', blender: '', serverArgs: [], extensionPath: EXT, env: { PATH: BIN }, ...overrides };
}

test('server command: the setting blenderJobs.server comes first (argument list or command line), then --blender and the extra flags', () => {
    const env = { BLENDER_JOBS_SERVER: '/elsewhere/server', PATH: BIN };
    const list = resolveServerCommand(inputs({ server: [OWN, '--log-level', 'FINE'], blender: '/opt/blender/blender', serverArgs: ['--workers', '1'], env }));
    assert.equal(list.ok, true);
    assert.deepEqual(list.ok && { command: list.server.command, args: list.server.args },
        { command: OWN, args: ['--log-level', 'FINE', '--blender', '/opt/blender/blender', '--workers', '1'] });
    assert.match(list.ok ? list.server.source : '', /^the setting blenderJobs\.server/);
    const line = resolveServerCommand(inputs({ server: `${OWN} --log-level FINE`, env }));
    assert.deepEqual(line.ok && [line.server.command, ...line.server.args], [OWN, '--log-level', 'FINE']);
    const jar = resolveServerCommand(inputs({ server: JAR, blender: '/b', env: { ...env, JAVA_HOME: JDK } }));
    assert.deepEqual(jar.ok && [jar.server.command, ...jar.server.args], [JAVA, ...JVM_FLAGS, '-jar', JAR, '--blender', '/b']);
    const missing = resolveServerCommand(inputs({ server: path.join(SCRATCH, 'nothing-here'), env }));
    assert.equal(missing.ok, false);
    assert.match(!missing.ok ? missing.problem : '', /the setting blenderJobs\.server .*does not exist/);
});

test('server command: BLENDER_JOBS_SERVER (a command line, or a jar run with java and the JVM flags), before PATH', () => {
    const exe = resolveServerCommand(inputs({ env: { BLENDER_JOBS_SERVER: `${OWN} --workers 1`, PATH: BIN } }));
    assert.deepEqual(exe, { ok: true, server: { command: OWN, args: ['--workers', '1'], source: '$BLENDER_JOBS_SERVER' } });
    const jar = resolveServerCommand(inputs({ env: { BLENDER_JOBS_SERVER: JAR, BLENDER_JOBS_JAVA: '/opt/java17/bin/java', PATH: BIN } }));
    assert.deepEqual(jar.ok && [jar.server.command, ...jar.server.args], ['/opt/java17/bin/java', ...JVM_FLAGS, '-jar', JAR]);
    const missing = resolveServerCommand(inputs({ env: { BLENDER_JOBS_SERVER: path.join(SCRATCH, 'none.jar'), PATH: BIN } }));
    assert.equal(missing.ok, false);
    assert.match(!missing.ok ? missing.problem : '', /\$BLENDER_JOBS_SERVER names the jar .*none\.jar, which does not exist/);
});

test('server command: blender-jobs-server on PATH, then the checkout build output (launcher, then jar), else a message naming every place', () => {
    const onPath = resolveServerCommand(inputs());
    assert.deepEqual(onPath, { ok: true, server: { command: ON_PATH, args: [], source: 'blender-jobs-server on PATH' } });
    assert.equal(checkoutRoot(EXT), CHECKOUT);

    const none = resolveServerCommand(inputs({ env: { PATH: EMPTY } }));
    assert.equal(none.ok, false);
    assert.match(!none.ok ? none.problem : '', /blenderJobs\.server: not given.*BLENDER_JOBS_SERVER.*blender-jobs-server on PATH.*nothing built in .*checkout.*mvn -q package/s);

    const checkoutJar = plainFile(path.join(TARGET, 'blender-jobs-server.jar'));
    const jar = resolveServerCommand(inputs({ env: { PATH: EMPTY } }));
    assert.deepEqual(jar.ok && [jar.server.command, ...jar.server.args], ['java', ...JVM_FLAGS, '-jar', checkoutJar]);
    assert.match(jar.ok ? jar.server.source : '', /the build output of the checkout .*checkout$/);
    const launcher = executable(path.join(TARGET, 'blender-jobs-server-0.2.0', 'bin', 'blender-jobs-server'));
    const dist = resolveServerCommand(inputs({ env: { PATH: EMPTY } }));
    assert.deepEqual(dist.ok && [dist.server.command, ...dist.server.args], [launcher]);
});

test('passed data: a JSON object, or a message saying what is wrong', () => {
    assert.deepEqual(parsePassedData('{"count": 3, "name": "x"}'), { ok: true, value: { count: 3, name: 'x' } });
    assert.deepEqual(parsePassedData('[1, 2]'), { ok: false, problem: 'The passed data must be a JSON object such as {"count": 3}, got an array.' });
    assert.deepEqual(parsePassedData('null', '/p/data.json'), { ok: false, problem: '/p/data.json must be a JSON object such as {"count": 3}, got null.' });
    assert.deepEqual(parsePassedData('7'), { ok: false, problem: 'The passed data must be a JSON object such as {"count": 3}, got a number.' });
    const bad = parsePassedData('{count: 3}');
    assert.equal(bad.ok, false);
    assert.match(!bad.ok ? bad.problem : '', /^The passed data is not valid JSON: /);
});

/** A listJobs summary with the options every job view carries (protocol.md getJob/listJobs). */
const summary = (fields: Pick<JobSummary, 'jobId' | 'state'> & Partial<JobSummary>): JobSummary => ({
    progress: 0, attempt: 0, createdAt: 1, elapsedMs: 0, script: '<scriptText>', timeout: 0, maxAttempts: 1,
    isolation: 'worker', priority: 0, ...fields,
});

const change = (jobId: string, state: JobStateChangedParams['state'], extra: Partial<JobStateChangedParams> = {}): JobStateChangedParams =>
    ({ jobId, state, attempt: state === 'QUEUED' ? 0 : 1, ...extra });

test('job table: counts, newest first, a wait resolves on the resting change even if it came first', async () => {
    const table = new JobTable();
    let changes = 0;
    table.onDidChange(() => changes++);
    table.seed([summary({ jobId: 'job-old', name: 'old', state: 'COMPLETED', progress: 1, attempt: 1 })]);
    table.apply(change('job-a', 'QUEUED', { name: 'a.py' }));
    table.apply(change('job-b', 'QUEUED'));
    table.apply(change('job-a', 'ACTIVE', { previousState: 'QUEUED' }));
    assert.deepEqual(table.counts(), { queued: 1, active: 1, interrupted: 0, total: 3 });
    assert.deepEqual(table.list().map((j) => j.jobId), ['job-b', 'job-a', 'job-old']);
    assert.equal(changes, 4);

    const waitA = table.waitForRest('job-a');
    table.apply(change('job-a', 'FAILED', { error: { kind: 'SCRIPT_ERROR', message: 'boom', attempt: 1, logTail: [] } }));
    const restA = await waitA;
    assert.equal(restA.state, 'FAILED');
    assert.equal('error' in restA && restA.error?.message, 'boom');
    // The notification came before the wait (the addJob answer can come after it).
    table.apply(change('job-b', 'COMPLETED'));
    assert.equal((await table.waitForRest('job-b')).state, 'COMPLETED');
    assert.equal(table.get('job-a')?.name, 'a.py', 'the name of the first notification is kept');
    table.remove('job-old');
    assert.equal(table.get('job-old'), undefined);
});

test('job table: a resumed job waits for its next rest; releaseWaiters ends every wait', async () => {
    const table = new JobTable();
    table.seed([summary({ jobId: 'job-i', state: 'INTERRUPTED', attempt: 1 })]);
    const before = table.changeCount('job-i');
    let settled: string | undefined;
    const wait = table.waitForRest('job-i', before).then((r) => { settled = r.state; });
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, undefined, 'INTERRUPTED before the resume does not count');
    table.apply(change('job-i', 'QUEUED', { previousState: 'INTERRUPTED' }));
    table.apply(change('job-i', 'ACTIVE', { previousState: 'QUEUED' }));
    table.apply(change('job-i', 'COMPLETED', { previousState: 'ACTIVE' }));
    await wait;
    assert.equal(settled, 'COMPLETED');

    table.apply(change('job-r', 'ACTIVE'));
    const running = table.waitForRest('job-r');
    table.releaseWaiters();
    assert.equal((await running).state, 'ACTIVE');
});

test('log followers: text so far, then job/log in order, also job/log that came before the answer', async () => {
    let answer!: (result: FollowLogResult) => void;
    const followers = new LogFollowers(() => new Promise((resolve) => { answer = resolve; }));
    const out: string[] = [];
    const sink = { replace: (t: string) => { out.length = 0; out.push(t); }, append: (t: string) => out.push(t) };
    followers.onLog({ jobId: 'job-1', text: 'ignored: nobody follows\n' });
    const following = followers.follow('job-1', sink);
    followers.onLog({ jobId: 'job-1', text: 'line 3\n' });       // before the answer: held
    followers.onLog({ jobId: 'job-2', text: 'other job\n' });
    answer({ jobId: 'job-1', text: 'line 1\nline 2\n', following: true });
    await following;
    followers.onLog({ jobId: 'job-1', text: 'line 4\n' });
    assert.equal(out.join(''), 'line 1\nline 2\nline 3\nline 4\n');
    assert.equal(followers.isFollowing('job-1'), true);
    followers.end('job-1');
    followers.onLog({ jobId: 'job-1', text: 'after the end\n' });
    assert.equal(out.join(''), 'line 1\nline 2\nline 3\nline 4\n');
});

test('log followers: a resting job is not followed; a failed request is not either', async () => {
    const followers = new LogFollowers(async (jobId) => ({ jobId, text: 'all of it\n', following: false }));
    const out: string[] = [];
    await followers.follow('job-1', { replace: (t) => out.push(t), append: (t) => out.push(t) });
    assert.deepEqual(out, ['all of it\n']);
    assert.equal(followers.isFollowing('job-1'), false);
    const failing = new LogFollowers(async () => { throw new Error('Unsupported request method: followLog'); });
    await assert.rejects(failing.follow('job-1', { replace: () => undefined, append: () => undefined }), /followLog/);
    assert.equal(failing.isFollowing('job-1'), false);
});
