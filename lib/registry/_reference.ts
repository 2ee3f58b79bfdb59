/**
 * Image references as the cluster writes them (`quay.io/cilium/cilium:v1.18.5`,
 * `nginx@sha256:…`), split the way Docker and containerd do: a first segment with a dot, a colon
 * or `localhost` names the registry, else it is `docker.io`, whose one-segment names live under
 * `library/`.
 *
 * @module
 */
import { DtkError, q } from "../errors/mod.ts";

export interface ImageReference {
  /** The registry host as the cluster names it (`docker.io`, `quay.io`, `127.0.0.1:5000`). */
  registry: string;
  /** The repository path without the registry (`library/nginx`, `cilium/cilium`). */
  repository: string;
  tag?: string;
  /** `sha256:<hex>` when the reference pins one. */
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** True when every `/`-separated part of `name` is a valid repository path component. */
export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && name.split("/").every((c) => COMPONENT.test(c));
}

/** Splits an image reference; throws on one that is not valid. */
export function parseImageReference(ref: string): ImageReference {
  const invalid = () =>
    new DtkError(`Invalid image reference ${q(ref)}`, {
      hint: "Write it as [registry/]repository[:tag][@sha256:<digest>]",
    });
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw invalid();
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid();
  }
  const parts = rest.split("/");
  const first = parts[0] ?? "";
  let registry = "docker.io";
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    registry = first;
    parts.shift();
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") registry = "docker.io";
  if (registry === "docker.io" && parts.length === 1) parts.unshift("library");
  const repository = parts.join("/");
  if (!isRepositoryName(repository)) throw invalid();
  const out: ImageReference = { registry, repository };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  if (tag === undefined && digest === undefined) out.tag = "latest";
  return out;
}
