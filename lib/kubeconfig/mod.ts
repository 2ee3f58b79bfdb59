/**
 * Merging a cluster's kubeconfig into the user's `~/.kube/config` the way kubectl reads it:
 * entries of `clusters`, `users` and `contexts` are keyed by name; dtk replaces its own entries
 * and leaves every other entry, field and preference as it was.
 *
 * @module
 */
import { parse, stringify } from "yaml";
import { DtkError, q } from "../errors/mod.ts";

type Entry = { name?: unknown } & Record<string, unknown>;
type Doc = Record<string, unknown>;

const LISTS = ["clusters", "users", "contexts"] as const;

export interface MergeResult {
  text: string;
  /** The context that was added or replaced. */
  context: string;
  /** True when an entry of that name existed before. */
  replaced: boolean;
}

/**
 * Merges `addition` (a kubeconfig dtk wrote) into `existing` (the user's, or `undefined`).
 * `setCurrent` makes the added context the current one; otherwise it only becomes current when
 * the file had none.
 */
export function mergeKubeconfig(
  existing: string | undefined,
  addition: string,
  options: { setCurrent?: boolean; path?: string } = {},
): MergeResult {
  const add = parse(addition) as Doc;
  let base: Doc;
  try {
    base = (existing === undefined || existing.trim() === "" ? {} : parse(existing)) as Doc;
  } catch (error) {
    throw new DtkError(`Cannot parse the kubeconfig ${q(options.path ?? "~/.kube/config")}`, {
      cause: error,
      hint: "Fix or move that file, then try again; dtk did not change it",
    });
  }
  if (base === null || typeof base !== "object" || Array.isArray(base)) {
    throw new DtkError(`The kubeconfig ${q(options.path ?? "~/.kube/config")} is not a map`, {
      hint: "Fix or move that file, then try again; dtk did not change it",
    });
  }
  const merged: Doc = { apiVersion: "v1", kind: "Config", ...base };
  let replaced = false;
  for (const key of LISTS) {
    const current = Array.isArray(merged[key]) ? [...(merged[key] as Entry[])] : [];
    for (const entry of (add[key] as Entry[] | undefined) ?? []) {
      const at = current.findIndex((e) => e?.name === entry.name);
      if (at >= 0) {
        current[at] = entry;
        replaced = true;
      } else current.push(entry);
    }
    merged[key] = current;
  }
  const context = String(add["current-context"] ?? "");
  if (options.setCurrent || !merged["current-context"]) merged["current-context"] = context;
  return { text: stringify(merged, { lineWidth: 0 }), context, replaced };
}
