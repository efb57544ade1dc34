/**
 * Where the blender-jobs server comes from: the Node client's `findServer`
 * (client-examples/node/src/server.ts), so the extension looks where every blender-jobs client
 * looks, in the same order:
 *  1. the setting `blenderJobs.server`: the launcher's path, a command line, or an argument list
 *     (a lone `.jar` runs with java);
 *  2. the environment variable BLENDER_JOBS_SERVER, a command line (the older BLENDER_JOBS_JAR, a
 *     jar, still works);
 *  3. `blender-jobs-server` on PATH (an installed distribution's `bin/`);
 *  4. the build output of the checkout the extension was built in (`mvn package`): the
 *     distribution's `bin/blender-jobs-server`, then `server/target/blender-jobs-server.jar`.
 * A jar runs with java ($BLENDER_JOBS_JAVA, $JAVA_HOME/bin/java, else `java` on PATH, the
 * launcher's order) and the JVM flags; the launcher holds its own. `blenderJobs.blender` is passed
 * as `--blender`, then `blenderJobs.serverArgs`.
 * No vscode import: the unit tests run it under plain node.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findServer, ServerNotFoundError } from '../../node/src/server';

/** The JVM flags that keep the server near 145 MB resident however many jobs it runs: the launcher's (README). */
export const JVM_FLAGS = ['-XX:+UseSerialGC', '-Xms32m', '-Xmx512m', '-Xmn24m', '-XX:TieredStopAtLevel=1'];

/** How the lookup's messages name the setting. */
export const SERVER_SETTING = 'the setting blenderJobs.server';

export interface ServerCommandInputs {
    /** `blenderJobs.server`: a path or command line, or an argument list; empty = not set. */
    server: string | readonly string[];
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

/** The checkout an extension run from its source folder (client-examples/vscode) sits in. */
export function checkoutRoot(extensionPath: string): string {
    return path.resolve(extensionPath, '..', '..');
}

/** The java that runs a jar: $BLENDER_JOBS_JAVA, $JAVA_HOME/bin/java if it exists, else `java`. */
export function javaFor(env: NodeJS.ProcessEnv): string {
    if (env.BLENDER_JOBS_JAVA) return env.BLENDER_JOBS_JAVA;
    if (env.JAVA_HOME) {
        const candidate = path.join(env.JAVA_HOME, 'bin', process.platform === 'win32' ? 'java.exe' : 'java');
        if (fs.existsSync(candidate)) return candidate;
    }
    return 'java';
}

export function resolveServerCommand(inputs: ServerCommandInputs): Resolved {
    const extra = [...(inputs.blender ? ['--blender', inputs.blender] : []), ...inputs.serverArgs];
    const setting = typeof inputs.server === 'string' ? inputs.server.trim() : inputs.server.filter((part) => part !== '');
    try {
        const location = findServer({
            server: setting.length > 0 ? (typeof setting === 'string' ? setting : [...setting]) : undefined,
            env: inputs.env,
            option: SERVER_SETTING,
            checkouts: [checkoutRoot(inputs.extensionPath)],
            // Parents of the extension's folder, not of the extension host's working directory.
            cwd: inputs.extensionPath,
        });
        if (location.jar) {
            return { ok: true, server: { command: javaFor(inputs.env), args: [...JVM_FLAGS, '-jar', location.jar, ...extra], source: location.source } };
        }
        const [command, ...args] = location.command!;
        return { ok: true, server: { command, args: [...args, ...extra], source: location.source } };
    } catch (error) {
        if (error instanceof ServerNotFoundError) {
            return { ok: false, problem: `${error.message}\nOr set "blenderJobs.server" to the server's command, e.g. ` +
                '/opt/blender-jobs-server-0.2.0/bin/blender-jobs-server.' };
        }
        throw error;
    }
}
