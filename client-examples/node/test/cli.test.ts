/**
 * Runs the command-line example against the real server, as a child process in a temporary folder
 * (its workspace) with a temporary $XDG_DATA_HOME: every job given must end as expected.
 */
import assert from 'node:assert/strict';
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { packageRoot } from '../src/client';
import { LIBRARY, jobScript } from './helpers';

const CLI = path.join(packageRoot(), 'dist', 'src', 'cli.js');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'blender-jobs-node-cli-'));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));
const ENV = { ...process.env, XDG_DATA_HOME: path.join(TMP, 'data') };

function cli(args: string[], timeout = 110_000): SpawnSyncReturns<string> {
    return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout, cwd: TMP, env: ENV });
}

test('the CLI runs the scripts it is given with the passed blocks; plain lines when not a TTY', { timeout: 300_000 }, () => {
    const run = cli(['--workers', '2', '--library', LIBRARY, '--objects', 'Cube', '--data', '{"duration": 0.2}',
        jobScript('remesh.py'), jobScript('bmesh_quad.py')], 280_000);
    const output = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, output);
    assert.match(run.stdout, /2 of 2 jobs ended as expected/);
    assert.match(run.stdout, /ok {3}remesh\.py job-[0-9a-f]{12}: COMPLETED python_data=\{"pi":3\.14159/);
    assert.match(run.stdout, /ok {3}bmesh_quad\.py .*"faces_after":7/);
    // Not a TTY here: plain progress lines, no ANSI escapes.
    assert.doesNotMatch(run.stdout, /\x1b\[/);
    assert.match(run.stdout, /\[remesh\.py job-[0-9a-f]{12}\] \d+% ACTIVE/);
    // The current folder is the workspace: the jobs are kept in its state directory.
    assert.match(run.stdout, new RegExp(`jobs kept in ${path.join(TMP, 'data', 'blender-jobs', 'workspaces')}`));
});

test('the CLI checks the expected outcome: a timeout expected, a failure not', { timeout: 200_000 }, () => {
    const timedOut = cli(['--workers', '1', '--timeout', '2', '--expect', 'FAILED:TIMED_OUT', jobScript('timeout_loop.py')]);
    assert.equal(timedOut.status, 0, `${timedOut.stdout}\n${timedOut.stderr}`);
    assert.match(timedOut.stdout, /ok {3}timeout_loop\.py job-[0-9a-f]{12}: FAILED TIMED_OUT/);
    const failed = cli(['--workers', '1', '--attempts', '2', jobScript('raises.py')]);
    assert.equal(failed.status, 1, `${failed.stdout}\n${failed.stderr}`);
    assert.match(failed.stdout, /FAIL raises\.py job-[0-9a-f]{12}: FAILED SCRIPT_ERROR/);
    assert.match(failed.stdout, /0 of 1 jobs ended as expected/);
});

test('the CLI passes --blender and other server flags on to the server', { timeout: 120_000 }, () => {
    const missing = path.join(TMP, 'no-such-blender');
    const run = cli(['--blender', missing, '--log-level', 'FINE', '--retain-days', '3', jobScript('echo.py')]);
    assert.equal(run.status, 1, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /Blender \(none\)/);
    assert.match(run.stderr, new RegExp(`no usable Blender: .*${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});

test('the CLI rejects unknown options and a missing script list with exit code 2', () => {
    const bogus = cli(['--bogus']);
    assert.equal(bogus.status, 2);
    assert.match(bogus.stderr, /unknown option --bogus/);
    const none = cli([]);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /give at least one script/);
});
