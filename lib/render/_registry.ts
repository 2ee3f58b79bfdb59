/**
 * containerd's registry host files (`certs.d/<registry>/hosts.toml`) that send the nodes' pulls
 * to `dtk registry` first. All live in the one `config_path` folder the containerd config names
 * (containerd 2.1's transfer service reads nothing else). The user's `k8s.containerd-mirror`
 * keeps working: its hosts follow dtk's in the same file, because containerd reads one file per
 * registry and a registry's own folder hides `_default`.
 *
 * @module
 */
import { NODE_PATHS } from "./_paths.ts";
import { renderContainerdMirror } from "./_runtime.ts";
import type { NodeFile, RenderConfig } from "./_types.ts";

/** Where the nodes reach dtk's registry, and for which upstream registries. */
export interface ImageRegistryInput {
  /** `http://HOST:PORT` of `dtk registry` as the nodes reach it. */
  endpoint: string;
  /** The upstream registries of the lock's images (`docker.io`, `quay.io`, …). */
  registries: readonly string[];
  /** Nothing goes upstream: dtk's registry is the `server` too. */
  offline: boolean;
}

/** The upstream server containerd uses for a registry host (Docker's rules). */
export function upstreamServer(registry: string): string {
  if (registry === "docker.io") return "https://registry-1.docker.io";
  const loopback = /^(localhost|127\.[0-9.]+|\[::1\])(:\d+)?$/.test(registry);
  return `${loopback ? "http" : "https"}://${registry}`;
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** The `[host."…"]` tables of a hosts.toml text, verbatim, and its `server` if it names one. */
function splitUserHosts(text: string): { server: string | undefined; hosts: string } {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => /^\s*\[host\./.test(l));
  const head = start < 0 ? lines : lines.slice(0, start);
  const server = head.map((l) => /^\s*server\s*=\s*"([^"]*)"/.exec(l)?.[1]).find((s) =>
    s !== undefined
  );
  const hosts = start < 0 ? "" : lines.slice(start).join("\n").trimEnd();
  return { server, hosts };
}

function hostsFile(
  registry: string,
  input: ImageRegistryInput,
  user: { server: string | undefined; hosts: string } | undefined,
): string {
  const server = input.offline ? input.endpoint : user?.server ?? upstreamServer(registry);
  const lines = [
    `# Managed by dtk: pulls of ${registry} go to dtk's registry first${
      input.offline ? ", and nowhere upstream (--offline)" : ""
    }.`,
    `server = ${tomlString(server)}`,
    "",
    `[host.${tomlString(input.endpoint)}]`,
    `  capabilities = ["pull", "resolve"]`,
    "",
  ];
  if (user !== undefined && user.hosts !== "") {
    lines.push("# From k8s.containerd-mirror:", user.hosts, "");
  }
  return lines.join("\n");
}

/**
 * The registry host files of every node: the user's mirror (when enabled) and, with `registry`,
 * one file per upstream registry pointing at dtk's registry.
 */
export function renderRegistryHosts(
  config: RenderConfig,
  registry: ImageRegistryInput | undefined,
): NodeFile[] {
  const mirror = config.k8s.containerdMirror;
  const userFile = renderContainerdMirror(config);
  const files: NodeFile[] = [];
  const registries = [...new Set(registry?.registries ?? [])].sort();
  if (userFile !== undefined && !registries.includes(mirror.name)) files.push(userFile);
  if (registry === undefined) return files;
  const user = userFile === undefined ? undefined : splitUserHosts(userFile.content);
  for (const name of registries) {
    const own = userFile !== undefined && (mirror.name === name || mirror.name === "_default");
    files.push({
      path: `${NODE_PATHS.containerdCertsDir}/${name}/hosts.toml`,
      content: hostsFile(name, registry, own ? user : undefined),
      mode: 0o644,
    });
  }
  return files;
}
