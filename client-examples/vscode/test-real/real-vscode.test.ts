/**
 * The extension in real VS Code: code-server 4.100.3 (VS Code 1.100.3, the real extension host)
 * with the built .vsix installed, shown by Debian's Chromium driven with puppeteer-core, running
 * jobs on the real blender-jobs server jar with real Blender. Nothing is faked.
 *
 * Each check is its own test, in order, so every one is reported even when another fails:
 *   - the workspace opens with the extension installed;
 *   - "Run Current File as Blender Job" from the command palette: the job completes on the server;
 *   - (a) its progress was shown (vscode-languageclient's window progress, in the status bar) and ended;
 *   - (b) its log output channel showed what the script printed while it ran, and all of it at the end;
 *   - "Show Job Results": python_data as a JSON document, the data-block library's path;
 *   - passed data typed into the JSON input box reaches the script;
 *   - "Cancel Job" cancels a running job;
 *   - a failing script fails, and (c) its failing line gets a squiggle and a Problems entry.
 * Screenshots go to test-real/out/. Everything started here (code-server and what it runs: the
 * extension host, the blender-jobs server, Blender; Chromium) is stopped at the end by pid, also
 * when a check fails.
 *
 * Needs: dist/blender-jobs-vscode.vsix (npm run build && npm run package), the server jar
 * ($BLENDER_JOBS_JAR or ../../server/target/blender-jobs-server.jar), Blender, and
 * test-real/install-code-server.sh (run here; it reuses its cache folder).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import puppeteer, { Browser, Page } from 'puppeteer-core';

const HERE = path.resolve(__dirname, '..', '..', '..', 'test-real'); // build/vscode/test-real → test-real
const EXTENSION_ROOT = path.dirname(HERE);
const VSIX = path.join(EXTENSION_ROOT, 'dist', 'blender-jobs-vscode.vsix');
const JAR = path.resolve(process.env.BLENDER_JOBS_JAR ?? path.join(EXTENSION_ROOT, '..', '..', 'server', 'target', 'blender-jobs-server.jar'));
const OUT = path.join(HERE, 'out');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const EXTENSION_ID = 'blender-jobs.blender-jobs-vscode';

const RUN = 'Blender Jobs: Run Current File as Blender Job';
const RUN_WITH_DATA = 'Blender Jobs: Run Current File as Blender Job with Passed Data...';
const SHOW_RESULTS = 'Blender Jobs: Show Job Results...';
const CANCEL = 'Blender Jobs: Cancel Job...';

/** The scripts of the workspace. Line numbers of failing_job.py matter: the raise is line 5. */
const SCRIPTS: Record<string, string> = {
    'progress_job.py': [
        'import time',
        'import bpy',
        '',
        'steps = passed_data.get("steps", 5)',
        'for i in range(steps):',
        '    print("progress_job: step %d of %d" % (i + 1, steps))',
        '    update_job_progress((i + 1) / steps, "step %d" % (i + 1))',
        '    time.sleep(0.6)',
        'mesh = bpy.data.meshes.new("ResultMesh")',
        'obj = bpy.data.objects.new("Result", mesh)',
        'data_blocks.append(obj)',
        'python_data = {"steps": steps, "object": obj.name}',
        '',
    ].join('\n'),
    'failing_job.py': [
        'print("failing_job: about to fail")',
        '',
        '',
        'def check(value):',
        '    raise ValueError("value %r is not allowed" % value)',
        '',
        '',
        'check(42)',
        '',
    ].join('\n'),
    'long_job.py': [
        'import time',
        '',
        'for i in range(600):',
        '    update_job_progress(i / 600, "waiting")',
        '    time.sleep(0.1)',
        '',
    ].join('\n'),
};
const FAILING_LINE = 5;

// ------------------------------------------------------------------------------ the run's state

let tmp = '';
let codeServer: ChildProcess | undefined;
let codeServerLog = '';
let browser: Browser | undefined;
let page: Page | undefined;
/** What the page showed over time (status bar texts, notification messages), recorded every 100 ms. */
interface Seen { status: string[]; toasts: string[] }
/** Steps that later checks need; a check whose step failed says so instead of timing out. */
const done = new Set<string>();
/** Whether the job's log channel showed its printed lines while the job still ran (check (b)). */
let liveLogSeen = false;

function needs(step: string): Page {
    if (!done.has(step)) throw new Error(`cannot check: the step "${step}" did not succeed (see its failure above)`);
    return page!;
}

before(async () => {
    for (const [what, file] of [['the .vsix (npm run package)', VSIX], ['the server jar', JAR]]) {
        if (!fs.existsSync(file)) throw new Error(`${what} is missing: ${file}`);
    }
    fs.mkdirSync(OUT, { recursive: true });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bj-vscode-real-'));
    const dirs = { user: path.join(tmp, 'user-data'), extensions: path.join(tmp, 'extensions'), project: path.join(tmp, 'project'),
        data: path.join(tmp, 'xdg-data'), config: path.join(tmp, 'xdg-config') };
    for (const dir of Object.values(dirs)) fs.mkdirSync(dir, { recursive: true });
    for (const [name, text] of Object.entries(SCRIPTS)) fs.writeFileSync(path.join(dirs.project, name), text);

    const started = Date.now();
    const installDir = execFileSync('bash', [path.join(HERE, 'install-code-server.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 1_500_000 }).trim();
    log(`code-server ready in ${installDir} (${Math.round((Date.now() - started) / 1000)} s)`);
    const entry = path.join(installDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
    // The server keeps the workspace's jobs under $XDG_DATA_HOME; code-server its config under $XDG_CONFIG_HOME.
    const env = { ...process.env, XDG_DATA_HOME: dirs.data, XDG_CONFIG_HOME: dirs.config };
    const common = ['--user-data-dir', dirs.user, '--extensions-dir', dirs.extensions];

    execFileSync(process.execPath, [entry, ...common, '--install-extension', VSIX], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    const listed = execFileSync(process.execPath, [entry, ...common, '--list-extensions'], { env, encoding: 'utf8', timeout: 60_000 });
    assert.match(listed, new RegExp(EXTENSION_ID.replace('.', '\\.')), `the .vsix is installed: ${listed}`);

    fs.mkdirSync(path.join(dirs.user, 'User'), { recursive: true });
    fs.writeFileSync(path.join(dirs.user, 'User', 'settings.json'), JSON.stringify({
        'security.workspace.trust.enabled': false,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'telemetry.telemetryLevel': 'off',
        // A lone jar: the extension runs it with java and the JVM flags (the Node client's findServer).
        'blenderJobs.server': JAR,
        'blenderJobs.serverArgs': ['--workers', '1'],
        ...(process.env.BLENDER ? { 'blenderJobs.blender': process.env.BLENDER } : {}),
    }, null, 2));

    const port = await freePort();
    codeServerLog = path.join(tmp, 'code-server.log');
    const logFd = fs.openSync(codeServerLog, 'w');
    // Its own process group: the extension host, the blender-jobs server and Blender are in it too.
    codeServer = spawn(process.execPath, [entry, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry',
        ...common, dirs.project], { env, detached: true, stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    await waitFor(async () => (await httpStatus(`http://127.0.0.1:${port}/healthz`)) === 200, 60_000, 'code-server to answer');

    browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu'],
        defaultViewport: { width: 1400, height: 900 },
    });
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(dirs.project)}`, { waitUntil: 'networkidle2', timeout: 60_000 });
    await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    await page.evaluate(() => {
        const seen = { status: [] as string[], toasts: [] as string[] };
        (window as unknown as { __bj: typeof seen }).__bj = seen;
        let last = '';
        setInterval(() => {
            const bar = document.querySelector<HTMLElement>('.part.statusbar');
            const text = bar ? bar.innerText.replace(/\s+/g, ' ').trim() : '';
            if (text !== last) seen.status.push(text);
            last = text;
            for (const message of document.querySelectorAll<HTMLElement>('.notification-list-item-message')) {
                if (!seen.toasts.includes(message.innerText)) seen.toasts.push(message.innerText);
            }
        }, 100);
    });
}, { timeout: 1_800_000 });

after(async () => {
    const problems: string[] = [];
    if (page) await page.screenshot({ path: path.join(OUT, 'last.png') }).catch(() => undefined);
    const chromiumPid = browser?.process()?.pid;
    await browser?.close().catch((error) => problems.push(`closing chromium: ${error}`));
    if (chromiumPid && alive(chromiumPid)) killGroup(chromiumPid, 'SIGKILL');
    if (codeServer?.pid) {
        const pid = codeServer.pid;
        const tree = [pid, ...descendants(pid)];
        // SIGTERM to the group: the blender-jobs server shuts down (its Blender workers with it).
        killGroup(pid, 'SIGTERM');
        const gone = await waitFor(async () => tree.every((p) => !alive(p)), 15_000, 'the processes to end').then(() => true, () => false);
        if (!gone) {
            const left = tree.filter(alive);
            problems.push(`still running 15 s after SIGTERM, killed: ${left.map(describePid).join('; ')}`);
            killGroup(pid, 'SIGKILL');
            for (const p of left) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
        }
    }
    if (tmp && problems.length === 0 && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
    else if (tmp) log(`kept ${tmp} (code-server log: ${codeServerLog})`);
    assert.deepEqual(problems, [], 'everything started was stopped');
});

// Last resort if the run dies: no code-server or chromium outlives it.
process.on('exit', () => {
    if (codeServer?.pid && alive(codeServer.pid)) killGroup(codeServer.pid, 'SIGKILL');
    const chromiumPid = browser?.process()?.pid;
    if (chromiumPid && alive(chromiumPid)) killGroup(chromiumPid, 'SIGKILL');
});

// -------------------------------------------------------------------------------------- checks

test('the workspace opens in code-server with the extension installed', { timeout: 60_000 }, async () => {
    const p = page!;
    await waitForText(p, '.explorer-folders-view', 'progress_job.py', 30_000);
    await openFile(p, 'progress_job.py');
    done.add('workspace');
});

test('Run Current File: the job runs on the real server and completes', { timeout: 150_000 }, async () => {
    const p = needs('workspace');
    await runCommand(p, RUN);
    // Screenshot the progress while it shows (check (a) reads the record, this is for people).
    const shot = watchFor(p, async () => (await statusHas(p, 'Blender job progress_job.py')) && statusHasRegex(p, /Blender: 1 running/),
        'progress.png');
    // The live log: the script's second line in the job's channel while the progress still shows.
    const live = watchFor(p, async () => (await outputText(p)).includes('progress_job: step 2 of 5') &&
        (await statusHas(p, 'Blender job progress_job.py')) && statusHasRegex(p, /Blender: 1 running/), 'log-live.png');
    await waitForToast(p, /Blender job progress_job\.py completed: \{"steps":5,"object":"Result"\}/, 120_000);
    await shot.stop();
    liveLogSeen = await live.stop();
    await settle();
    await p.screenshot({ path: path.join(OUT, 'completed.png') });
    done.add('run');
});

test('(a) the job\'s progress was shown (window progress in the status bar) and ended', { timeout: 30_000 }, async () => {
    const p = needs('run');
    const seen = await recorded(p);
    const progress = seen.status.filter((text) => text.includes('Blender job progress_job.py'));
    assert.ok(progress.length > 0, 'vscode-languageclient showed no progress titled "Blender job progress_job.py" ' +
        `while the job ran; the status bar showed: ${JSON.stringify(seen.status.slice(-8))}`);
    await waitFor(async () => !(await statusHas(p, 'Blender job progress_job.py')), 10_000, 'the progress to end');
});

test('(b) the job\'s log output channel filled with what the script printed', { timeout: 30_000 }, async () => {
    const p = needs('run');
    assert.ok(liveLogSeen, 'the job\'s output channel never showed "progress_job: step 2 of 5" while the job still ran ' +
        '(its progress in the status bar): the log is not live');
    let text = '';
    const expected = [1, 2, 3, 4, 5].map((i) => `progress_job: step ${i} of 5`);
    try {
        await waitFor(async () => {
            text = await outputText(p);
            return expected.every((line) => text.includes(line));
        }, 15_000, 'the printed lines in the output channel');
    } finally {
        await p.screenshot({ path: path.join(OUT, 'log.png') });
    }
    const channel = await p.$eval('.part.panel', (panel) => (panel as HTMLElement).innerText).catch(() => '');
    assert.match(channel, /Blender Job progress_job\.py \(job-[0-9a-f]+\)/, 'the job has its own output channel');
    assert.ok(text.indexOf(expected[0]) < text.indexOf(expected[4]), 'lines in order');
});

test('Show Job Results: python_data as a JSON document and the data-block library path', { timeout: 60_000 }, async () => {
    const p = needs('run');
    await runCommand(p, SHOW_RESULTS);
    await pickFirst(p, /progress_job\.py/);
    await waitFor(async () => {
        const text = await activeEditorText(p);
        return text.includes('"steps": 5') && text.includes('"object": "Result"');
    }, 20_000, 'python_data in the active editor');
    await waitForToast(p, /returned 1 data block\(s\) \(objects: Result\) in the library \/.*\/result\/data_blocks\.blend/, 20_000);
    await settle();
    await p.screenshot({ path: path.join(OUT, 'results.png') });
});

test('Run with Passed Data: the JSON typed in the input box reaches the script', { timeout: 90_000 }, async () => {
    const p = needs('run');
    await openFile(p, 'progress_job.py');
    await runCommand(p, RUN_WITH_DATA);
    await pickFirst(p, /Type JSON/);
    await p.waitForSelector('.quick-input-widget .quick-input-box input', { visible: true });
    await p.keyboard.down('Control');
    await p.keyboard.press('KeyA');
    await p.keyboard.up('Control');
    await p.keyboard.type('{"steps": 2}');
    await p.keyboard.press('Enter');
    await waitForToast(p, /Blender job progress_job\.py completed: \{"steps":2,"object":"Result"\}/, 60_000);
});

test('Cancel Job: a running job is canceled', { timeout: 90_000 }, async () => {
    const p = needs('run');
    await openFile(p, 'long_job.py');
    await runCommand(p, RUN);
    await waitFor(async () => statusHasRegex(p, /Blender: 1 running/), 30_000, 'the job to run');
    await runCommand(p, CANCEL);
    await pickFirst(p, /long_job\.py/);
    await waitForToast(p, /Blender job long_job\.py canceled \(it was ACTIVE\)\./, 30_000);
    await waitForToast(p, /Blender job long_job\.py was canceled\./, 30_000);
});

test('a failing script: the job fails with its error shown', { timeout: 90_000 }, async () => {
    const p = needs('run');
    await openFile(p, 'failing_job.py');
    await runCommand(p, RUN);
    await waitForToast(p, /Blender job failing_job\.py failed \(SCRIPT_ERROR\): the script raised ValueError: value 42 is not allowed/, 60_000);
    await settle();
    await p.screenshot({ path: path.join(OUT, 'failed.png') });
    done.add('failed');
});

test('(c) the failing line got a squiggle and a Problems entry', { timeout: 40_000 }, async () => {
    const p = needs('failed');
    let squiggles: { top: number; lineTop: number | null }[] = [];
    try {
        await waitFor(async () => {
            squiggles = await p.evaluate((line: string) => {
                const editor = document.querySelector('.editor-group-container.active .monaco-editor');
                if (!editor) return [];
                const rows = [...editor.querySelectorAll<HTMLElement>('.view-lines .view-line')];
                const row = rows.find((r) => r.innerText.replace(/\u00a0/g, ' ').includes(line));
                return [...editor.querySelectorAll<HTMLElement>('.squiggly-error')].map((s) => ({
                    top: parseFloat((s.parentElement as HTMLElement).style.top),
                    lineTop: row ? parseFloat(row.style.top) : null,
                }));
            }, 'raise ValueError');
            return squiggles.length > 0;
        }, 15_000, 'a squiggle in failing_job.py');
    } finally {
        await p.screenshot({ path: path.join(OUT, 'squiggle.png') });
    }
    assert.ok(squiggles.some((s) => s.lineTop !== null && s.top === s.lineTop),
        `a squiggle on line ${FAILING_LINE} (raise ValueError): ${JSON.stringify(squiggles)}`);
    await p.keyboard.down('Control');
    await p.keyboard.down('Shift');
    await p.keyboard.press('KeyM'); // View: Problems
    await p.keyboard.up('Shift');
    await p.keyboard.up('Control');
    await waitForText(p, '.markers-panel', 'value 42 is not allowed', 10_000);
    await p.screenshot({ path: path.join(OUT, 'problems.png') });
});

// ------------------------------------------------------------------------------------- helpers

/** Lets a notification finish sliding in before a screenshot. */
function settle(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, 700));
}

function log(message: string): void {
    process.stderr.write(`[real-vscode] ${message}\n`);
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
        if (await check().catch(() => false)) return;
        if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 150));
    }
}

async function waitForText(p: Page, selector: string, text: string, timeoutMs: number): Promise<void> {
    await waitFor(async () => (await p.$eval(selector, (e) => (e as HTMLElement).innerText)).includes(text), timeoutMs,
        `"${text}" in ${selector}`);
}

async function recorded(p: Page): Promise<Seen> {
    return p.evaluate(() => (window as unknown as { __bj: Seen }).__bj);
}

async function waitForToast(p: Page, pattern: RegExp, timeoutMs: number): Promise<void> {
    try {
        await waitFor(async () => (await recorded(p)).toasts.some((t) => pattern.test(t)), timeoutMs, `a notification ${pattern}`);
    } catch (error) {
        throw new Error(`${(error as Error).message}; notifications so far: ${JSON.stringify((await recorded(p)).toasts)}`);
    }
}

async function statusHas(p: Page, text: string): Promise<boolean> {
    return (await p.$eval('.part.statusbar', (e) => (e as HTMLElement).innerText)).includes(text);
}

async function statusHasRegex(p: Page, pattern: RegExp): Promise<boolean> {
    return pattern.test(await p.$eval('.part.statusbar', (e) => (e as HTMLElement).innerText.replace(/\s+/g, ' ')));
}

/**
 * Takes one screenshot (into OUT/name) the first time `check` is true, until stopped; stop()
 * resolves with whether it was.
 */
function watchFor(p: Page, check: () => Promise<boolean>, name: string): { stop(): Promise<boolean> } {
    let stopped = false;
    const loop = (async () => {
        while (!stopped) {
            if (await check().catch(() => false)) {
                await p.screenshot({ path: path.join(OUT, name) });
                return true;
            }
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return false;
    })();
    return { stop: async () => { stopped = true; return loop; } };
}

async function outputText(p: Page): Promise<string> {
    return p.$eval('.part.panel .monaco-editor .view-lines', (e) => (e as HTMLElement).innerText.replace(/\u00a0/g, ' '));
}

async function activeEditorText(p: Page): Promise<string> {
    return p.$eval('.editor-group-container.active .monaco-editor .view-lines',
        (e) => (e as HTMLElement).innerText.replace(/\u00a0/g, ' '));
}

/** Opens a file of the workspace with Quick Open (Ctrl+P). */
async function openFile(p: Page, name: string): Promise<void> {
    await p.keyboard.press('Escape');
    await p.keyboard.down('Control');
    await p.keyboard.press('KeyP');
    await p.keyboard.up('Control');
    await p.waitForSelector('.quick-input-widget .quick-input-box input', { visible: true });
    await p.keyboard.type(name);
    await pickFirst(p, new RegExp(name.replace('.', '\\.')));
    await waitFor(async () => (await p.$eval('.tabs-container .tab.active', (e) => (e as HTMLElement).innerText)).includes(name),
        10_000, `${name} in the active tab`);
}

/** Runs a command through the command palette (F1), checking that the row chosen is the command. */
async function runCommand(p: Page, title: string): Promise<void> {
    await p.keyboard.press('Escape');
    await p.keyboard.press('F1');
    await p.waitForSelector('.quick-input-widget .quick-input-box input', { visible: true });
    await p.keyboard.type(title);
    // Recently used commands come first, so a longer title that matches too may be above it.
    await waitFor(async () => {
        if ((await focusedRow(p)) === title) return true;
        await p.keyboard.press('ArrowDown');
        return false;
    }, 10_000, `"${title}" in the command palette`);
    await p.keyboard.press('Enter');
}

/** Waits for the quick pick's focused row to match, then chooses it (Enter). */
async function pickFirst(p: Page, pattern: RegExp): Promise<void> {
    await waitFor(async () => pattern.test(await focusedRow(p)), 15_000, `a quick pick row ${pattern}`);
    await p.keyboard.press('Enter');
}

async function focusedRow(p: Page): Promise<string> {
    return p.$eval('.quick-input-widget .quick-input-list .monaco-list-row.focused .label-name',
        (label) => (label as HTMLElement).innerText.replace(/\s+/g, ' ').trim()).catch(() => '');
}

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address() as net.AddressInfo;
            server.close(() => resolve(port));
        });
        server.on('error', reject);
    });
}

function httpStatus(url: string): Promise<number> {
    return new Promise((resolve) => {
        http.get(url, (response) => { response.resume(); resolve(response.statusCode ?? 0); }).on('error', () => resolve(0));
    });
}

function alive(pid: number): boolean {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'; // a zombie has ended
    } catch {
        return false;
    }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
    try {
        process.kill(-pid, signal);
    } catch {
        // already gone
    }
}

/** Every process below `root`, from /proc (taken before stopping, so orphans are still known). */
function descendants(root: number): number[] {
    const children = new Map<number, number[]>();
    for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
        } catch {
            // ended meanwhile
        }
    }
    const found: number[] = [];
    const walk = (pid: number) => { for (const child of children.get(pid) ?? []) { found.push(child); walk(child); } };
    walk(root);
    return found;
}

function describePid(pid: number): string {
    try {
        return `${pid} ${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 120)}`;
    } catch {
        return String(pid);
    }
}
