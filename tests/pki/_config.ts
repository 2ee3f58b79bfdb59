/**
 * A `Config` for PKI tests, built by hand so the tests do not depend on the config loader.
 *
 * @module
 */
import type { Config } from "../../lib/config/types.ts";
import type { NodeIp } from "../../lib/pki/mod.ts";

export interface TestConfigOptions {
  name?: string;
  nodes?: number;
  kubeProxy?: boolean;
  serviceCidr?: string;
  clusterDomain?: string;
}

/** A config whose `generated/` folder is under `dir`. */
export function testConfig(dir: string, options: TestConfigOptions = {}): Config {
  const vms = Array.from({ length: options.nodes ?? 3 }, (_, i) => ({
    name: `vm${i + 1}`,
    cpu: 2,
    mem: 2048,
    ip: undefined,
    disk: undefined,
    podCidr: `10.200.${i}.0/24`,
  }));
  return {
    cluster: { name: options.name ?? "dev" },
    virt: "kvm",
    arch: "amd64",
    addons: [],
    k8s: {
      containerizedCplane: [],
      clusterCidr: "10.200.0.0/16",
      clusterDns: "10.32.0.10",
      serviceCidr: options.serviceCidr ?? "10.32.0.0/24",
      clusterDomain: options.clusterDomain ?? "cluster.local",
      kubeProxy: options.kubeProxy ?? true,
      containerdMirror: { enabled: false, name: "_default", config: "" },
      auditPolicy: undefined,
      runtimeConfig: undefined,
      resolvConf: "/etc/resolv.conf",
    },
    versions: {
      kubernetes: "1.34.1",
      etcd: "3.6.5",
      containerd: "2.1.4",
      runc: "1.3.2",
      crictl: "1.34.0",
      cniPlugins: "1.8.0",
      guestAdditions: "7.2.2",
    },
    kvm: {
      network: "nat",
      libvirtNetwork: "default",
      uri: "qemu:///system",
      accel: "kvm",
      kickstart: "ks.text.cfg",
      osVariant: "almalinux9",
    },
    vbox: {
      hostNetworkInterface: undefined,
      hostOnlyNetwork: undefined,
      kickstart: "ks.cfg",
      vboxdir: undefined,
    },
    vm: {
      linux: "alma9",
      createTemplate: true,
      templateVmname: "alma9",
      templateSource: "kickstart",
    },
    dns: { domain: "dtk.io", hostIp: undefined, webhookPort: 5000 },
    store: { path: undefined, mirrors: [] },
    vms,
    testNspawn: undefined,
    source: { file: `${dir}/config.yaml`, dir, builtIn: false },
  };
}

/** Loopback-range addresses for the config's VMs: 127.0.0.1 for the controller so TLS tests can dial it. */
export function testNodes(config: Config, base = 10): NodeIp[] {
  return config.vms.map((vm, i) => ({
    name: vm.name,
    ip: i === 0 ? "127.0.0.1" : `192.168.122.${base + i}`,
  }));
}

/** Every file under `dir`, relative, with its bytes. */
export async function snapshot(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const walk = async (sub: string) => {
    for await (const entry of Deno.readDir(`${dir}/${sub}`)) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory) await walk(rel);
      else out.set(rel, await Deno.readFile(`${dir}/${rel}`));
    }
  };
  await walk("");
  return out;
}

/** Runs a command; returns exit code and output (never throws on non-zero). */
export async function sh(
  argv: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
