/**
 * A private libvirt for the real-VM tests, started by hand and stopped by PID.
 *
 * `libvirtd` and `virtlogd` run in their own mount namespace where `/run`, the domain XML folder
 * and libvirt's qemu state folder are temp folders of the test, `/etc/libvirt/qemu.conf` is a copy
 * with `namespaces = [ ]` (no private /dev per guest: refused in this sandbox), and `/dev/kvm` is a
 * root-only plain file: with a `/dev/kvm` that cannot run guests (kvm_pvm) libvirt re-probes qemu on
 * every call and each `define` takes ~45 s. Nothing of the host's libvirt is touched; the URI
 * names the private socket (`qemu:///system?socket=…`).
 *
 * @module
 */
import { join } from "node:path";
import { TimeoutError } from "../../lib/errors/mod.ts";

export interface PrivateLibvirt {
  uri: string;
  dir: string;
  libvirtdPid: number;
  virtlogdPid: number | undefined;
  /** Destroys every domain left, stops both daemons by PID, removes the folder. */
  stop(): Promise<void>;
}

/** Why the real-VM test cannot run here, or `undefined`. */
export async function libvirtUnavailable(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "needs root to start libvirtd";
  for (
    const tool of ["libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "qemu-img", "unshare"]
  ) {
    const found = await new Deno.Command("sh", {
      args: ["-c", `command -v ${tool}`],
      stdout: "null",
    })
      .output();
    if (!found.success) return `${tool} is not installed`;
  }
  return undefined;
}

export async function startLibvirt(options: { timeoutMs?: number } = {}): Promise<PrivateLibvirt> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-libvirt-" });
  const run = join(dir, "run");
  for (const d of ["run", "domains", "state", "log"]) await Deno.mkdir(join(dir, d));
  const conf = await Deno.readTextFile("/etc/libvirt/qemu.conf").catch(() => "");
  await Deno.writeTextFile(
    join(dir, "qemu.conf"),
    `${conf}\nnamespaces = [ ]\nuser = "root"\ngroup = "root"\nsecurity_driver = "none"\n` +
      `remember_owner = 0\n`,
  );
  await Deno.writeTextFile(join(dir, "nokvm"), "");
  await Deno.chmod(join(dir, "nokvm"), 0o600);
  const hasKvm = await Deno.stat("/dev/kvm").then(() => true, () => false);
  const script = [
    "set -e",
    `exec >${dir}/log/libvirtd.log 2>&1`,
    hasKvm ? `mount --bind ${dir}/nokvm /dev/kvm` : ":",
    `mount --bind ${dir}/qemu.conf /etc/libvirt/qemu.conf`,
    `mount --bind ${dir}/domains /etc/libvirt/qemu`,
    `mount --bind ${dir}/state /var/lib/libvirt/qemu`,
    `mount --bind ${run} /run`,
    // This shell stays the parent of both daemons, so it reaps them: on SIGTERM it stops
    // libvirtd, then virtlogd, and waits for each.
    `virtlogd -p ${run}/virtlogd.pid & vl=$!`,
    `libvirtd -p ${run}/libvirtd.pid & lv=$!`,
    `trap 'kill -TERM $lv; wait $lv; kill -TERM $vl; wait $vl; exit 0' TERM`,
    "wait",
  ].join("\n");
  const child = new Deno.Command("unshare", {
    args: ["--mount", "--propagation", "private", "sh", "-c", script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const uri = `qemu:///system?socket=${run}/libvirt/libvirt-sock`;
  // The daemons' PIDs, from their pid files once they answer; read by stop().
  const daemons: { virtlogd?: number; libvirtd?: number } = {};
  const stop = async () => {
    const list = await new Deno.Command("virsh", {
      args: ["--connect", uri, "list", "--name"],
      stdout: "piped",
      stderr: "null",
    }).output().catch(() => undefined);
    for (const name of new TextDecoder().decode(list?.stdout ?? new Uint8Array()).split("\n")) {
      if (name.trim() === "") continue;
      await new Deno.Command("virsh", { args: ["--connect", uri, "destroy", name.trim()] })
        .output().catch(() => {});
    }
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 10_000)),
    ]);
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    }
    // Only if the shell had to be killed hard: stop what it could not.
    for (const pid of [daemons.libvirtd, daemons.virtlogd]) {
      if (pid === undefined || !(await alive(pid))) continue;
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (true) {
    const probe = await new Deno.Command("virsh", {
      args: ["--connect", uri, "version"],
      stdout: "null",
      stderr: "null",
    }).output();
    if (probe.success) break;
    if (Date.now() > deadline) {
      const log = await Deno.readTextFile(join(dir, "log/libvirtd.log")).catch(() => "");
      await stop();
      throw new TimeoutError(`the private libvirtd to answer on ${uri}`, {
        timeoutMs: options.timeoutMs ?? 30_000,
        hint: log.slice(-2000),
      });
    }
    await sleep(200);
  }
  const pidOf = async (name: string) =>
    Number((await Deno.readTextFile(`${run}/${name}.pid`).catch(() => "")).trim()) || undefined;
  daemons.virtlogd = await pidOf("virtlogd");
  daemons.libvirtd = await pidOf("libvirtd");
  return {
    uri,
    dir,
    libvirtdPid: daemons.libvirtd ?? child.pid,
    virtlogdPid: daemons.virtlogd,
    stop,
  };
}

export async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // A zombie is dead for our purposes.
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
