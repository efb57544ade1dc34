/**
 * Minimal VS Code extension: "Blender Jobs: Run Current File as Blender Job" saves the active
 * Python file, runs it as a blender-jobs job (`script` = the file's path) and shows the job's
 * progress in the notification area, updated from job/progress notifications. Cancel in the
 * notification sends cancelJob. The server is started on first use (setting
 * `blenderJobs.serverJar`) and stopped when the extension deactivates.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { BlenderJobsClient } from '../../src/client';
import { JsonRpcError } from '../../src/errors';
import { JobProgressParams, JobStateChangedParams } from '../../src/protocol';

let client: BlenderJobsClient | undefined;
let starting: Promise<BlenderJobsClient> | undefined;
let output: vscode.OutputChannel;

export function activate(context: vscode.ExtensionContext): void {
    output = vscode.window.createOutputChannel('Blender Jobs');
    context.subscriptions.push(
        output,
        vscode.commands.registerCommand('blender-jobs.runCurrentFile', () => runCurrentFile()),
        // A changed setting takes effect with the next server.
        vscode.workspace.onDidChangeConfiguration((e) => {
            if (e.affectsConfiguration('blenderJobs')) void stopServer();
        }),
    );
}

export async function deactivate(): Promise<void> {
    await stopServer();
}

async function stopServer(): Promise<void> {
    const current = client ?? (starting ? await starting.catch(() => undefined) : undefined);
    client = undefined;
    starting = undefined;
    if (current) await current.dispose();
}

function getClient(): Promise<BlenderJobsClient> {
    if (client) return Promise.resolve(client);
    if (!starting) {
        starting = (async () => {
            const config = vscode.workspace.getConfiguration('blenderJobs');
            const jar = config.get<string>('serverJar') || process.env.BLENDER_JOBS_JAR;
            if (!jar) throw new Error('Set "blenderJobs.serverJar" to the path of blender-jobs-server.jar.');
            const created = new BlenderJobsClient({
                jar,
                java: config.get<string>('java') || 'java',
                workers: config.get<number>('workers', 2),
                serverArgs: config.get<string[]>('serverArgs', []),
                clientInfo: { name: 'blender-jobs-vscode', version: '0.1.0' },
                onStderrLine: (line) => output.appendLine(`[server] ${line}`),
            });
            try {
                const info = await created.start();
                output.appendLine(`blender-jobs ${info.serverInfo.version}, Blender ${info.blender.version ?? '-'}, ` +
                    `${info.workers} worker(s)`);
                if (!info.blender.available) throw new Error(`No usable Blender: ${info.blender.problem ?? ''}`);
            } catch (error) {
                await created.dispose();
                throw error;
            }
            client = created;
            return created;
        })().finally(() => { starting = undefined; });
    }
    return starting;
}

async function runCurrentFile(): Promise<void> {
    const document = vscode.window.activeTextEditor?.document;
    if (!document || document.uri.scheme !== 'file' || document.languageId !== 'python') {
        void vscode.window.showErrorMessage('Blender Jobs: open a saved Python file first.');
        return;
    }
    if (document.isDirty && !(await document.save())) {
        void vscode.window.showErrorMessage('Blender Jobs: the file could not be saved.');
        return;
    }
    const file = document.uri.fsPath;
    const label = path.basename(file);

    let jobs: BlenderJobsClient;
    try {
        jobs = await getClient();
    } catch (error) {
        void vscode.window.showErrorMessage(`Blender Jobs: the server did not start: ${(error as Error).message}`);
        return;
    }

    let final: JobStateChangedParams;
    let jobId: string;
    try {
        ({ final, jobId } = await vscode.window.withProgress({
            location: vscode.ProgressLocation.Notification,
            title: `Blender job ${label}`,
            cancellable: true,
        }, async (progress, cancel) => {
            let id: string | undefined;
            let shown = 0; // percent already reported (withProgress takes increments)
            const early: JobProgressParams[] = []; // progress that came before the addJob answer
            const show = (p: JobProgressParams) => {
                const percent = Math.round(p.progress * 100);
                progress.report({ increment: Math.max(0, percent - shown), message: `${percent}% ${p.message ?? ''}` });
                shown = Math.max(shown, percent);
            };
            const subscription = jobs.onProgress((p) => {
                if (id === undefined) early.push(p);
                else if (p.jobId === id) show(p);
            });
            try {
                const added = await jobs.addJob({ name: label, script: file });
                id = added.jobId;
                early.filter((p) => p.jobId === id).forEach(show);
                progress.report({ message: added.state === 'QUEUED' ? 'queued' : 'running' });
                cancel.onCancellationRequested(() => {
                    jobs.cancelJob(added.jobId).catch((e: Error) => output.appendLine(`cancelJob failed: ${e.message}`));
                });
                return { final: await jobs.waitForJob(added.jobId, 24 * 3600_000), jobId: added.jobId };
            } finally {
                subscription.dispose();
            }
        }));
    } catch (error) {
        const text = error instanceof JsonRpcError
            ? `${error.message} (error ${error.code}${error.field ? `, field ${error.field}` : ''})`
            : (error as Error).message;
        void vscode.window.showErrorMessage(`Blender Jobs: ${label}: ${text}`);
        return;
    }

    output.appendLine(`${label} (${jobId}): ${final.state}`);
    if (final.state === 'COMPLETED') {
        const data = await jobs.getPythonData(jobId);
        const blocks = await jobs.getDataBlocks(jobId);
        output.appendLine(`python_data = ${JSON.stringify(data, null, 2)}`);
        if (blocks.count > 0) output.appendLine(`data_blocks = ${JSON.stringify(blocks.blocks)} in ${blocks.library}`);
        const choice = await vscode.window.showInformationMessage(
            `${label} completed: ${truncate(JSON.stringify(data), 200)}`, 'Show Output');
        if (choice) output.show(true);
    } else if (final.state === 'FAILED') {
        const error = final.error;
        output.appendLine(`${error?.kind}: ${error?.message}`);
        if (error?.traceback) output.appendLine(error.traceback);
        const choice = await vscode.window.showErrorMessage(
            `${label} failed (${error?.kind ?? 'unknown'}): ${error?.message ?? ''}`, 'Show Output');
        if (choice) output.show(true);
    } else {
        void vscode.window.showWarningMessage(`${label} was canceled.`);
    }
}

function truncate(text: string, max: number): string {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
