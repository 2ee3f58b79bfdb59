/**
 * A check of the image lists against the charts themselves: `helm template` of each enabled
 * add-on's chart from the store with dtk's own values, the image references read from what it
 * renders, and the ones the list lacks reported. Used by `dtk lock` when helm is on the PATH.
 *
 * @module
 */
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import type { Config } from "../config/mod.ts";
import { DtkError, q } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";
import { writeFileAtomic } from "../fs/mod.ts";
import { chartImages, imageKey } from "./_images.ts";
import { addonDefinition } from "./_registry.ts";
import { addonChart, renderInput } from "./_render.ts";
import type { AddonName, ClusterFacts } from "./_types.ts";

/**
 * Container arguments through which an operator is handed an image it starts later. Base-image
 * flags without a tag (`--prometheus-default-base-image`) and images only used when a feature is
 * configured (`--thanos-default-base-image`) are left out on purpose.
 */
export const IMAGE_FLAGS: readonly string[] = [
  "--prometheus-config-reloader",
  "--acme-http01-solver-image",
];

/** Stand-in facts: the values depend on them only in addresses and the token, never in images. */
const TEMPLATE_FACTS: ClusterFacts = {
  controllerIp: "192.0.2.10",
  nodeIps: ["192.0.2.10"],
  adminToken: "0".repeat(64),
};

/**
 * Every image reference in rendered manifests: `image:` fields (a string, or a
 * `{registry, repository, tag, digest}` map as in NginxProxy), the operator flags of
 * `IMAGE_FLAGS` in `args`/`command`, and container environment variables named `*IMAGE`.
 * In order of first appearance, each once.
 */
export function renderedImages(manifests: string): string[] {
  const found = new Set<string>();
  const add = (ref: unknown) => {
    if (typeof ref === "string" && ref.trim() !== "") found.add(ref.trim());
  };
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) walk(item);
      return;
    }
    if (node === null || typeof node !== "object") return;
    const obj = node as Record<string, unknown>;
    for (const [key, value] of Object.entries(obj)) {
      if (key === "image") add(typeof value === "string" ? value : imageFromMap(value));
      if ((key === "args" || key === "command") && Array.isArray(value)) {
        for (const arg of value) {
          if (typeof arg !== "string") continue;
          const eq = arg.indexOf("=");
          if (eq > 0 && IMAGE_FLAGS.includes(arg.slice(0, eq))) add(arg.slice(eq + 1));
        }
      }
      if (key === "env" && Array.isArray(value)) {
        for (const v of value) {
          const e = v as { name?: unknown; value?: unknown } | null;
          if (typeof e?.name === "string" && /IMAGE$/.test(e.name)) add(e.value);
        }
      }
      walk(value);
    }
  };
  for (const doc of parseAllDocuments(manifests)) {
    if (doc.errors.length > 0) {
      throw new DtkError("Cannot parse the output of helm template", {
        hint: doc.errors[0]?.message,
      });
    }
    walk(doc.toJS());
  }
  return [...found];
}

function imageFromMap(value: unknown): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const m = value as Record<string, unknown>;
  if (typeof m.repository !== "string" || m.repository === "") return undefined;
  const registry = typeof m.registry === "string" && m.registry !== "" ? `${m.registry}/` : "";
  const tag = typeof m.tag === "string" && m.tag !== "" ? `:${m.tag}` : "";
  const digest = typeof m.digest === "string" && m.digest !== "" ? `@${m.digest}` : "";
  return `${registry}${m.repository}${tag}${digest}`;
}

/** The rendered references that the add-on's list (and its `notPulled`) lacks. */
export function unlistedImages(name: AddonName, version: string, rendered: string[]): string[] {
  const list = chartImages(name, version);
  const known = new Set([
    ...(list?.images ?? []).map((i) => imageKey(i.ref)),
    ...(list?.notPulled ?? []).map(imageKey),
  ]);
  return rendered.filter((ref) => {
    try {
      return !known.has(imageKey(ref));
    } catch {
      return true;
    }
  });
}

export interface TemplateCheckOptions {
  runner: Runner;
  /** The helm program. Default `helm`. */
  helm?: string;
  /** The chart file of an add-on in the store, or undefined when it is not there. */
  chartPath: (name: AddonName) => Promise<string | undefined>;
  /** Where the values files go while helm runs (0600, removed after). */
  tmpDir: string;
  timeoutMs?: number;
}

export interface TemplateCheck {
  addon: AddonName;
  version: string;
  /**
   * `checked`: rendered and compared; `no-chart`: not in the store; `no-list`: nothing to compare
   * against; `failed`: helm failed or its output did not parse (`error`).
   */
  status: "checked" | "no-chart" | "no-list" | "failed";
  /** Rendered images the list lacks. */
  missing: string[];
  error?: DtkError;
}

/**
 * Renders every enabled add-on's chart with `helm template` (dtk's values, stand-in cluster
 * facts, the config's Kubernetes version, tests skipped) and compares the images it names with
 * the registry's list. A helm failure is reported per add-on, never thrown: the check only
 * warns.
 */
export async function checkChartImages(
  config: Config,
  options: TemplateCheckOptions,
): Promise<TemplateCheck[]> {
  const out: TemplateCheck[] = [];
  // external-dns's values name the desktop's address; any address renders the same images.
  const cfg: Config = config.dns.hostIp === undefined
    ? { ...config, dns: { ...config.dns, hostIp: TEMPLATE_FACTS.controllerIp } }
    : config;
  for (const entry of cfg.addons) {
    if (!entry.enabled) continue;
    const name = entry.name as AddonName;
    const { version } = addonChart(cfg, name);
    if (chartImages(name, version) === undefined) {
      out.push({ addon: name, version, status: "no-list", missing: [] });
      continue;
    }
    const chart = await options.chartPath(name);
    if (chart === undefined) {
      out.push({ addon: name, version, status: "no-chart", missing: [] });
      continue;
    }
    const def = addonDefinition(name);
    const values = def.values(renderInput(cfg, TEMPLATE_FACTS, name));
    const valuesFile = join(options.tmpDir, `${name}.values.json`);
    await writeFileAtomic(valuesFile, JSON.stringify(values), { mode: 0o600 });
    const argv = [
      options.helm ?? "helm",
      "template",
      def.release,
      chart,
      "--namespace",
      def.namespace,
      "--values",
      valuesFile,
      "--kube-version",
      cfg.versions.kubernetes,
      "--skip-tests",
    ];
    try {
      const result = await options.runner.run(argv, {
        timeoutMs: options.timeoutMs ?? 60_000,
        what: `helm template of add-on ${q(name)}`,
      });
      out.push({
        addon: name,
        version,
        status: "checked",
        missing: unlistedImages(name, version, renderedImages(result.stdout)),
      });
    } catch (error) {
      if (!(error instanceof DtkError)) throw error;
      out.push({ addon: name, version, status: "failed", missing: [], error });
    } finally {
      await Deno.remove(valuesFile).catch(() => {});
    }
  }
  return out;
}
