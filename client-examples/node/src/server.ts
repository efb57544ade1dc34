/**
 * Finding the blender-jobs server, the way every blender-jobs client does:
 *
 * 1. an explicit option (`server`: a command such as the launcher's path; or `jar`);
 * 2. `$BLENDER_JOBS_SERVER`, a command line (the older `$BLENDER_JOBS_JAR`, a jar, still works);
 * 3. `blender-jobs-server` on PATH (an installed distribution's `bin/`);
 * 4. the build output of a checkout (`mvn package`): `server/target/blender-jobs-server-<version>/
 *    bin/blender-jobs-server`, then `server/target/blender-jobs-server.jar`, in the given checkouts
 *    and in the current folder and its parents.
 *
 * When none has a server, `ServerNotFoundError` says where it looked, in that order.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BlenderJobsError } from './errors';

export const SERVER_ENV = 'BLENDER_JOBS_SERVER';
export const SERVER_COMMAND = 'blender-jobs-server';

/** How to start the server: `command` (launcher and arguments) or `jar` (run with java and the JVM flags). */
export interface ServerLocation {
    command?: string[];
    jar?: string;
    /** Where it was found, for messages. */
    source: string;
}

export class ServerNotFoundError extends BlenderJobsError {
    constructor(message: string, readonly tried: string[] = []) {
        super(message);
        this.name = 'ServerNotFoundError';
    }
}

export interface FindServerOptions {
    /** The server command: a string (a path, or a command line) or an argument list; a lone `.jar` runs with java. */
    server?: string | string[];
    /** The server jar (an explicit option too). */
    jar?: string;
    /** Checkout folders whose build output is tried first in step 4. */
    checkouts?: string[];
    /** The environment to read (default: process.env). */
    env?: NodeJS.ProcessEnv;
    /** How the caller names its option in messages (default `the server option`). */
    option?: string;
    /** The folder whose parents are searched for a checkout (default: process.cwd()). */
    cwd?: string;
}

/** Splits a command line like a POSIX shell would for words: quotes and backslashes, no expansion. */
export function splitCommandLine(text: string): string[] {
    const words: string[] = [];
    let word = '';
    let inWord = false;
    let quote: '"' | "'" | undefined;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (quote === "'") {
            if (c === "'") quote = undefined;
            else word += c;
        } else if (quote === '"') {
            if (c === '"') quote = undefined;
            else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) word += text[++i];
            else word += c;
        } else if (c === "'" || c === '"') {
            quote = c;
            inWord = true;
        } else if (c === '\\' && i + 1 < text.length) {
            word += text[++i];
            inWord = true;
        } else if (/\s/.test(c)) {
            if (inWord) words.push(word);
            word = '';
            inWord = false;
        } else {
            word += c;
            inWord = true;
        }
    }
    if (quote) throw new ServerNotFoundError(`unbalanced ${quote} in the command ${JSON.stringify(text)}`);
    if (inWord) words.push(word);
    return words;
}

function isExecutableFile(file: string): boolean {
    try {
        if (!fs.statSync(file).isFile()) return false;
        if (process.platform === 'win32') return true;
        fs.accessSync(file, fs.constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

/** The first `name` on PATH (with PATHEXT on Windows), or undefined. */
export function whichOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
    const dirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter(Boolean);
    const extensions = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').concat(['']) : [''];
    for (const dir of dirs) {
        for (const ext of extensions) {
            const candidate = path.join(dir, name + ext);
            if (isExecutableFile(candidate)) return candidate;
        }
    }
    return undefined;
}

function locationOf(command: string | string[], source: string, env: NodeJS.ProcessEnv): ServerLocation {
    const argv = Array.isArray(command) ? [...command]
        : fs.existsSync(command) ? [command] : splitCommandLine(command);
    if (argv.length === 0) throw new ServerNotFoundError(`${source} is empty; it should be a command such as /opt/blender-jobs-server/bin/blender-jobs-server`);
    const program = argv[0];
    if (argv.length === 1 && program.endsWith('.jar')) {
        if (!fs.existsSync(program)) throw new ServerNotFoundError(`${source} names the jar ${program}, which does not exist`);
        return { jar: path.resolve(program), source };
    }
    const bare = !program.includes('/') && !program.includes(path.sep);
    const found = bare ? whichOnPath(program, env) : isExecutableFile(program) ? path.resolve(program) : undefined;
    if (!found) {
        throw new ServerNotFoundError(`${source} names ${program}, which ${bare ? 'is not on PATH' : 'does not exist (or is not executable)'}`);
    }
    return { command: [found, ...argv.slice(1)], source };
}

/** What `mvn package` leaves in a checkout: its distribution launchers (newest first) and the jar. */
export function checkoutBuildOutputs(root: string): { launchers: string[]; jar: string } {
    const target = path.join(root, 'server', 'target');
    let names: string[] = [];
    try {
        names = fs.readdirSync(target);
    } catch {
        // not built
    }
    const launchers = names
        .filter((n) => n.startsWith('blender-jobs-server-'))
        .map((n) => path.join(target, n, 'bin', SERVER_COMMAND))
        .filter(isExecutableFile)
        .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
    return { launchers, jar: path.join(target, 'blender-jobs-server.jar') };
}

function checkoutRoots(extra: string[], cwd: string): string[] {
    const roots: string[] = extra.map((r) => path.resolve(r));
    let dir: string | undefined = path.resolve(cwd);
    while (dir) {
        roots.push(dir);
        const parent = path.dirname(dir);
        dir = parent !== dir ? parent : undefined;
    }
    return [...new Set(roots)].filter((r) => fs.existsSync(path.join(r, 'server')));
}

export const LOOKUP_ORDER = ['the server option', `$${SERVER_ENV}`, `${SERVER_COMMAND} on PATH`,
    'the build output of a blender-jobs checkout'];

/** Finds the server (see the module comment for the order). Throws ServerNotFoundError. */
export function findServer(options: FindServerOptions = {}): ServerLocation {
    const env = options.env ?? process.env;
    const option = options.option ?? 'the server option';
    if (options.server !== undefined && options.server !== '' && !(Array.isArray(options.server) && options.server.length === 0)) {
        return locationOf(options.server, `${option} (${JSON.stringify(options.server)})`, env);
    }
    if (options.jar) {
        const jar = path.resolve(options.jar);
        if (!fs.existsSync(jar)) {
            throw new ServerNotFoundError(`the server jar ${jar} does not exist; build it (cd <repo> && mvn -q package ` +
                `-DskipTests), or leave the jar out and let the client find the server (${LOOKUP_ORDER.join(', ')})`);
        }
        return { jar, source: 'the jar option' };
    }
    const tried = [`1. ${option}: not given`];
    if (env[SERVER_ENV]) return locationOf(env[SERVER_ENV]!, `$${SERVER_ENV}`, env);
    if (env.BLENDER_JOBS_JAR) return locationOf([env.BLENDER_JOBS_JAR], '$BLENDER_JOBS_JAR', env);
    tried.push(`2. $${SERVER_ENV}: not set`);
    const onPath = whichOnPath(SERVER_COMMAND, env);
    if (onPath) return { command: [onPath], source: `${SERVER_COMMAND} on PATH` };
    tried.push(`3. ${SERVER_COMMAND} on PATH: not found`);
    const looked: string[] = [];
    for (const root of checkoutRoots(options.checkouts ?? [], options.cwd ?? process.cwd())) {
        const { launchers, jar } = checkoutBuildOutputs(root);
        if (launchers.length > 0) return { command: [launchers[0]], source: `the build output of the checkout ${root}` };
        if (fs.existsSync(jar)) return { jar, source: `the build output of the checkout ${root}` };
        looked.push(path.join(root, 'server', 'target'));
    }
    tried.push(`4. the build output of a blender-jobs checkout: ${looked.length > 0
        ? `nothing built in ${looked.join(', ')}` : 'none found (looked in the current folder and its parents)'}`);
    throw new ServerNotFoundError(
        `No blender-jobs server found. Looked, in this order, at:\n  ${tried.join('\n  ')}\n` +
        `Install one: unpack blender-jobs-server-<version>.tar.gz and put its bin/ on PATH, or set ${SERVER_ENV} to ` +
        `its bin/${SERVER_COMMAND} (in a checkout, \`mvn -q package -DskipTests\` builds both under server/target/).`,
        tried);
}
