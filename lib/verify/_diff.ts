/**
 * A short, unified-style diff of two small texts: enough to show what drifted in a unit file or a
 * flag, not a general diff tool. Common leading and trailing lines are dropped, the first
 * differing region is shown with a little context, and long regions are cut.
 *
 * @module
 */

export interface DiffOptions {
  /** Unchanged lines shown before and after the change. Default 2. */
  context?: number;
  /** Most `-`/`+` lines shown. Default 12. */
  maxLines?: number;
  /** Labels of the two sides. Default `expected` and `actual`. */
  labels?: [string, string];
}

function lines(text: string): string[] {
  const list = text.split("\n");
  // A final newline ends the last line; it does not start an empty one.
  if (list.length > 0 && list[list.length - 1] === "") list.pop();
  return list;
}

/** The diff of `expected` → `actual`, or `""` when they are equal. */
export function shortDiff(expected: string, actual: string, options: DiffOptions = {}): string {
  if (expected === actual) return "";
  const context = options.context ?? 2;
  const maxLines = options.maxLines ?? 12;
  const [from, to] = options.labels ?? ["expected", "actual"];
  const a = lines(expected);
  const b = lines(actual);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const before = Math.max(0, start - context);
  const afterA = Math.min(a.length, endA + context);
  const afterB = Math.min(b.length, endB + context);
  const out = [
    `--- ${from}`,
    `+++ ${to}`,
    `@@ -${before + 1},${afterA - before} +${before + 1},${afterB - before} @@`,
  ];
  for (let i = before; i < start; i++) out.push(` ${a[i]}`);
  const removed = a.slice(start, endA).map((l) => `-${l}`);
  const added = b.slice(start, endB).map((l) => `+${l}`);
  if (expected.endsWith("\n") !== actual.endsWith("\n") && removed.length + added.length === 0) {
    out.push(
      expected.endsWith("\n")
        ? "\\ actual has no newline at end of file"
        : "\\ actual adds a final newline",
    );
  }
  const changed = [...removed, ...added];
  out.push(...changed.slice(0, maxLines));
  if (changed.length > maxLines) out.push(`… ${changed.length - maxLines} more changed lines`);
  else for (let i = endA; i < afterA; i++) out.push(` ${a[i]}`);
  return out.join("\n");
}
