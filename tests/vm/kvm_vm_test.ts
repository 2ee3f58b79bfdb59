/**
 * The KVM driver against a real libvirt and a real TCG guest (e2e tier: `DTK_E2E=1`).
 *
 * dtk's kvm driver, with `kvm.accel: tcg`, `kvm.network: user` and the cloud-image template path,
 * builds a template from a small Debian cloud-init image, clones it with a host key dtk made, starts
 * it, reaches it by ssh with only that key pinned, stops and deletes it; the `cidata` seed comes
 * from dtk's own ISO writer. Takes about a minute (plus ~3 min the first time to build the image).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { KvmDriver } from "../../drivers/kvm/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { generateSshKeyPair } from "../../lib/pki/mod.ts";
import { ensureTestImage } from "./image.ts";
import { alive, libvirtUnavailable, startLibvirt } from "./libvirt.ts";

const e2e = Deno.env.get("DTK_E2E") === "1";
const missing = e2e ? await libvirtUnavailable() : undefined;
const skip = !e2e ? "set DTK_E2E=1 to run the real-VM test" : missing;

async function sh(argv: string[], timeoutMs = 30_000) {
  return await new LocalRunner().run(argv, { check: false, timeoutMs });
}

Deno.test({
  name:
    `kvm driver: real TCG domain from a cloud image, ssh with the pinned host key, stop, delete${
      skip ? ` (skipped: ${skip})` : ""
    }`,
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const image = await ensureTestImage({ log: (l) => console.error(`image: ${l}`) });
    const work = await Deno.makeTempDir({ prefix: "dtk-vm-" });
    const lv = await startLibvirt();
    const runner = new LocalRunner();
    const driver = new KvmDriver({
      runner,
      uri: lv.uri,
      accel: "tcg",
      network: "user",
      libvirtNetwork: "default",
      kickstart: "kvm.text.ks.cfg",
      osVariant: "",
      linux: "alma9",
      templateSource: "cloud-image",
    });
    const vm = "dtk-e2e-vm1";
    const template = "dtk-e2e-template";
    try {
      const client = await generateSshKeyPair("dtk@e2e");
      const hostKey = await generateSshKeyPair(`root@${vm}`);
      const clientKey = join(work, "id_ed25519");
      await Deno.writeTextFile(clientKey, client.privateKey, { mode: 0o600 });
      await Deno.chmod(clientKey, 0o600);

      await t.step("preflight passes with tcg and user networking", async () => {
        assert.deepEqual(await driver.preflight(), []);
      });
      await t.step("template and clone", async () => {
        await driver.createTemplate({
          name: template,
          authorizedKey: client.publicKey,
          media: {
            cloudImage: image.disk,
            kernel: image.kernel,
            initrd: image.initrd,
            cmdline: image.cmdline,
          },
          workDir: join(work, "template"),
        }, { timeoutMs: 120_000 });
        await driver.clone({
          name: vm,
          template,
          cpu: 2,
          mem: 1024,
          disk: 3,
          staticIp: undefined,
          hostKey,
          authorizedKey: client.publicKey,
          workDir: join(work, "nodes"),
        }, { timeoutMs: 60_000 });
        assert.equal(await driver.status(vm), "stopped");
        // The seed holds the node's own host key but never dtk's client private key.
        const seed = await Deno.readFile(join(work, "nodes", `${vm}-cidata.iso`));
        const text = new TextDecoder().decode(seed);
        // Line 1 of every OpenSSH key is the same header; the lines after it are the key's own.
        const body = client.privateKey.trim().split("\n").slice(2, -1);
        assert.ok(body.length > 0);
        for (const line of body) {
          assert.ok(!text.includes(line), "client private key not in the seed");
        }
      });

      let port = 0;
      await t.step("start and reach by ssh with only the pinned host key", async () => {
        const started = performance.now();
        await driver.start(vm, { timeoutMs: 30_000 });
        const address = await driver.address(vm, { timeoutMs: 30_000 });
        assert.equal(address.ssh.host, "127.0.0.1");
        port = address.ssh.port;
        const knownHosts = join(work, "known_hosts");
        await Deno.writeTextFile(knownHosts, `[127.0.0.1]:${port} ${hostKey.publicKey}\n`);
        const ssh = [
          "ssh",
          ...["-i", clientKey, "-p", String(port), "-o", "BatchMode=yes"],
          ...["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`],
          ...["-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5"],
          ...["-o", "HostKeyAlgorithms=ssh-ed25519", "root@127.0.0.1"],
        ];
        let out = "";
        const deadline = Date.now() + 300_000;
        while (Date.now() < deadline) {
          const r = await sh([
            ...ssh,
            "hostname; cat /etc/ssh/ssh_host_ed25519_key.pub; echo; cloud-init status --wait >/dev/null; echo done",
          ], 120_000);
          if (r.success) {
            out = r.stdout;
            break;
          }
          await new Promise((r) => setTimeout(r, 2000));
        }
        console.error(`ssh reachable after ${((performance.now() - started) / 1000).toFixed(1)} s`);
        const lines = out.trim().split("\n").filter((l) => l !== "");
        assert.equal(lines[0], vm, "hostname from cidata");
        assert.equal(
          lines[1]?.split(" ").slice(0, 2).join(" "),
          hostKey.publicKey.split(" ").slice(0, 2).join(" "),
        );
        assert.equal(lines.at(-1), "done");
      });

      await t.step("stop (graceful wait, then forced) and delete leave nothing", async () => {
        const qemuPids = (await sh(["pgrep", "-f", `guest=${vm}`])).stdout.trim().split("\n")
          .filter(Boolean)
          .map(Number);
        assert.ok(qemuPids.length >= 1, "a qemu process runs the domain");
        await driver.stop(vm, { timeoutMs: 15_000 });
        assert.equal(await driver.status(vm), "stopped");
        assert.equal(await driver.delete(vm, { timeoutMs: 30_000 }), true);
        assert.equal(await driver.status(vm), "absent");
        assert.equal(await driver.delete(vm, { timeoutMs: 30_000 }), false);
        for (const pid of qemuPids) assert.equal(await alive(pid), false, `qemu ${pid} gone`);
        await assert.rejects(Deno.stat(join(work, "nodes", `${vm}.qcow2`)), Deno.errors.NotFound);
        await assert.rejects(
          Deno.stat(join(work, "nodes", `${vm}-cidata.iso`)),
          Deno.errors.NotFound,
        );
        assert.equal(await driver.delete(template, { timeoutMs: 30_000 }), true);
        await assert.rejects(
          Deno.stat(join(work, "template", `${template}.qcow2`)),
          Deno.errors.NotFound,
        );
        assert.deepEqual(await driver.list(), []);
        // The cached base image is untouched.
        assert.ok((await Deno.stat(image.disk)).isFile);
      });
    } finally {
      for (const name of [vm, template]) {
        await driver.delete(name, { timeoutMs: 30_000 }).catch(() => {});
      }
      const pids = [lv.libvirtdPid, lv.virtlogdPid];
      await lv.stop();
      for (const pid of pids) {
        if (pid) assert.equal(await alive(pid), false, `daemon ${pid} stopped`);
      }
      await Deno.remove(work, { recursive: true });
    }
  },
});
