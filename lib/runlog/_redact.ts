/**
 * Redaction of secrets from text dtk writes where others read it (run logs, support bundles):
 * every secret value dtk made for a cluster, found from the cluster's owner-only files, and the
 * shapes of secrets dtk did not make (private key blocks, tokens and passwords in key=value form).
 *
 * @module
 */
import { join } from "node:path";
import { decodeBase64, encodeBase64 } from "../pki/mod.ts";

const PRIVATE_KEY_BLOCK =
  /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
// `token: x`, `"password":"x"`, `--token=x`, `client-key-data: x`, `Authorization: Bearer x`.
const SECRET_FIELD =
  /((?:client-key-data|token|secret|password|passwd|bearer|authorization)["']?\s*[:=]\s*["']?(?:Bearer\s+)?)([^\s"',;]{6,})/gi;
/** Shorter values are not redacted as literals: they would match ordinary words. */
const MIN_SECRET = 12;

export const REDACTED = "[redacted]";

/** Replaces known secret values and secret-shaped text with `[redacted]`. */
export class Redactor {
  readonly #secrets = new Set<string>();
  readonly #seen = new Map<string, string>();
  #pattern: RegExp | undefined;

  /**
   * Adds the secrets of every owner-only file under a cluster's folder (dtk writes each secret
   * 0600). Files read before and unchanged since are not read again, so a long run can call this
   * as it makes new secrets.
   */
  async addClusterSecrets(clusterDir: string): Promise<void> {
    for (const file of await secretFiles(clusterDir)) {
      const info = await Deno.stat(file).catch(() => undefined);
      const stamp = `${info?.mtime?.getTime()}:${info?.size}`;
      if (this.#seen.get(file) === stamp) continue;
      this.#seen.set(file, stamp);
      const text = await Deno.readTextFile(file).catch(() => "");
      for (const value of secretValues(text)) this.add(value);
    }
  }

  /** Adds a secret value (and its base64 form, as kubeconfigs embed keys). */
  add(secret: string): void {
    for (const value of [secret, secret.trim()]) {
      if (value.trim().length < MIN_SECRET) continue;
      this.#secrets.add(value.trim());
      this.#secrets.add(base64Of(value));
    }
    this.#pattern = undefined;
  }

  /** The secret values known (for tests that scan output for each of them). */
  get secrets(): ReadonlySet<string> {
    return this.#secrets;
  }

  redact(text: string): string {
    let out = text.replace(PRIVATE_KEY_BLOCK, (_m, kind: string) => `[redacted ${kind}private key]`)
      .replace(SECRET_FIELD, (_m, field: string) => `${field}${REDACTED}`);
    if (this.#secrets.size === 0) return out;
    // One alternation, longest first, so that a secret containing another is replaced whole.
    this.#pattern ??= new RegExp(
      [...this.#secrets].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|"),
      "g",
    );
    out = out.replace(this.#pattern, REDACTED);
    return out;
  }
}

const KEY_BLOCK_END = /-----END [A-Z0-9 ]*PRIVATE KEY-----/;

/**
 * Whether a private key block is still open after `text` (one that began before it is when
 * `open`): text that follows must then be redacted together with it, as the block's redaction
 * runs to its end line.
 */
export function keyBlockOpenAfter(text: string, open: boolean): boolean {
  let rest = text;
  if (open) {
    const end = KEY_BLOCK_END.exec(text);
    if (end === null) return true;
    rest = text.slice(end.index + end[0].length);
  }
  const last = [...rest.matchAll(PRIVATE_KEY_BLOCK)].at(-1);
  return last !== undefined && !KEY_BLOCK_END.test(last[0]);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** The text's UTF-8 bytes in base64. */
function base64Of(text: string): string {
  return encodeBase64(new TextEncoder().encode(text));
}

/** The UTF-8 text a base64 value holds; undefined when it is not base64. */
function textOfBase64(text: string): string | undefined {
  try {
    return new TextDecoder().decode(decodeBase64(text));
  } catch {
    return undefined;
  }
}

/** The secret values inside one secret file's text, by what the file holds. */
export function secretValues(text: string): string[] {
  const values: string[] = [];
  const addKey = (pem: string) => {
    values.push(pem);
    // Each body line alone: a log may hold a fragment of a key.
    for (const line of pem.split("\n")) {
      const l = line.trim();
      if (l !== "" && !l.startsWith("-----")) values.push(l);
    }
  };
  for (const m of text.matchAll(PRIVATE_KEY_BLOCK)) addKey(m[0]);
  for (const m of text.matchAll(/client-key-data:\s*(\S+)/g)) {
    values.push(m[1]!);
    const pem = textOfBase64(m[1]!);
    if (pem !== undefined) addKey(pem);
  }
  for (const m of text.matchAll(/^\s*(?:token|secret):\s*["']?([^\s"']+)/gm)) values.push(m[1]!);
  // A static token file: `token,user,uid,"groups"` per line.
  for (const line of text.split("\n")) {
    const m = line.match(/^([A-Za-z0-9._~+/=-]{16,}),[^,]+,[^,]+/);
    if (m) values.push(m[1]!);
  }
  if (values.length === 0 && text.trim() !== "" && !text.includes("\n", text.trim().length)) {
    // A file holding one bare value (a password, a token).
    if (!/\s/.test(text.trim())) values.push(text.trim());
  }
  return values.filter((v) => v.trim().length >= MIN_SECRET);
}

/**
 * A redactor knowing every secret of a cluster: dtk writes each secret owner-only (0600), so
 * every such file under the cluster's folder is read, and the values in it are added.
 */
export async function clusterRedactor(clusterDir: string): Promise<Redactor> {
  const redactor = new Redactor();
  await redactor.addClusterSecrets(clusterDir);
  return redactor;
}

/** Every owner-only regular file under `dir` (not following links; logs excluded). */
export async function secretFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, depth: number) => {
    if (depth > 6) return;
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(d, e.name);
      if (e.isDirectory) {
        if (!(depth === 0 && (e.name === "logs" || e.name === "cache"))) {
          await walk(path, depth + 1);
        }
      } else if (e.isFile) {
        const info = await Deno.lstat(path).catch(() => undefined);
        if (info?.mode !== null && info?.mode !== undefined && (info.mode & 0o077) === 0) {
          out.push(path);
        }
      }
    }
  };
  await walk(dir, 0);
  return out.sort();
}
