/**
 * Which container images a config needs: the sandbox image, the control plane's static pods,
 * and for every enabled add-on the images of its chart version as the registry lists them.
 * Pure: `dtk lock` locks these, `dtk lock --why` explains them.
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { ConfigError, q } from "../errors/mod.ts";
import { parseImageReference } from "../registry/mod.ts";
import { componentImage, PAUSE_IMAGE, runModeOf } from "../render/mod.ts";
import { addonDefinition } from "./_registry.ts";
import { addonChart } from "./_render.ts";
import type { AddonName, ChartImages } from "./_types.ts";

/** One image the cluster pulls, and who needs it. */
export interface RequiredImage {
  /** As the cluster pulls it: `quay.io/cilium/cilium:v1.18.5`. */
  ref: string;
  /** `sandbox`, `control-plane`, or the add-on's name. */
  addon: string;
  /** The digest the chart pins beside the tag, when it does: the lock must resolve to it. */
  digest?: string;
  /** How it is pulled when not as a plain container of the chart (operator flag, hook job). */
  via?: string;
}

/** An enabled add-on whose chart version has no image list. */
export interface UnlistedChart {
  addon: AddonName;
  version: string;
  /** The versions the registry has lists for. */
  listed: string[];
  /** Its place in `addons[]`. */
  index: number;
}

export type ImageConfig = Pick<Config, "addons" | "k8s" | "versions" | "arch" | "cluster">;

const CPLANE = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kube-proxy",
] as const;

/** The image list of `name` at `version`, if the registry has one. */
export function chartImages(name: AddonName, version: string): ChartImages | undefined {
  return Object.hasOwn(addonDefinition(name).images, version)
    ? addonDefinition(name).images[version]
    : undefined;
}

function enabled(config: ImageConfig): AddonName[] {
  return config.addons.filter((a) => a.enabled).map((a) => a.name as AddonName);
}

function gap(config: ImageConfig, name: AddonName, version: string): UnlistedChart {
  return {
    addon: name,
    version,
    listed: Object.keys(addonDefinition(name).images),
    index: config.addons.findIndex((a) => a.name === name),
  };
}

/** The enabled add-ons whose chart version (catalogue default or `chart-version`) has no list. */
export function unlistedCharts(config: ImageConfig): UnlistedChart[] {
  const out: UnlistedChart[] = [];
  for (const name of enabled(config)) {
    const { version } = addonChart(config, name);
    if (chartImages(name, version) === undefined) {
      out.push(gap(config, name, version));
    }
  }
  return out;
}

/** The refusal for an add-on version without an image list. */
export function unlistedError(gap: UnlistedChart): ConfigError {
  return ConfigError.forKey(
    `addons[${gap.index}].chart-version`,
    `Add-on ${q(gap.addon)} chart ${q(gap.version)} has no image list: its images cannot be locked`,
    {
      file: "<add-on registry>",
      hint: gap.listed.length > 0
        ? `Use chart-version ${gap.listed.map((v) => q(v)).join(" or ")}, or drop chart-version`
        : "Remove the add-on's chart-version",
    },
  );
}

/** Every image entry of the config, duplicates kept, in order (see `requiredImages`). */
function allImages(config: ImageConfig, skipUnlisted: boolean): RequiredImage[] {
  const all: RequiredImage[] = [{ ref: PAUSE_IMAGE, addon: "sandbox" }];
  for (const component of CPLANE) {
    if (component === "kube-proxy" && !config.k8s.kubeProxy) continue;
    if (runModeOf(component, config) !== "static-pod") continue;
    all.push({ ref: componentImage(component, config), addon: "control-plane" });
  }
  for (const name of enabled(config)) {
    const { version } = addonChart(config, name);
    const list = chartImages(name, version);
    if (list === undefined) {
      if (skipUnlisted) continue;
      throw unlistedError(gap(config, name, version));
    }
    for (const image of list.images) {
      all.push({
        ref: image.ref,
        addon: name,
        ...(image.digest === undefined ? {} : { digest: image.digest }),
        ...(image.via === undefined ? {} : { via: image.via }),
      });
    }
  }
  return all;
}

/**
 * Every image the config's cluster pulls, each once, in a stable order: the sandbox image
 * (containerd's `sandbox`, `lib/render`), the control plane's static pods
 * (`k8s.containerized-cplane`), then every enabled add-on's images in add-on order. An enabled
 * add-on whose chart version has no list is refused (`unlistedError`) unless `skipUnlisted`,
 * which leaves it out: see `unlistedCharts` to warn about those.
 */
export function requiredImages(
  config: ImageConfig,
  options: { skipUnlisted?: boolean } = {},
): RequiredImage[] {
  const seen = new Set<string>();
  return allImages(config, options.skipUnlisted ?? false).filter((image) => {
    const key = imageKey(image.ref);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Who needs `ref` in this config: every entry (not only the first, as `requiredImages` keeps)
 * that is that image. `ref` may be short, as in a pod spec (`coredns/coredns:1.13.1` is
 * `docker.io/coredns/coredns:1.13.1`); without a tag it matches every tag of the repository;
 * with a digest, the entries that pin it (or, with a tag too, that tag when not pinned).
 * Add-ons whose chart version has no list are not searched.
 */
export function whyImage(config: ImageConfig, ref: string): RequiredImage[] {
  const want = parseImageReference(ref);
  const tag = explicitTag(ref, want.tag);
  return allImages(config, true).filter((image) => {
    const have = parseImageReference(image.ref);
    if (have.registry !== want.registry || have.repository !== want.repository) return false;
    if (want.digest !== undefined) {
      return image.digest === want.digest ||
        (image.digest === undefined && tag !== undefined && have.tag === tag);
    }
    return tag === undefined || have.tag === tag;
  });
}

/** The tag written in `ref`, not the `latest` Docker assumes when there is none. */
function explicitTag(ref: string, parsed: string | undefined): string | undefined {
  const name = ref.split("@")[0] ?? "";
  return name.lastIndexOf(":") > name.lastIndexOf("/") ? parsed : undefined;
}

/** `registry/repository:tag` of a reference, Docker's defaults filled in, any digest dropped. */
export function imageKey(ref: string): string {
  const r = parseImageReference(ref);
  return `${r.registry}/${r.repository}${r.tag === undefined ? "" : `:${r.tag}`}`;
}
