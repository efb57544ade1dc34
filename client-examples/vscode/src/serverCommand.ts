/**
 * Where the blender-jobs server comes from, in this order:
 *  1. the setting `blenderJobs.serverCommand` (program and arguments);
 *  2. the environment variable BLENDER_JOBS_SERVER: an executable, or a `.jar` run with java;
 *  3. `blender-jobs-server` on PATH;
 *  4. the jar of the checkout the extension was built in (`<checkout>/server/target/blender-jobs-server.jar`),
 *     for an extension run from its source folder.
 * `blenderJobs.blender` is passed as `--blender`, then `blenderJobs.serverArgs`.
 * No vscode import: the unit tests run it under plain node.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The JVM flags that keep the server near 120 MB resident however many jobs it runs (README). */
export const JVM_FLAGS = ['-XX:+UseSerialGC', '-Xmx512m', '-Xmn24m'];

export const SERVER_EXECUTABLE = 'blender-jobs-server';

export interface ServerCommandInputs {
    /** `blenderJobs.serverCommand`. */
    serverCommand: readonly string[];
    /** `blenderJobs.blender`. */
    blender: string;
    /** `blenderJobs.serverArgs`. */
    serverArgs: readonly string[];
    /** The extension's folder (`ExtensionContext.extensionPath`). */
    extensionPath: string;
    env: NodeJS.ProcessEnv;
}

export interface ServerCommand {
    command: string;
    args: string[];
    /** Where it came from, for the log and for messages. */
    source: string;
}

export type Resolved = { ok: true; server: ServerCommand } | { ok: false; problem: string };

export function checkoutJar(extensionPath: string): string {
    return path.resolve(extensionPath, '..', '..', 'server', 'target', 'blender-jobs-server.jar');
}

export function resolveServerCommand(inputs: ServerCommandInputs, files: FileChecks = realFiles): Resolved {
    const extra = [...(inputs.blender ? ['--blender', inputs.blender] : []), ...inputs.serverArgs];
    const java = inputs.env.JAVA_HOME ? path.join(inputs.env.JAVA_HOME, 'bin', 'java') : 'java';
    const jarCommand = (jar: string) => ({ command: java, args: [...JVM_FLAGS, '-jar', jar, ...extra] });

    const setting = inputs.serverCommand.filter((part) => part !== '');
    if (setting.length > 0) {
        return { ok: true, server: { command: setting[0], args: [...setting.slice(1), ...extra], source: 'setting blenderJobs.serverCommand' } };
    }
    const fromEnv = inputs.env.BLENDER_JOBS_SERVER?.trim();
    if (fromEnv) {
        const source = 'environment variable BLENDER_JOBS_SERVER';
        if (fromEnv.endsWith('.jar')) {
            if (!files.isFile(fromEnv)) return { ok: false, problem: `BLENDER_JOBS_SERVER names the jar ${fromEnv}, which does not exist.` };
            return { ok: true, server: { ...jarCommand(fromEnv), source } };
        }
        return { ok: true, server: { command: fromEnv, args: extra, source } };
    }
    for (const dir of (inputs.env.PATH ?? '').split(path.delimiter)) {
        if (!dir) continue;
        const candidate = path.join(dir, SERVER_EXECUTABLE);
        if (files.isExecutable(candidate)) {
            return { ok: true, server: { command: candidate, args: extra, source: `${SERVER_EXECUTABLE} on PATH` } };
        }
    }
    const jar = checkoutJar(inputs.extensionPath);
    if (files.isFile(jar)) return { ok: true, server: { ...jarCommand(jar), source: `the checkout's jar ${jar}` } };
    return {
        ok: false,
        problem: 'The blender-jobs server was not found. Set "blenderJobs.serverCommand" (e.g. ["java", "-jar", ' +
            '"/path/to/blender-jobs-server.jar"]), or the environment variable BLENDER_JOBS_SERVER to the server ' +
            `executable or jar, or put ${SERVER_EXECUTABLE} on PATH, or build the jar of this checkout ` +
            `(mvn package -DskipTests makes ${jar}).`,
    };
}

export interface FileChecks {
    isFile(file: string): boolean;
    isExecutable(file: string): boolean;
}

const realFiles: FileChecks = {
    isFile(file) {
        try {
            return fs.statSync(file).isFile();
        } catch {
            return false;
        }
    },
    isExecutable(file) {
        try {
            fs.accessSync(file, fs.constants.X_OK);
            return fs.statSync(file).isFile();
        } catch {
            return false;
        }
    },
};
