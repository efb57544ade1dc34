/**
 * Runs the compiled VS Code extension example (vscode-extension/out) with a small stand-in for
 * the `vscode` module, against the real server: the command saves the file, runs it as a job,
 * reports progress through withProgress and shows the result. Needs `npm run build:extension`.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { defaultJarPath, packageRoot } from '../src/client';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Module = require('node:module') as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };

const EXTENSION = path.join(packageRoot(), 'vscode-extension', 'out', 'vscode-extension', 'src', 'extension.js');

interface Shown { level: string; text: string }

interface FakeOptions {
    /** The window's workspace folder (vscode.workspace.workspaceFolders), if any. */
    workspaceFolder?: string;
    /** Called once, at the first progress report with an increment (the script reported progress). */
    onFirstReport?: () => void;
}

/** Just enough of the vscode API for extension.ts, recording what the extension does with it. */
function fakeVscode(file: string, cancelAfterFirstReport: boolean, options: FakeOptions = {}) {
    let onFirstReport = options.onFirstReport;
    const commands = new Map<string, () => Promise<void>>();
    const shown: Shown[] = [];
    const reports: { increment?: number; message?: string }[] = [];
    let saved = 0;
    const cancelListeners: (() => void)[] = [];
    const api = {
        ProgressLocation: { Notification: 15 },
        window: {
            activeTextEditor: {
                document: {
                    uri: { scheme: 'file', fsPath: file },
                    languageId: 'python',
                    isDirty: true,
                    save: async () => { saved++; return true; },
                },
            },
            createOutputChannel: () => ({ appendLine: () => undefined, show: () => undefined, dispose: () => undefined }),
            showInformationMessage: async (text: string) => { shown.push({ level: 'info', text }); return undefined; },
            showWarningMessage: async (text: string) => { shown.push({ level: 'warning', text }); return undefined; },
            showErrorMessage: async (text: string) => { shown.push({ level: 'error', text }); return undefined; },
            withProgress: async (options: { cancellable?: boolean; location: number }, task: (progress: unknown, token: unknown) => Promise<unknown>) => {
                assert.equal(options.location, 15);
                assert.equal(options.cancellable, true);
                const progress = {
                    report: (value: { increment?: number; message?: string }) => {
                        reports.push(value);
                        if (onFirstReport && value.increment !== undefined) {
                            const call = onFirstReport;
                            onFirstReport = undefined;
                            call();
                        }
                        if (cancelAfterFirstReport && value.increment !== undefined) {
                            cancelAfterFirstReport = false;
                            for (const listener of cancelListeners) listener();
                        }
                    },
                };
                const token = {
                    isCancellationRequested: false,
                    onCancellationRequested: (listener: () => void) => { cancelListeners.push(listener); return { dispose() {} }; },
                };
                return task(progress, token);
            },
        },
        commands: {
            registerCommand: (id: string, run: () => Promise<void>) => { commands.set(id, run); return { dispose() {} }; },
        },
        workspace: {
            workspaceFolders: options.workspaceFolder === undefined ? undefined : [{
                uri: { toString: () => pathToFileURL(options.workspaceFolder!).href, fsPath: options.workspaceFolder },
                name: path.basename(options.workspaceFolder),
                index: 0,
            }],
            getConfiguration: () => ({
                get: (key: string, fallback?: unknown) => (key === 'serverJar' ? defaultJarPath() : key === 'workers' ? 1 : fallback),
            }),
            onDidChangeConfiguration: () => ({ dispose() {} }),
        },
    };
    return { api, commands, shown, reports, saved: () => saved };
}

type Extension = { activate(context: unknown): void; deactivate(): Promise<void> };

function loadExtension(fake: ReturnType<typeof fakeVscode>): Extension {
    const original = Module._load;
    Module._load = function (request: string, parent: unknown, isMain: boolean) {
        if (request === 'vscode') return fake.api;
        return original.call(this, request, parent, isMain);
    };
    try {
        delete require.cache[EXTENSION];
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        return require(EXTENSION) as Extension;
    } finally {
        Module._load = original;
    }
}

const built = fs.existsSync(EXTENSION);
const skip = built ? false : 'the extension is not built (npm run build:extension)';

test('VS Code extension: runs the current file, reports progress, shows the result', { skip, timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bj-ext-'));
    const file = path.join(dir, 'job.py');
    fs.writeFileSync(file, [
        'import time',
        'for i in range(5):',
        '    time.sleep(0.1)',
        '    update_job_progress((i + 1) / 5, "step %d" % (i + 1))',
        'python_data = {"from": "extension"}',
    ].join('\n'));
    const fake = fakeVscode(file, false);
    const extension = loadExtension(fake);
    extension.activate({ subscriptions: [] });
    try {
        await fake.commands.get('blender-jobs.runCurrentFile')!();
        assert.equal(fake.saved(), 1, 'the dirty document was saved first');
        assert.deepEqual(fake.shown.map((s) => s.level), ['info'], JSON.stringify(fake.shown));
        assert.match(fake.shown[0].text, /job\.py completed: \{"from":"extension"\}/);
        const increments = fake.reports.reduce((sum, r) => sum + (r.increment ?? 0), 0);
        assert.equal(increments, 100, `progress reached 100 %: ${JSON.stringify(fake.reports)}`);
        assert.ok(fake.reports.some((r) => r.message?.includes('step 5')));
    } finally {
        await extension.deactivate();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('VS Code extension: Cancel in the notification cancels the job', { skip, timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bj-ext-'));
    const file = path.join(dir, 'long.py');
    fs.writeFileSync(file, 'import time\nfor i in range(600):\n    time.sleep(0.1)\n    update_job_progress((i + 1) / 600)\n');
    const fake = fakeVscode(file, true);
    const extension = loadExtension(fake);
    extension.activate({ subscriptions: [] });
    try {
        await fake.commands.get('blender-jobs.runCurrentFile')!();
        assert.deepEqual(fake.shown, [{ level: 'warning', text: 'long.py was canceled.' }]);
    } finally {
        await extension.deactivate();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('VS Code extension: passes its workspace folder; a job the server stopped is INTERRUPTED and resumed by the next server',
    { skip, timeout: 120_000 }, async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bj-ext-'));
        const project = path.join(dir, 'project');
        fs.mkdirSync(project);
        const file = path.join(project, 'resumable.py');
        // The first run creates a marker next to the script and sleeps; a resumed run returns at once.
        fs.writeFileSync(file, [
            'import os, time',
            'marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "marker")',
            'if os.path.exists(marker):',
            '    python_data = {"resumed": True}',
            'else:',
            '    open(marker, "w").close()',
            '    update_job_progress(0.1, "first run")',
            '    time.sleep(60)',
        ].join('\n'));
        const savedXdg = process.env.XDG_DATA_HOME;
        process.env.XDG_DATA_HOME = path.join(dir, 'data'); // the workspace's state directory goes here
        let extension: Extension | undefined;
        try {
            // 1. The job is running when the extension deactivates (the server shuts down).
            let stopping: Promise<void> | undefined;
            const first = fakeVscode(file, false, {
                workspaceFolder: project,
                onFirstReport: () => { setImmediate(() => { stopping = extension!.deactivate(); }); },
            });
            extension = loadExtension(first);
            extension.activate({ subscriptions: [] });
            await first.commands.get('blender-jobs.runCurrentFile')!();
            await stopping;
            extension = undefined;
            assert.equal(first.shown.length, 1, JSON.stringify(first.shown));
            assert.equal(first.shown[0].level, 'warning');
            assert.match(first.shown[0].text, /^resumable\.py was interrupted: the server stopped/);
            const workspaces = path.join(dir, 'data', 'blender-jobs', 'workspaces');
            assert.equal(fs.readdirSync(workspaces).length, 1, 'the server kept its jobs in the workspace state directory');

            // 2. The next server of the same workspace reports the interrupted job; the command resumes it.
            const second = fakeVscode(file, false, { workspaceFolder: project });
            extension = loadExtension(second);
            extension.activate({ subscriptions: [] });
            await second.commands.get('blender-jobs.resumeInterrupted')!();
            assert.deepEqual(second.shown.map((s) => s.level), ['info', 'info'], JSON.stringify(second.shown));
            assert.match(second.shown[0].text, /1 job\(s\) were interrupted when the server last stopped/);
            assert.match(second.shown[1].text, /^resumable\.py completed: \{"resumed":true\}/);
        } finally {
            if (extension) await extension.deactivate();
            if (savedXdg === undefined) delete process.env.XDG_DATA_HOME;
            else process.env.XDG_DATA_HOME = savedXdg;
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
