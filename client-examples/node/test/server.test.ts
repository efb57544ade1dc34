/** The server lookup every client shares: option, $BLENDER_JOBS_SERVER, PATH, a checkout's build output. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { ServerNotFoundError, findServer, splitCommandLine } from '../src/server';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'blender-jobs-node-find-'));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

function executable(file: string): string {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    return file;
}

const BIN = path.join(TMP, 'bin');
const ON_PATH = executable(path.join(BIN, 'blender-jobs-server'));
const CHECKOUT = path.join(TMP, 'checkout');
const LAUNCHER = executable(path.join(CHECKOUT, 'server', 'target', 'blender-jobs-server-9.9.9', 'bin', 'blender-jobs-server'));
const JAR = path.join(CHECKOUT, 'server', 'target', 'blender-jobs-server.jar');
fs.writeFileSync(JAR, '');
const NOWHERE = path.join(TMP, 'nowhere');
fs.mkdirSync(NOWHERE);

test('the explicit option comes first; a lone .jar runs with java', () => {
    const env = { BLENDER_JOBS_SERVER: ON_PATH, PATH: BIN };
    assert.deepEqual(findServer({ server: [LAUNCHER, '--log-level', 'FINE'], env }).command, [LAUNCHER, '--log-level', 'FINE']);
    assert.equal(findServer({ server: JAR, env }).jar, JAR);
    assert.equal(findServer({ jar: JAR, env }).jar, JAR);
});

test('then $BLENDER_JOBS_SERVER (a command line), $BLENDER_JOBS_JAR, PATH, and a checkout: launcher before jar', () => {
    assert.deepEqual(findServer({ env: { BLENDER_JOBS_SERVER: `'${LAUNCHER}' --workers 1`, PATH: BIN }, cwd: NOWHERE }).command,
        [LAUNCHER, '--workers', '1']);
    assert.equal(findServer({ env: { BLENDER_JOBS_JAR: JAR, PATH: BIN }, cwd: NOWHERE }).jar, JAR);
    assert.deepEqual(findServer({ env: { PATH: BIN }, checkouts: [CHECKOUT], cwd: NOWHERE }).command, [ON_PATH]);
    const empty = { PATH: path.join(TMP, 'empty') };
    assert.deepEqual(findServer({ env: empty, checkouts: [CHECKOUT], cwd: NOWHERE }).command, [LAUNCHER]);
    // The current folder or one of its parents may be the checkout.
    assert.deepEqual(findServer({ env: empty, cwd: path.join(CHECKOUT, 'server') }).command, [LAUNCHER]);
    fs.rmSync(path.join(CHECKOUT, 'server', 'target', 'blender-jobs-server-9.9.9'), { recursive: true });
    assert.equal(findServer({ env: empty, checkouts: [CHECKOUT], cwd: NOWHERE }).jar, JAR);
});

test('nothing found: the error names the four places in order', () => {
    let error: unknown;
    try {
        findServer({ env: { PATH: path.join(TMP, 'empty') }, cwd: NOWHERE, option: 'the --server option' });
    } catch (e) {
        error = e;
    }
    assert.ok(error instanceof ServerNotFoundError, String(error));
    const message = (error as Error).message;
    const steps = ['1. the --server option: not given', '2. $BLENDER_JOBS_SERVER: not set',
        '3. blender-jobs-server on PATH: not found', '4. the build output of a blender-jobs checkout'];
    const positions = steps.map((s) => message.indexOf(s));
    assert.ok(positions.every((p) => p >= 0) && positions.join() === [...positions].sort((a, b) => a - b).join(), message);
    assert.match(message, /mvn -q package/);
    assert.throws(() => findServer({ env: { BLENDER_JOBS_SERVER: path.join(TMP, 'missing', 'blender-jobs-server') } }),
        /\$BLENDER_JOBS_SERVER names .* does not exist/);
});

test('command lines split like a shell splits words', () => {
    assert.deepEqual(splitCommandLine(`/opt/a\\ b/x --flag "two words" 'it''s' ""`), ['/opt/a b/x', '--flag', 'two words', 'its', '']);
});
