/**
 * Golden-file assertions: `UPDATE_GOLDEN=1 deno test -A tests/render` rewrites the files.
 *
 * @module
 */
import { equal } from "node:assert/strict";
import { dirname, join } from "node:path";

export const GOLDEN_DIR = join(import.meta.dirname ?? ".", "..", "testdata", "golden");

export async function assertGolden(name: string, actual: string): Promise<void> {
  const path = join(GOLDEN_DIR, name);
  if (Deno.env.get("UPDATE_GOLDEN") === "1") {
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`Golden file ${path} is missing; create it with UPDATE_GOLDEN=1`);
    }
    throw error;
  }
  // node:assert shows a line diff; the message says how to accept an intended change.
  equal(actual, expected, `${name} differs from its golden file (UPDATE_GOLDEN=1 to accept)`);
}
