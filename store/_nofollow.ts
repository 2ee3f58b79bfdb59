/**
 * Opening store files without following links. Deno has no `O_NOFOLLOW`, so each open is an
 * `lstat` that refuses anything but a regular file, the open, then an `fstat` of the descriptor
 * that must be the same file: a link planted in `tmp/` or `objects/` is refused, never written
 * through or committed as an object. New files are created with `O_CREAT|O_EXCL`, which does not
 * follow a link either.
 *
 * @module
 */
import { DtkError, q } from "../lib/errors/mod.ts";

/**
 * A path that is a link, a FIFO, a device or a folder where a regular file was expected: someone
 * else put it in the store folder, which dtk refuses to use rather than follow.
 */
export class NotRegularError extends DtkError {
  readonly path: string;
  readonly what: string;
  constructor(path: string, what: string) {
    super(`${q(path)} is ${what}, not a regular file`, {
      hint:
        "Something other than dtk wrote into the store folder; remove that file (or run dtk store verify --repair) and check who can write there",
    });
    this.path = path;
    this.what = what;
  }
}

/** What a non-regular file is, for messages. */
export function fileKind(info: Deno.FileInfo): string {
  if (info.isSymlink) return "a symbolic link";
  if (info.isDirectory) return "a folder";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice || info.isBlockDevice) return "a device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/** `lstat`, refusing anything but a regular file. Throws `NotFound` as Deno does. */
export async function lstatRegular(path: string): Promise<Deno.FileInfo> {
  const info = await Deno.lstat(path);
  if (!info.isFile) throw new NotRegularError(path, fileKind(info));
  return info;
}

/** True when two infos describe the same file (device and inode). */
export function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  return a.dev === b.dev && a.ino !== null && a.ino === b.ino;
}

/**
 * Opens an existing regular file without following a link at `path`, and without blocking on a
 * FIFO (checked before the open). Throws `NotRegularError` or `NotFound`.
 */
export async function openRegular(
  path: string,
  options: { read?: boolean; write?: boolean } = { read: true },
): Promise<Deno.FsFile> {
  const before = await lstatRegular(path);
  const file = await Deno.open(path, {
    read: options.read ?? false,
    write: options.write ?? false,
  });
  try {
    const after = await file.stat();
    // Swapped between the lstat and the open: refuse rather than use what it points to now.
    if (!after.isFile || !sameFile(before, after)) throw new NotRegularError(path, "replaced");
    return file;
  } catch (error) {
    file.close();
    throw error;
  }
}

/**
 * Creates `path` afresh for writing: whatever is there (a stale file, or a planted link) is
 * removed first, then `O_CREAT|O_EXCL` makes a new regular file.
 */
export async function createFresh(path: string, mode = 0o600): Promise<Deno.FsFile> {
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return await Deno.open(path, { write: true, read: true, createNew: true, mode });
}

/** Reads a small regular file as text without following a link; `undefined` when missing. */
export async function readRegularText(path: string): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await openRegular(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    return new TextDecoder().decode(await new Response(file.readable).arrayBuffer());
  } catch (error) {
    file.close();
    throw error;
  }
}
