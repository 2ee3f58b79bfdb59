/**
 * File writes that never leave a half-written file behind: write a temp file beside the target,
 * fsync it, rename it over the target, fsync the folder.
 *
 * @module
 */
import { dirname } from "node:path";

export interface WriteOptions {
  /** File mode; secrets use 0o600. Default 0o644. */
  mode?: number;
  /** Create missing parent folders (mode 0o755, or 0o700 when `mode` is 0o600). Default true. */
  mkdir?: boolean;
}

/** Writes `data` to `path` atomically, with `mode`. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: WriteOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o644;
  const dir = dirname(path);
  if (options.mkdir !== false) {
    await Deno.mkdir(dir, { recursive: true, mode: (mode & 0o077) === 0 ? 0o700 : 0o755 });
  }
  const temp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const file = await Deno.open(temp, { write: true, createNew: true, mode });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    // The mode given to open() is filtered by the umask; secrets must be exactly 0600.
    await Deno.chmod(temp, mode);
    await file.sync();
  } catch (error) {
    file.close();
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  file.close();
  try {
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  await syncDir(dir);
}

/** Writes a secret (key, token): mode 0600, parent folder 0700 when created. */
export function writeSecretAtomic(path: string, data: string | Uint8Array): Promise<void> {
  return writeFileAtomic(path, data, { mode: 0o600 });
}

/** fsync a folder so that a rename in it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on folders; the rename is still atomic there.
  }
}

/** True when `path` exists (file, folder or link). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
