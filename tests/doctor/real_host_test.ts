// `runDoctor` on this machine's real tools, /proc and df: what it reports must agree with what
// the tools and files say when asked directly.
import assert from "node:assert/strict";
import { defaultConfig } from "../../lib/config/mod.ts";
import { runDoctor } from "../../lib/doctor/mod.ts";
import { LocalRunner, which } from "../../lib/exec/mod.ts";

async function output(argv: string[]): Promise<string> {
  const o = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env: { LC_ALL: "C" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return d.decode(o.stdout) + d.decode(o.stderr);
}

const missing = (
  await Promise.all(
    ["ssh", "virsh", "qemu-img", "df", "id"].map(async (t) => (await which(t)) ? "" : t),
  )
).filter((t) => t !== "");

Deno.test({
  name: `doctor on the real host agrees with the tools themselves${
    missing.length ? ` (skipped: ${missing.join(", ")} not installed)` : ""
  }`,
  ignore: missing.length > 0,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dtk-doctor-real-" });
    try {
      const config = defaultConfig({ dir });
      config.store.path = dir;
      const checks = await runDoctor(config, { runner: new LocalRunner() });
      const get = (id: string) => {
        const c = checks.find((c) => c.id === id);
        assert.ok(c, id);
        return c;
      };
      for (const c of checks) {
        assert.ok(["ok", "warn", "fail"].includes(c.status));
        if (c.status !== "ok") assert.ok(c.fix, `${c.id} without a fix`);
      }
      const ssh = /OpenSSH_([\d.]+p?\d*)/.exec(await output(["ssh", "-V"]))?.[1];
      assert.equal(get("ssh").found, ssh);
      assert.equal(get("virsh").found, (await output(["virsh", "--version"])).trim());
      assert.equal(
        get("qemu-img").found,
        /version ([\d.]+)/.exec(await output(["qemu-img", "--version"]))?.[1],
      );
      const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
      const flag = /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
      const pvm = await Deno.stat("/sys/module/kvm_pvm").then(() => true, () => false);
      assert.equal(get("kvm-accel").status, flag && !pvm ? "ok" : "fail");
      const mount = (await output(["df", "-Pk", dir])).trim().split("\n").pop()?.split(/\s+/)
        .slice(5).join(" ");
      assert.match(get("disk-store").found, new RegExp(` free on ${mount}$`));
      const uid = /uid=(\d+)/.exec(await output(["id"]))?.[1];
      if (uid === "0") assert.equal(get("libvirt-group").found, "root");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
