/**
 * A minimal ustar writer: regular files only, enough to ship many small files to a node in one
 * ssh round trip (`tar -x` there).
 *
 * @module
 */

import { DtkError, q } from "../errors/mod.ts";

const encoder = new TextEncoder();

export interface TarEntry {
  /** Relative path inside the archive (no leading `/`). */
  name: string;
  data: Uint8Array;
  mode: number;
}

function field(block: Uint8Array, offset: number, length: number, value: string): void {
  const bytes = encoder.encode(value);
  if (bytes.length > length) throw new RangeError(`tar field too long: ${value}`);
  block.set(bytes, offset);
}

function octalField(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, "0")}\0`;
}

/** Splits a path into ustar `prefix` (≤155 bytes) and `name` (≤100 bytes) at a `/`. */
function splitName(path: string): [string, string] | undefined {
  if (encoder.encode(path).length <= 100) return ["", path];
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== "/") continue;
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (encoder.encode(prefix).length <= 155 && encoder.encode(name).length <= 100) {
      return [prefix, name];
    }
  }
  return undefined;
}

/**
 * A PAX record `"<len> path=<value>\n"`, where len is the whole record's length in bytes
 * (digits included), as POSIX defines it: never a count of UTF-16 code units.
 */
function paxRecord(key: string, value: string): Uint8Array {
  const body = encoder.encode(` ${key}=${value}\n`).length;
  let length = body + 1;
  while (String(length).length + body !== length) length = String(length).length + body;
  return encoder.encode(`${length} ${key}=${value}\n`);
}

/** The longest start of `text` that fits in `bytes` UTF-8 bytes, cut between characters. */
function truncateBytes(text: string, bytes: number): string {
  let out = "";
  let size = 0;
  for (const c of text) {
    const n = encoder.encode(c).length;
    if (size + n > bytes) break;
    out += c;
    size += n;
  }
  return out;
}

/**
 * Why `name` cannot be a member of an archive that is unpacked as root on a node, or undefined:
 * it must be relative, without `..`, NUL or empty components, so it lands under the folder
 * `tar -x` runs in.
 */
export function tarNameProblem(name: string): string | undefined {
  if (name === "") return "empty";
  if (name.includes("\0")) return "contains a NUL byte";
  if (name.startsWith("/")) return "absolute";
  const parts = name.split("/");
  if (parts.includes("..")) return 'contains ".."';
  if (parts.some((p, i) => p === "" && i !== parts.length - 1)) return "has an empty component";
  return undefined;
}

/** The 512-byte ustar header of a regular file (`name` at most 255 bytes, split at a `/`). */
export function tarHeader(
  entry: { name: string; size: number; mode: number },
  mtime: number,
  type = "0",
): Uint8Array {
  const block = new Uint8Array(512);
  // A name too long for ustar is in the PAX header before this one; this field is only what
  // a tar without PAX support shows.
  const [prefix, name] = splitName(entry.name) ?? ["", truncateBytes(entry.name, 100)];
  field(block, 0, 100, name);
  field(block, 100, 8, octalField(entry.mode & 0o7777, 8));
  field(block, 108, 8, octalField(0, 8));
  field(block, 116, 8, octalField(0, 8));
  field(block, 124, 12, octalField(entry.size, 12));
  field(block, 136, 12, octalField(mtime, 12));
  block.fill(0x20, 148, 156);
  field(block, 156, 1, type);
  field(block, 257, 6, "ustar\0");
  field(block, 263, 2, "00");
  field(block, 265, 32, "root");
  field(block, 297, 32, "root");
  field(block, 345, 155, prefix);
  const sum = block.reduce((a, b) => a + b, 0);
  field(block, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return block;
}

/** The archive of `entries`, ending with the two zero blocks. */
export function tarArchive(
  entries: readonly TarEntry[],
  mtime = Math.floor(Date.now() / 1000),
): Uint8Array {
  // Names beyond ustar's 255 bytes go into a PAX extended header before the entry.
  const blocks: { header: Uint8Array; data: Uint8Array }[] = [];
  for (const entry of entries) {
    const problem = tarNameProblem(entry.name);
    if (problem !== undefined) {
      throw new DtkError(`Cannot put ${q(entry.name)} in a tar archive: the name is ${problem}`, {
        hint: "This is a bug in dtk: file names it ships to a node are relative paths",
      });
    }
    if (splitName(entry.name) === undefined) {
      const data = paxRecord("path", entry.name);
      blocks.push({
        header: tarHeader({ name: "PaxHeader", size: data.length, mode: 0o644 }, mtime, "x"),
        data,
      });
    }
    blocks.push({
      header: tarHeader({ name: entry.name, size: entry.data.length, mode: entry.mode }, mtime),
      data: entry.data,
    });
  }
  const size = blocks.reduce((n, b) => n + 512 + Math.ceil(b.data.length / 512) * 512, 1024);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const block of blocks) {
    out.set(block.header, offset);
    offset += 512;
    out.set(block.data, offset);
    offset += Math.ceil(block.data.length / 512) * 512;
  }
  return out;
}
