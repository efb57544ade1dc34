/**
 * Minimal VS Code extension: "Blender Jobs: Run Current File as Blender Job" saves the active
 * Python file, runs it as a blender-jobs job (`script` = the file's path) and shows the job's
 * progress in the notification area, updated from job/progress notifications. Cancel in the
 * notification sends cancelJob. The server is started on first use (setting `blenderJobs.server`,
 * else found like every client finds it) and stopped when the extension deactivates.
 *
 * The server is told the window's workspace folders, so it keeps its jobs in that workspace's
 * state directory: a job still running when the server stops (the window closes, a setting
 * changes) becomes INTERRUPTED, and the next server of the same workspace offers to resume it
 * ("Blender Jobs: Resume Interrupted Jobs").
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { BlenderJobsClient } from '../../src/client';
import { JsonRpcError } from '../../src/errors';
import { JobProgressParams, JobState, JobStateChangedParams } from '../../src/protocol';

let client: BlenderJobsClient | undefined;
let starting: Promise<BlenderJobsClient> | undefined;
let output: vscode.OutputChannel;

export function activate(context: vscode.ExtensionContext): void {
    output = vscode.window.createOutputChannel('Blender Jobs');
    context.subscriptions.push(
        output,
        vscode.commands.registerCommand('blender-jobs.runCurrentFile', () => runCurrentFile()),
        vscode.commands.registerCommand('blender-jobs.resumeInterrupted', () => resumeInterrupted()),
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
            // Empty settings: the client finds the server itself ($BLENDER_JOBS_SERVER, then
            // blender-jobs-server on PATH, then a checkout's build output); its error names that order.
            const server = config.get<string>('server') || undefined;
            const jar = server ? undefined : config.get<string>('serverJar') || undefined;
            const folders = (vscode.workspace.workspaceFolders ?? [])
                .map((folder) => ({ uri: folder.uri.toString(), name: folder.name }));
            const created = new BlenderJobsClient({
                server,
                jar,
                java: config.get<string>('java') || undefined,
                workers: config.get<number>('workers', 2),
                serverArgs: config.get<string[]>('serverArgs', []),
                // The workspace chooses the server's state directory: jobs outlive the server.
                workspaceFolders: folders.length > 0 ? folders : undefined,
                clientInfo: { name: 'blender-jobs-vscode', version: '0.1.0' },
                onStderrLine: (line) => output.appendLine(`[server] ${line}`),
            });
            // Job states that could not be saved to disk (e.g. a full disk), and their recovery.
            created.onServerMessage((m) => {
                output.appendLine(`[server] ${m.message}`);
                if (m.type === 1) void vscode.window.showErrorMessage(`Blender Jobs: ${m.message}`);
                else if (m.type === 2) void vscode.window.showWarningMessage(`Blender Jobs: ${m.message}`);
                else if (m.type === 3) void vscode.window.showInformationMessage(`Blender Jobs: ${m.message}`);
            });
            let interrupted = 0;
            try {
                const info = await created.start();
                output.appendLine(`blender-jobs ${info.serverInfo.version}, Blender ${info.blender.version ?? '-'}, ` +
                    `${info.workers} worker(s), jobs in ${info.stateDir}${info.stateDirTemporary ? ' (temporary)' : ''}`);
                if (info.stateDirNote) output.appendLine(info.stateDirNote);
                if (!info.blender.available) throw new Error(`No usable Blender: ${info.blender.problem ?? ''}`);
                interrupted = info.recoveredJobs?.interrupted ?? 0;
            } catch (error) {
                await created.dispose();
                throw error;
            }
            client = created;
            if (interrupted > 0) {
                void Promise.resolve(vscode.window.showInformationMessage(
                    `Blender Jobs: ${interrupted} job(s) were interrupted when the server last stopped.`, 'Resume'))
                    .then((choice) => { if (choice === 'Resume') void resumeInterrupted(); });
            }
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
    await trackJob(jobs, label, () => jobs.addJob({ name: label, script: file }));
}

/** "Resume Interrupted Jobs": every INTERRUPTED job of this workspace runs again, with progress. */
async function resumeInterrupted(): Promise<void> {
    let jobs: BlenderJobsClient;
    let interrupted: { jobId: string; name?: string }[];
    try {
        jobs = await getClient();
        interrupted = (await jobs.listJobs({ state: 'INTERRUPTED' })).jobs;
    } catch (error) {
        void vscode.window.showErrorMessage(`Blender Jobs: ${(error as Error).message}`);
        return;
    }
    if (interrupted.length === 0) {
        void vscode.window.showInformationMessage('Blender Jobs: there are no interrupted jobs.');
        return;
    }
    await Promise.all(interrupted.map((job) => trackJob(jobs, job.name ?? job.jobId, () => jobs.resumeJob(job.jobId))));
}

/**
 * Starts a job (addJob or resumeJob), shows its progress in a cancellable notification until it
 * comes to rest, then shows the outcome.
 */
async function trackJob(jobs: BlenderJobsClient, label: string,
    start: () => Promise<{ jobId: string; state: JobState }>): Promise<void> {
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
                const started = await start();
                id = started.jobId;
                early.filter((p) => p.jobId === id).forEach(show);
                progress.report({ message: started.state === 'QUEUED' ? 'queued' : 'running' });
                cancel.onCancellationRequested(() => {
                    jobs.cancelJob(started.jobId).catch((e: Error) => output.appendLine(`cancelJob failed: ${e.message}`));
                });
                // Resolves on COMPLETED, FAILED, CANCELED and also INTERRUPTED (the server stopped).
                return { final: await jobs.waitForJob(started.jobId, 24 * 3600_000), jobId: started.jobId };
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
    } else if (final.state === 'INTERRUPTED') {
        output.appendLine(final.error?.message ?? 'interrupted');
        void vscode.window.showWarningMessage(`${label} was interrupted: the server stopped. ` +
            'Run "Blender Jobs: Resume Interrupted Jobs" to run it again.');
    } else {
        void vscode.window.showWarningMessage(`${label} was canceled.`);
    }
}

function truncate(text: string, max: number): string {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
