/**
 * Helm charts in OCI registries (`oci://host/repo/chart:tag`): the distribution API with an
 * anonymous bearer token, manifest → the chart layer's digest and blob URL. The digest is the
 * sha256 of the chart `.tgz`, so it is also the publisher's hash.
 *
 * @module
 */
import { DtkError, q } from "../lib/errors/mod.ts";
import { readTextAtMost } from "../lib/http/mod.ts";

/** A token service's answer and a chart's manifest are small JSON documents. */
const MAX_JSON_BYTES = 4 << 20;

/** The JSON body of `res`, refused when over `MAX_JSON_BYTES` (checked as it streams in). */
async function smallJson(res: Response, what: string): Promise<unknown> {
  const text = await readTextAtMost(res, MAX_JSON_BYTES);
  if (text === undefined) {
    throw new DtkError(`${what} is larger than ${MAX_JSON_BYTES} bytes`, {
      hint: "The registry answered something that is not a token or a manifest",
    });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new DtkError(`${what} is not JSON`, { cause: error });
  }
}

export const HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

export interface OciRef {
  /** `https://host` (plain `http://` for loopback registries, as `helm --plain-http`). */
  base: string;
  repo: string;
  tag: string;
}

export interface OciChart {
  blobUrl: string;
  hex: string;
  size: number;
  /** Headers the blob request needs (the bearer token). */
  headers: Record<string, string>;
}

/** Splits `oci://host[:port]/repo/path:tag`. */
export function parseOciUrl(url: string): OciRef {
  const m = /^oci:\/\/([^/]+)\/(.+):([A-Za-z0-9_][A-Za-z0-9._-]{0,127})$/.exec(url);
  if (!m) {
    throw new DtkError(`Invalid OCI reference ${q(url)}`, {
      hint: "Write it as oci://<registry>/<repository>:<tag>",
    });
  }
  const [, host = "", repo = "", tag = ""] = m;
  const loopback = /^(127\.[0-9.]+|localhost|\[::1\])(:\d+)?$/.test(host);
  return { base: `${loopback ? "http" : "https"}://${host}`, repo, tag };
}

/** Parses `Bearer realm="…",service="…",scope="…"`. */
export function parseBearerChallenge(header: string): Record<string, string> | undefined {
  if (!/^bearer\s/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/(\w+)="([^"]*)"/g)) {
    params[(m[1] ?? "").toLowerCase()] = m[2] ?? "";
  }
  return params.realm ? params : undefined;
}

async function getToken(
  challenge: Record<string, string>,
  ref: OciRef,
  signal: AbortSignal | undefined,
): Promise<string> {
  const url = new URL(challenge.realm ?? "");
  if (challenge.service) url.searchParams.set("service", challenge.service);
  url.searchParams.set("scope", challenge.scope ?? `repository:${ref.repo}:pull`);
  const res = await fetch(url, { signal });
  if (!res.ok) {
    await res.body?.cancel();
    throw new DtkError(`Registry token request ${q(url.href)} failed with HTTP ${res.status}`);
  }
  const body = await smallJson(res, `Registry token response from ${q(url.href)}`) as {
    token?: string;
    access_token?: string;
  };
  const token = body.token ?? body.access_token;
  if (!token) throw new DtkError(`Registry token response from ${q(url.href)} has no token`);
  return token;
}

/** HTTP status of a failed registry call, so the downloader can decide to retry. */
export class OciHttpError extends DtkError {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/** Reads the chart's manifest and returns where its layer is and what it hashes to. */
export async function resolveOciChart(
  url: string,
  options: { signal?: AbortSignal } = {},
): Promise<OciChart> {
  const ref = parseOciUrl(url);
  const manifestUrl = `${ref.base}/v2/${ref.repo}/manifests/${ref.tag}`;
  const headers: Record<string, string> = { Accept: MANIFEST_TYPES };
  let res = await fetch(manifestUrl, { headers, signal: options.signal });
  if (res.status === 401) {
    const challenge = parseBearerChallenge(res.headers.get("www-authenticate") ?? "");
    await res.body?.cancel();
    if (challenge === undefined) {
      throw new OciHttpError(`Registry refused ${q(manifestUrl)} without a bearer challenge`, 401);
    }
    headers.Authorization = `Bearer ${await getToken(challenge, ref, options.signal)}`;
    res = await fetch(manifestUrl, { headers, signal: options.signal });
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new OciHttpError(`HTTP ${res.status} for manifest ${q(manifestUrl)}`, res.status);
  }
  const manifest = await smallJson(res, `The OCI manifest ${q(manifestUrl)}`) as {
    layers?: { mediaType?: string; digest?: string; size?: number }[];
  };
  const layer = manifest.layers?.find((l) => l.mediaType === HELM_CHART_LAYER);
  const hex = layer?.digest?.startsWith("sha256:") ? layer.digest.slice(7) : undefined;
  if (layer === undefined || hex === undefined || !/^[0-9a-f]{64}$/.test(hex)) {
    throw new DtkError(`The OCI manifest ${q(manifestUrl)} has no Helm chart layer`, {
      hint: `Is ${q(url)} a Helm chart?`,
    });
  }
  const blobHeaders: Record<string, string> = {};
  if (headers.Authorization) blobHeaders.Authorization = headers.Authorization;
  return {
    blobUrl: `${ref.base}/v2/${ref.repo}/blobs/sha256:${hex}`,
    hex,
    size: layer.size ?? -1,
    headers: blobHeaders,
  };
}
