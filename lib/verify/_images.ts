/**
 * The image part of `dtk verify`: every running container of a node (sandboxes too) against
 * the digests the lock pins. Read from containerd with `ctr` (nodes may lack crictl): the
 * running tasks, each container's image name, and the digest each image name points at.
 *
 * @module
 */
import { parseImageReference } from "../registry/mod.ts";
import type { LockedImage } from "../registry/mod.ts";
import { NODE_PATHS } from "../render/mod.ts";

/** One running container as containerd knows it. */
export interface RunningContainer {
  id: string;
  /** The image name the container was made from (a tag, digest or ID reference). */
  image: string;
  /** The digest that image name points at in containerd's image store; "" when unknown. */
  digest: string;
  /** `namespace/pod/container` from the CRI labels, when there. */
  label: string;
}

/** The node script: `I\tname\tdigest` per image, `C\tid\t<base64 container info>` per running task. */
export const IMAGES_PROBE_SCRIPT = `set -u
command -v ctr >/dev/null 2>&1 || { printf 'E\\tctr is not on the node\\n'; exit 0; }
c() { ctr -n k8s.io -a ${NODE_PATHS.containerdSocket} "$@"; }
c images ls 2>/dev/null | tail -n +2 | while read -r ref type digest rest; do
  printf 'I\\t%s\\t%s\\n' "$ref" "$digest"
done
c tasks ls 2>/dev/null | tail -n +2 | while read -r id pid status; do
  [ "$status" = RUNNING ] || continue
  printf 'C\\t%s\\t%s\\n' "$id" "$(c containers info "$id" 2>/dev/null | base64 -w0)"
done
`;

function decodeBase64(text: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0)));
}

/** Parses the probe's output; `error` when the node could not tell. */
export function parseImagesProbe(
  stdout: string,
): { containers: RunningContainer[]; error?: string } {
  const digests = new Map<string, string>();
  const raw: { id: string; info: string }[] = [];
  for (const line of stdout.split("\n")) {
    const [tag, a = "", b = ""] = line.split("\t");
    if (tag === "E") return { containers: [], error: a };
    if (tag === "I") digests.set(a, b);
    if (tag === "C") raw.push({ id: a, info: b });
  }
  const containers: RunningContainer[] = [];
  for (const { id, info } of raw) {
    let image = "";
    let label = "";
    try {
      const parsed = JSON.parse(decodeBase64(info)) as {
        Image?: string;
        Labels?: Record<string, string>;
      };
      image = parsed.Image ?? "";
      const l = parsed.Labels ?? {};
      const pod = l["io.kubernetes.pod.name"];
      if (pod !== undefined) {
        label = [l["io.kubernetes.pod.namespace"], pod, l["io.kubernetes.container.name"]]
          .filter((x) => x !== undefined && x !== "").join("/");
      }
    } catch { /* an unreadable record is reported with an unknown image */ }
    // An image ID (`sha256:<config>`) is a name too: containerd's CRI records one per image.
    const digest = digests.get(image) ?? "";
    containers.push({ id, image, digest, label });
  }
  return { containers };
}

function normalized(ref: string): string | undefined {
  try {
    const r = parseImageReference(ref);
    return `${r.registry}/${r.repository}${r.tag === undefined ? "" : `:${r.tag}`}`;
  } catch {
    return undefined;
  }
}

/** How one running container compares with the lock. */
export interface ImageFinding {
  container: RunningContainer;
  ok: boolean;
  /** The lock's digest for the container's image name, when the lock names it. */
  expected: string;
  detail?: string;
}

/**
 * Each container is fine when its image digest is the one the lock pins for its image name, or
 * (for a name given by digest or ID) one the lock pins at all.
 */
export function compareImages(
  containers: readonly RunningContainer[],
  images: readonly LockedImage[],
): ImageFinding[] {
  const pinned = new Set(images.flatMap((i) => [i.hash, i.manifest]));
  return containers.map((container) => {
    const name = normalized(container.image);
    const entry = images.find((i) => name !== undefined && normalized(i.ref) === name);
    const expected = entry?.hash ?? "";
    if (container.digest === "") {
      return { container, ok: false, expected, detail: "containerd knows no digest for its image" };
    }
    if (entry !== undefined) {
      const ok = container.digest === entry.hash || container.digest === entry.manifest;
      return ok ? { container, ok, expected } : {
        container,
        ok,
        expected,
        detail: `runs ${container.digest}, the lock pins ${entry.hash} for ${entry.ref}`,
      };
    }
    const ok = pinned.has(container.digest) ||
      images.some((i) => container.image.endsWith(`@${i.hash}`));
    return ok ? { container, ok, expected } : {
      container,
      ok,
      expected,
      detail: `image ${container.image} (${container.digest}) is not in the lock`,
    };
  });
}
