/**
 * Passed data typed by the user or read from a JSON file: it must be a JSON object (each key
 * becomes a global of the script; the server checks the keys). No vscode import.
 */
import type { JsonObject } from './wire';

export type Parsed = { ok: true; value: JsonObject } | { ok: false; problem: string };

export function parsePassedData(text: string, where = 'The passed data'): Parsed {
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch (error) {
        return { ok: false, problem: `${where} is not valid JSON: ${(error as Error).message}` };
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
        return { ok: false, problem: `${where} must be a JSON object such as {"count": 3}, got ${got}.` };
    }
    return { ok: true, value: value as JsonObject };
}
