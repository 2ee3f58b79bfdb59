/**
 * Writes `tests/testdata/charts/<addon>-<version>.values.yaml`: the key tree of a chart's own
 * `values.yaml` at its release tag (scalars become null; lists and empty maps are kept as empty),
 * so that chart_values_test.ts reads dtk's values against the chart without the chart at hand.
 *
 *   deno run -A tests/addons/_chart_tree_gen.ts <addon> <version> <owner/repo> <tag> <chart dir> <git dir>
 *
 * `<git dir>` is a clone holding the tag; the file records the commit the tag points at. When the
 * chart ships a `values.schema.json` (which helm validates the merged values against), it is
 * recorded too, as `<addon>-<version>.values.schema.json`, with the chart's own values.yaml as
 * `<addon>-<version>.defaults.yaml` (the defaults helm merges dtk's values into).
 */
import { parse, stringify } from "yaml";

function tree(value: unknown): unknown {
  if (Array.isArray(value)) return [];
  if (value === null || typeof value !== "object") return null;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tree(v)]));
}

async function git(gitDir: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", { args: ["-C", gitDir, ...args] }).output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

if (import.meta.main) {
  const [addon, version, repo, tag, dir, gitDir] = Deno.args;
  if (gitDir === undefined) {
    throw new Error("usage: addon version owner/repo tag chart-dir git-dir");
  }
  const commit = (await git(gitDir, "rev-parse", `${tag}^{commit}`)).trim();
  const values = parse(await git(gitDir, "show", `${commit}:${dir}/values.yaml`)) ?? {};
  const header = [
    `# Key tree of ${repo}@${tag} ${dir}/values.yaml (chart ${addon} ${version}).`,
    `# source: ${repo}@${commit}:${dir}/values.yaml`,
    `# url: https://github.com/${repo}/blob/${tag}/${dir}/values.yaml`,
    "# Scalars are null, lists and empty maps are empty: only the keys matter.",
    "# Written by tests/addons/_chart_tree_gen.ts; read by tests/addons/chart_values_test.ts.",
  ].join("\n");
  const out = `${header}\n${stringify(tree(values), { lineWidth: 0 })}`;
  const base = `tests/testdata/charts/${addon}-${version}`;
  await Deno.writeTextFile(`${base}.values.yaml`, out);
  const schema = await git(gitDir, "show", `${commit}:${dir}/values.schema.json`).catch(() => null);
  if (schema !== null) {
    await Deno.writeTextFile(`${base}.values.schema.json`, schema);
    const defaults = await git(gitDir, "show", `${commit}:${dir}/values.yaml`);
    const head = header.split("\n").slice(0, 3).join("\n").replace("Key tree of", "Copy of");
    await Deno.writeTextFile(`${base}.defaults.yaml`, `${head}\n${defaults}`);
  }
}
