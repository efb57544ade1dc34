/** Runs the command-line example against the real server: every example job must end as expected. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { packageRoot } from '../src/client';
import { jobScript } from './helpers';

const CLI = path.join(packageRoot(), 'dist', 'src', 'cli.js');

test('the CLI runs the example jobs; timeout_loop fails with TIMED_OUT; exit code 0', { timeout: 300_000 }, () => {
    const run = spawnSync(process.execPath, [CLI, '--workers', '2'], { encoding: 'utf8', timeout: 280_000 });
    const output = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, output);
    assert.match(run.stdout, /4 of 4 jobs ended as expected/);
    assert.match(run.stdout, /ok {3}remesh\.py job-[0-9a-f]{12}: COMPLETED python_data=\{"pi":3\.14159/);
    assert.match(run.stdout, /ok {3}bmesh_quad\.py .*"faces_after":7/);
    assert.match(run.stdout, /ok {3}metaballs\.py .*"elements":4/);
    assert.match(run.stdout, /ok {3}timeout_loop\.py job-[0-9a-f]{12}: FAILED TIMED_OUT/);
    // Not a TTY here: plain progress lines, no ANSI escapes.
    assert.doesNotMatch(run.stdout, /\x1b\[/);
    assert.match(run.stdout, /\[remesh\.py job-[0-9a-f]{12}\] \d+% ACTIVE/);
});

test('the CLI runs a script given on the command line and exits 1 when it fails', { timeout: 120_000 }, () => {
    const run = spawnSync(process.execPath, [CLI, '--workers', '1', jobScript('raises.py')], { encoding: 'utf8', timeout: 110_000 });
    assert.equal(run.status, 1, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /FAIL raises\.py job-[0-9a-f]{12}: FAILED SCRIPT_ERROR/);
    assert.match(run.stdout, /0 of 1 jobs ended as expected/);
});

test('the CLI rejects an unknown option with exit code 2', () => {
    const run = spawnSync(process.execPath, [CLI, '--bogus'], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /unknown option --bogus/);
});
