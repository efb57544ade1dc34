/**
 * Blender Jobs for VS Code, on vscode-languageclient: the blender-jobs server is spawned over
 * stdio like a language server, with the window's workspace folder as its `rootUri`, so its jobs
 * (and their results) persist per workspace.
 *
 * What vscode-languageclient shows by itself, with no code here: a job's progress (the server's
 * `window/workDoneProgress/create` + `$/progress`, for jobs added with `workDoneProgress: true`;
 * cancelling it sends `window/workDoneProgress/cancel`), the squiggles of a failed script
 * (`textDocument/publishDiagnostics`), and the server's `window/showMessage`. What the extension
 * adds: the commands, an output channel per followed job fed by `followLog` then `job/log`, the
 * outcome messages, the results as a JSON document, and a status bar item with the job counts.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
    LanguageClient,
    LanguageClientOptions,
    ResponseError,
    ServerOptions,
    State,
} from 'vscode-languageclient/node';
import { JobEntry, JobTable } from './jobTable';
import { LogFollowers, LogSink } from './logFollowers';
import { parsePassedData } from './passedData';
import { resolveServerCommand } from './serverCommand';
import {
    AddJobParams,
    AddJobResult,
    CancelJobResult,
    Codes,
    FollowLogResult,
    GetDataBlocksResult,
    GetJobResult,
    InitializeResult,
    JobLogParams,
    JobRemovedParams,
    JobState,
    JobStateChangedParams,
    JobSummary,
    JsonObject,
    JsonValue,
    ListJobsParams,
    ListJobsResult,
    Methods,
    ResumeAllResult,
} from './wire';

let extension: BlenderJobsExtension | undefined;

export function activate(context: vscode.ExtensionContext): void {
    extension = new BlenderJobsExtension(context);
}

export async function deactivate(): Promise<void> {
    await extension?.dispose();
    extension = undefined;
}

class BlenderJobsExtension {
    private client: LanguageClient | undefined;
    private starting: Promise<LanguageClient> | undefined;
    private readonly table = new JobTable();
    private readonly followers = new LogFollowers((jobId) => this.request<FollowLogResult>(Methods.followLog, { jobId }));
    /** The server's log (its stderr, via vscode-languageclient) and the extension's own lines. */
    private readonly log: vscode.LogOutputChannel;
    private readonly jobChannels = new Map<string, { channel: vscode.OutputChannel; filled: boolean }>();
    private readonly status: vscode.StatusBarItem;
    /** False once the running server refused addJob's `workDoneProgress` (it predates it). */
    private progressSupported = true;

    constructor(private readonly context: vscode.ExtensionContext) {
        this.log = vscode.window.createOutputChannel('Blender Jobs', { log: true });
        this.status = vscode.window.createStatusBarItem('blenderJobs.status', vscode.StatusBarAlignment.Left, 10);
        this.status.name = 'Blender Jobs';
        this.status.command = 'blender-jobs.followLog';
        const command = (id: string, run: () => Promise<void>) => vscode.commands.registerCommand(id, () => run().catch((error) => {
            void vscode.window.showErrorMessage(`Blender Jobs: ${describe(error)}`);
        }));
        context.subscriptions.push(
            this.log,
            this.status,
            this.table.onDidChange(() => this.updateStatus()),
            command('blender-jobs.runCurrentFile', () => this.runCurrentFile(false)),
            command('blender-jobs.runCurrentFileWithData', () => this.runCurrentFile(true)),
            command('blender-jobs.cancelJob', () => this.cancelJob()),
            command('blender-jobs.followLog', () => this.pickAndFollowLog()),
            command('blender-jobs.showResults', () => this.pickAndShowResults()),
            command('blender-jobs.resumeInterrupted', () => this.resumeInterrupted()),
            // A changed setting takes effect with the next server (started by the next command).
            vscode.workspace.onDidChangeConfiguration((e) => {
                if (e.affectsConfiguration('blenderJobs.server') || e.affectsConfiguration('blenderJobs.blender') ||
                    e.affectsConfiguration('blenderJobs.serverArgs')) void this.stopServer();
            }),
        );
    }

    async dispose(): Promise<void> {
        await this.stopServer();
        for (const { channel } of this.jobChannels.values()) channel.dispose();
        this.jobChannels.clear();
    }

    // ------------------------------------------------------------------------------- the server

    private getClient(): Promise<LanguageClient> {
        if (this.client && this.client.state !== State.Stopped) return Promise.resolve(this.client);
        this.starting ??= this.startClient().finally(() => { this.starting = undefined; });
        return this.starting;
    }

    private async startClient(): Promise<LanguageClient> {
        const config = vscode.workspace.getConfiguration('blenderJobs');
        const resolved = resolveServerCommand({
            server: config.get<string | string[]>('server', ''),
            blender: config.get<string>('blender', ''),
            serverArgs: config.get<string[]>('serverArgs', []),
            extensionPath: this.context.extensionPath,
            env: process.env,
        });
        if (!resolved.ok) throw new Error(resolved.problem);
        const { command, args, source } = resolved.server;
        this.log.info(`Starting the server (found: ${source}): ${[command, ...args].join(' ')}`);

        // stdio without `transport`: TransportKind.stdio would add --stdio, which this server accepts
        // (and ignores) but servers before it refuse; without it the extension works with both.
        const serverOptions: ServerOptions = { command, args };
        const clientOptions: LanguageClientOptions = {
            // No text document is synchronized (the server declares no textDocumentSync); the
            // selector names the files whose diagnostics the server publishes.
            documentSelector: [{ scheme: 'file', language: 'python' }],
            outputChannel: this.log,
            diagnosticCollectionName: 'blender-jobs',
        };
        const client = new LanguageClient('blenderJobs', 'Blender Jobs', serverOptions, clientOptions);
        client.onNotification(Methods.jobStateChanged, (params: JobStateChangedParams) => this.table.apply(params));
        client.onNotification(Methods.jobRemoved, (params: JobRemovedParams) => {
            this.table.remove(params.jobId);
            this.followers.end(params.jobId);
        });
        client.onNotification(Methods.jobLog, (params: JobLogParams) => this.followers.onLog(params));
        let started = false;
        client.onDidChangeState((e) => {
            // vscode-languageclient restarts a server that died; the new one is asked for its jobs too.
            if (e.newState === State.Running && started) void this.serverStarted(client, false);
            if (e.newState === State.Stopped) this.status.hide();
        });
        try {
            await client.start();
        } catch (error) {
            await client.dispose().catch(() => undefined);
            throw error;
        }
        started = true;
        this.client = client;
        await this.serverStarted(client, true);
        return client;
    }

    /** After an initialize: say what the server found, learn its jobs, offer to resume interrupted ones. */
    private async serverStarted(client: LanguageClient, first: boolean): Promise<void> {
        this.progressSupported = true;
        const info = client.initializeResult as unknown as InitializeResult | undefined;
        if (info?.serverInfo) {
            this.log.info(`blender-jobs ${info.serverInfo.version}, Blender ${info.blender?.version ?? '-'} ` +
                `(${info.blender?.path ?? 'not found'}), ${info.workers} worker(s), jobs in ${info.stateDir}` +
                `${info.stateDirTemporary ? ' (temporary)' : ''}`);
            if (info.stateDirNote) this.log.warn(info.stateDirNote);
            if (info.blender && !info.blender.available) {
                void vscode.window.showErrorMessage(`Blender Jobs: no usable Blender. ${info.blender.problem ?? ''}`);
            }
        }
        try {
            const jobs = await client.sendRequest<ListJobsResult>(Methods.listJobs, {});
            this.table.seed(jobs.jobs);
        } catch (error) {
            this.log.error(`listJobs failed: ${describe(error)}`);
        }
        this.updateStatus();
        const interrupted = info?.recoveredJobs?.interrupted ?? 0;
        if (first && interrupted > 0) {
            void Promise.resolve(vscode.window.showInformationMessage(
                `Blender Jobs: ${interrupted} job(s) of this workspace were interrupted when the server last stopped.`, 'Resume'))
                .then((choice) => { if (choice === 'Resume') void this.resumeInterrupted(); });
        }
    }

    private async stopServer(): Promise<void> {
        const client = this.client ?? (this.starting ? await this.starting.catch(() => undefined) : undefined);
        this.client = undefined;
        this.starting = undefined;
        if (client) {
            // shutdown (unfinished jobs become INTERRUPTED, resumable by the next server), then exit.
            await client.stop(10_000).catch((error) => this.log.warn(`Stopping the server: ${describe(error)}`));
        }
        this.table.releaseWaiters();
        this.followers.clear();
        this.status.hide();
    }

    private async request<R>(method: string, params: object): Promise<R> {
        const client = await this.getClient();
        return client.sendRequest<R>(method, params);
    }

    private updateStatus(): void {
        if (!this.client) return;
        const { queued, active, interrupted } = this.table.counts();
        this.status.text = `$(server-process) Blender: ${active} running, ${queued} queued` +
            (interrupted > 0 ? `, ${interrupted} interrupted` : '');
        this.status.tooltip = 'Blender Jobs: click to follow a job\'s log';
        this.status.show();
    }

    // ------------------------------------------------------------------------------- commands

    private async runCurrentFile(withData: boolean): Promise<void> {
        const document = vscode.window.activeTextEditor?.document;
        if (!document || document.uri.scheme !== 'file' || document.languageId !== 'python') {
            void vscode.window.showErrorMessage('Blender Jobs: open a Python file saved on disk first.');
            return;
        }
        if (document.isDirty && !(await document.save())) {
            void vscode.window.showErrorMessage('Blender Jobs: the file could not be saved.');
            return;
        }
        const file = document.uri.fsPath;
        const label = path.basename(file);
        let passedData: JsonObject | undefined;
        if (withData) {
            passedData = await this.askPassedData(file);
            if (!passedData) return;
        }
        let client: LanguageClient;
        try {
            client = await this.getClient();
        } catch (error) {
            void vscode.window.showErrorMessage(`Blender Jobs: the server did not start: ${describe(error)}`);
            return;
        }
        let job: AddJobResult;
        try {
            job = await this.addJob(client, { script: file, name: label, passedData });
        } catch (error) {
            void vscode.window.showErrorMessage(`Blender Jobs: ${label}: ${describe(error)}`);
            return;
        }
        this.log.info(`${label}: job ${job.jobId} ${job.state}`);
        if (vscode.workspace.getConfiguration('blenderJobs').get<boolean>('followLogOnRun', true)) {
            void this.followLog(job.jobId, label);
        }
        await this.reportOutcome(job.jobId, label, await this.table.waitForRest(job.jobId));
    }

    /**
     * addJob with `workDoneProgress: true`, so that the server reports the job as LSP work-done
     * progress, which vscode-languageclient shows. A server from before that parameter refuses it
     * (-32602, field workDoneProgress); the job is then added without it, and the log says why
     * there is no progress.
     */
    private async addJob(client: LanguageClient, params: AddJobParams): Promise<AddJobResult> {
        if (this.progressSupported) {
            try {
                return await client.sendRequest<AddJobResult>(Methods.addJob, { ...params, workDoneProgress: true });
            } catch (error) {
                if (!(error instanceof ResponseError && error.code === Codes.InvalidParams &&
                    (error.data as { field?: string } | undefined)?.field === 'workDoneProgress')) throw error;
                this.progressSupported = false;
                this.log.warn('This server does not know addJob\'s "workDoneProgress" parameter, so jobs run without ' +
                    'a progress indicator; update the blender-jobs server.');
            }
        }
        return client.sendRequest<AddJobResult>(Methods.addJob, params);
    }

    private async reportOutcome(jobId: string, label: string, rest: JobStateChangedParams | JobEntry): Promise<void> {
        const change = 'seen' in rest ? rest.change : rest;
        const state: JobState = rest.state;
        this.log.info(`${label}: job ${jobId} ${state}`);
        if (state === 'COMPLETED') {
            let summary = '';
            try {
                summary = truncate(JSON.stringify(await this.request<JsonValue>(Methods.getPythonData, { jobId })), 200);
            } catch (error) {
                summary = `(python_data: ${describe(error)})`;
            }
            const choice = await vscode.window.showInformationMessage(
                `Blender job ${label} completed: ${summary}`, 'Show Results', 'Show Log');
            if (choice === 'Show Results') await this.showResults(jobId, label);
            else if (choice === 'Show Log') await this.followLog(jobId, label);
        } else if (state === 'FAILED') {
            const error = change?.error;
            if (error?.traceback) this.log.error(`${label}: job ${jobId} failed:\n${error.traceback}`);
            const choice = await vscode.window.showErrorMessage(
                `Blender job ${label} failed (${error?.kind ?? 'unknown'}): ${error?.message ?? ''}`, 'Show Log');
            if (choice === 'Show Log') await this.followLog(jobId, label);
        } else if (state === 'CANCELED') {
            void vscode.window.showInformationMessage(`Blender job ${label} was canceled.`);
        } else if (state === 'INTERRUPTED') {
            const choice = await vscode.window.showWarningMessage(
                `Blender job ${label} was interrupted: the server stopped. It can run again.`, 'Resume');
            if (choice === 'Resume') await this.resumeInterrupted();
        } else {
            void vscode.window.showWarningMessage(`Blender job ${label} is ${state}, but the server stopped.`);
        }
    }

    /** Passed data from a JSON input box (remembered per file) or from a JSON file. */
    private async askPassedData(file: string): Promise<JsonObject | undefined> {
        const pick = await vscode.window.showQuickPick([
            { label: '$(json) Type JSON...', id: 'text' },
            { label: '$(file) Pick a JSON File...', id: 'file' },
        ], { placeHolder: `Passed data for ${path.basename(file)}: a JSON object, each key a global of the script` });
        if (!pick) return undefined;
        if (pick.id === 'text') {
            const key = `blenderJobs.passedData:${file}`;
            const text = await vscode.window.showInputBox({
                prompt: 'Passed data: a JSON object; each key becomes a global variable of the script',
                value: this.context.workspaceState.get<string>(key, '{}'),
                ignoreFocusOut: true,
                validateInput: (value) => {
                    const parsed = parsePassedData(value);
                    return parsed.ok ? undefined : parsed.problem;
                },
            });
            if (text === undefined) return undefined;
            await this.context.workspaceState.update(key, text);
            const parsed = parsePassedData(text);
            return parsed.ok ? parsed.value : undefined;
        }
        const uris = await vscode.window.showOpenDialog({
            canSelectMany: false,
            openLabel: 'Use as Passed Data',
            filters: { JSON: ['json'] },
            defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
        });
        if (!uris || uris.length === 0) return undefined;
        const parsed = parsePassedData(new TextDecoder().decode(await vscode.workspace.fs.readFile(uris[0])), uris[0].fsPath);
        if (!parsed.ok) {
            void vscode.window.showErrorMessage(`Blender Jobs: ${parsed.problem}`);
            return undefined;
        }
        return parsed.value;
    }

    private async cancelJob(): Promise<void> {
        const job = await this.pickJob({ states: ['QUEUED', 'ACTIVE', 'INTERRUPTED'] }, 'Cancel which job?',
            'No job is queued, running or interrupted.');
        if (!job) return;
        const result = await this.request<CancelJobResult>(Methods.cancelJob, { jobId: job.jobId });
        void vscode.window.showInformationMessage(result.canceled
            ? `Blender job ${labelOf(job)} canceled (it was ${result.previousState}).`
            : `Blender job ${labelOf(job)} was already ${result.state}.`);
    }

    private async pickAndFollowLog(): Promise<void> {
        const job = await this.pickJob({}, 'Follow the log of which job?', 'The server has no jobs.');
        if (job) await this.followLog(job.jobId, labelOf(job));
    }

    private async pickAndShowResults(): Promise<void> {
        const job = await this.pickJob({ state: 'COMPLETED' }, 'Show the results of which job?', 'No job has completed.');
        if (job) await this.showResults(job.jobId, labelOf(job));
    }

    private async resumeInterrupted(): Promise<void> {
        // Taken before resumeAll: the resumed jobs' notifications may come before its answer.
        const before = new Map(this.table.list((job) => job.state === 'INTERRUPTED').map((job) => [job.jobId, this.table.changeCount(job.jobId)]));
        const result = await this.request<ResumeAllResult>(Methods.resumeAll, {});
        if (result.resumed === 0) {
            void vscode.window.showInformationMessage('Blender Jobs: there are no interrupted jobs.');
            return;
        }
        await Promise.all(result.jobIds.map(async (jobId) => {
            const label = labelOf(this.table.get(jobId) ?? { jobId });
            await this.reportOutcome(jobId, label, await this.table.waitForRest(jobId, before.get(jobId) ?? 0));
        }));
    }

    /** A quick pick of the server's jobs (newest first) matching `filter`. */
    private async pickJob(filter: ListJobsParams, placeHolder: string, none: string): Promise<JobSummary | undefined> {
        const { jobs } = await this.request<ListJobsResult>(Methods.listJobs, filter);
        if (jobs.length === 0) {
            void vscode.window.showInformationMessage(`Blender Jobs: ${none}`);
            return undefined;
        }
        const items = [...jobs].reverse().map((job) => ({
            label: labelOf(job),
            description: `${job.state}${job.state === 'ACTIVE' ? ` ${Math.round(job.progress * 100)}%` : ''} · ${job.jobId}`,
            detail: new Date(job.createdAt).toLocaleString(),
            job,
        }));
        return (await vscode.window.showQuickPick(items, { placeHolder, matchOnDescription: true }))?.job;
    }

    // ------------------------------------------------------------------------- logs and results

    /** Opens the job's output channel and fills it: the console so far, then what the script prints. */
    private async followLog(jobId: string, label: string): Promise<void> {
        let entry = this.jobChannels.get(jobId);
        if (!entry) {
            entry = { channel: vscode.window.createOutputChannel(`Blender Job ${label} (${jobId})`), filled: false };
            this.jobChannels.set(jobId, entry);
        }
        const { channel } = entry;
        const current = entry;
        channel.show(true);
        const sink: LogSink = {
            replace: (text) => {
                if (current.filled) channel.clear();
                channel.append(text);
                current.filled = true;
            },
            append: (text) => {
                channel.append(text);
                current.filled = true;
            },
        };
        try {
            await this.followers.follow(jobId, sink);
        } catch (error) {
            if (error instanceof ResponseError && error.code === Codes.MethodNotFound) {
                let logFile = '';
                try {
                    logFile = ` Its log file: ${(await this.request<GetJobResult>(Methods.getJob, { jobId })).logFile}`;
                } catch {
                    // the message below is enough
                }
                channel.appendLine(`[Blender Jobs] This server cannot stream job logs (it does not know followLog); ` +
                    `update the blender-jobs server.${logFile}`);
            } else {
                channel.appendLine(`[Blender Jobs] followLog failed: ${describe(error)}`);
            }
        }
    }

    /** The job's python_data as a JSON document; its data-block library's path shown, and copied on request. */
    private async showResults(jobId: string, label: string): Promise<void> {
        const data = await this.request<JsonValue>(Methods.getPythonData, { jobId });
        const document = await vscode.workspace.openTextDocument({ language: 'json', content: `${JSON.stringify(data, null, 2)}\n` });
        await vscode.window.showTextDocument(document, { preview: false });
        const blocks = await this.request<GetDataBlocksResult>(Methods.getDataBlocks, { jobId });
        if (blocks.count === 0 || !blocks.library) {
            void vscode.window.showInformationMessage(`Blender job ${label} returned python_data and no data blocks.`);
            return;
        }
        const names = Object.entries(blocks.blocks).map(([collection, list]) => `${collection}: ${list.join(', ')}`).join('; ');
        this.log.info(`${label}: job ${jobId} data blocks (${names}) in ${blocks.library}`);
        const choice = await vscode.window.showInformationMessage(
            `Blender job ${label} returned ${blocks.count} data block(s) (${names}) in the library ${blocks.library}`,
            'Copy Library Path');
        if (choice) await vscode.env.clipboard.writeText(blocks.library);
    }
}

function labelOf(job: { jobId: string; name?: string }): string {
    return job.name ?? job.jobId;
}

function describe(error: unknown): string {
    if (error instanceof ResponseError) {
        const data = error.data as { field?: string } | undefined;
        return `${error.message} (error ${error.code}${data?.field ? `, field ${data.field}` : ''})`;
    }
    return error instanceof Error ? error.message : String(error);
}

function truncate(text: string, max: number): string {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
