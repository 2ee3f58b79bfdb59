/**
 * Shared fixtures of the add-on tests: two configs with different networks, cluster facts, and
 * a sandbox with the recording fakes of helm and kubectl first on PATH.
 *
 * @module
 */
import { join } from "node:path";
import { type Config, defaultConfig } from "../../lib/config/mod.ts";
import type { ClusterFacts } from "../../lib/addons/mod.ts";

/** A fixed token: golden files must not change from run to run. */
export const TEST_TOKEN = "0f".repeat(32);

/** The built-in default config, with the desktop address external-dns needs. */
export function defaultTestConfig(dir: string): Config {
  const config = defaultConfig({ dir });
  config.dns.hostIp = "192.168.122.1";
  return config;
}

/** Other networks, another domain, etcd as a static pod, kube-proxy on, ssl-passthrough on. */
export function otherTestConfig(dir: string): Config {
  const config = structuredClone(defaultConfig({ dir }));
  config.cluster.name = "lab";
  config.k8s.clusterCidr = "10.244.0.0/16";
  config.k8s.serviceCidr = "10.96.0.0/12";
  config.k8s.clusterDns = "10.96.0.10";
  config.k8s.clusterDomain = "lab.local";
  config.k8s.kubeProxy = true;
  config.k8s.containerizedCplane = ["etcd", "kube-scheduler"];
  config.dns = { domain: "lab.example", hostIp: "172.16.5.1", webhookPort: 5353 };
  const ingress = config.addons.find((a) => a.name === "ingress-nginx")!;
  ingress.sslPassthrough = true;
  ingress.enabled = true;
  const cilium = config.addons.find((a) => a.name === "cilium")!;
  cilium.chartVersion = "1.18.4";
  return config;
}

/** The DNS webhook token of the test facts. */
export const TEST_WEBHOOK_TOKEN = "5e".repeat(32);

export const DEFAULT_FACTS: ClusterFacts = {
  controllerIp: "192.168.122.10",
  nodeIps: ["192.168.122.10", "192.168.122.11", "192.168.122.12"],
  adminToken: TEST_TOKEN,
  dnsWebhookToken: TEST_WEBHOOK_TOKEN,
};

export const OTHER_FACTS: ClusterFacts = {
  controllerIp: "172.16.5.20",
  nodeIps: ["172.16.5.20", "172.16.5.21"],
  adminToken: TEST_TOKEN,
  dnsWebhookToken: TEST_WEBHOOK_TOKEN,
};

export interface Sandbox {
  dir: string;
  bin: string;
  log: string;
  /** Environment for the installer's helm and kubectl: the fakes first on PATH. */
  env: Record<string, string>;
  readLog(): Promise<string>;
  cleanup(): Promise<void>;
}

/** A temp folder with the fakes in `bin/` and an empty argv log. */
export async function sandbox(extraEnv: Record<string, string> = {}): Promise<Sandbox> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-addons-" });
  const bin = join(dir, "bin");
  await Deno.mkdir(bin);
  for (const tool of ["helm", "kubectl"]) {
    const target = join(bin, tool);
    await Deno.copyFile(join(import.meta.dirname!, "fakes", tool), target);
    await Deno.chmod(target, 0o755);
  }
  const log = join(dir, "argv.log");
  await Deno.writeTextFile(log, "");
  return {
    dir,
    bin,
    log,
    env: { PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`, FAKE_LOG: log, ...extraEnv },
    readLog: () => Deno.readTextFile(log),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** The argv of every recorded call, as arrays (tool first). */
export function parseLog(text: string): string[][] {
  const calls: string[][] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("== ")) calls.push([line.slice(3)]);
    else if (line.startsWith("  ") && !line.startsWith("    | ")) calls.at(-1)?.push(line.slice(2));
  }
  return calls;
}
