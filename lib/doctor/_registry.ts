/**
 * The checks for dtk's image registry during `cluster create`: its port free on the host
 * address the nodes reach, and nothing on the host (firewalld) refusing the VM network there.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { formatCommand } from "../exec/mod.ts";
import type { Check } from "./_checks.ts";
import type { Host } from "./_host.ts";

/** What the doctor knows of the registry `cluster create` would start. */
export interface RegistryDoctorInput {
  /** The host address to bind and the one the nodes use; undefined: no route known. */
  endpoint: { listen: string; reach: string } | undefined;
  port: number;
  /** The lock names images: a taken port stops `cluster create`. */
  needed: boolean;
  /** Why the endpoint is unknown (the driver failed to say), for the detail. */
  error?: string;
}

/** Binds `hostname:port` for a moment: free, taken, or not an address of this host. */
function tryBind(hostname: string, port: number): "free" | "in use" | "no address" {
  try {
    const listener = Deno.listen({ hostname, port, transport: "tcp" });
    listener.close();
    return "free";
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return "in use";
    if (error instanceof Deno.errors.AddrNotAvailable) return "no address";
    throw error;
  }
}

export function registryPortCheck(
  input: RegistryDoctorInput,
  config: Pick<Config, "virt" | "kvm">,
): Check {
  const base = {
    id: "registry-port",
    title: `dtk registry port ${input.port}`,
    required: "free on the address the nodes reach",
    blocking: input.needed,
  };
  const bad = input.needed ? "fail" as const : "warn" as const;
  if (input.endpoint === undefined) {
    return {
      ...base,
      status: "warn",
      blocking: false,
      found: "no route from the nodes to this host known",
      detail: input.error ??
        "Images go to the nodes over ssh (an OCI archive per node), slower than a pull",
      fix: "Nothing needed; for pulls through dtk's registry use a NAT or host-only VM network",
    };
  }
  const where = `${input.endpoint.listen}:${input.port}`;
  const state = tryBind(input.endpoint.listen, input.port);
  if (state === "free") return { ...base, status: "ok", found: `free on ${where}` };
  if (state === "in use") {
    return {
      ...base,
      status: bad,
      found: `in use on ${where}`,
      detail: "cluster create serves the lock's images there (another dtk registry running?)",
      fix: `${formatCommand(["ss", "-ltnp", `sport = :${input.port}`])}\nthen stop that program`,
    };
  }
  const start = config.virt === "kvm"
    ? formatCommand(["virsh", "-c", config.kvm.uri, "net-start", config.kvm.libvirtNetwork])
    : "Bring the VM network's host interface up (VirtualBox: the host-only adapter)";
  return {
    ...base,
    status: bad,
    found: `${input.endpoint.listen} is not an address of this host`,
    detail: "The VM network's host side is down",
    fix: start,
  };
}

export async function registryReachCheck(
  host: Host,
  input: RegistryDoctorInput,
  config: Pick<Config, "virt">,
): Promise<Check> {
  const base = {
    id: "registry-reach",
    title: `VM network reaches port ${input.port}`,
    required: "not refused by the host firewall",
    blocking: false,
  };
  if (input.endpoint === undefined) {
    return { ...base, status: "ok", found: "not needed (images over ssh)" };
  }
  const state = await host.run("firewall-cmd", ["--state"]);
  if (!state.ok) {
    return state.reason === "not found" ? { ...base, status: "ok", found: "no firewalld" } : {
      ...base,
      status: "warn",
      found: `firewalld did not answer: ${state.reason}`,
      fix: "sudo systemctl status firewalld",
    };
  }
  if (state.stdout.trim() !== "running") {
    return { ...base, status: "ok", found: "firewalld not running" };
  }
  // libvirt's networks sit in firewalld's `libvirt` zone, which admits only a few services.
  let zone = "libvirt";
  if (config.virt !== "kvm") {
    const got = await host.run("firewall-cmd", ["--get-default-zone"]);
    zone = got.ok && got.code === 0 ? got.stdout.trim() : "public";
  }
  const port = `${input.port}/tcp`;
  const query = await host.run("firewall-cmd", [`--zone=${zone}`, `--query-port=${port}`]);
  if (query.ok && query.stdout.trim() === "yes") {
    return { ...base, status: "ok", found: `firewalld zone ${zone} admits ${port}` };
  }
  const add = (permanent: boolean) =>
    formatCommand([
      "sudo",
      "firewall-cmd",
      ...(permanent ? ["--permanent"] : []),
      `--zone=${zone}`,
      `--add-port=${port}`,
    ]);
  return {
    ...base,
    status: "warn",
    found: `firewalld zone ${zone} does not admit ${port}`,
    detail: "The nodes cannot pull through dtk's registry; their images go over ssh instead",
    fix: `${add(false)}\n${add(true)}`,
  };
}
