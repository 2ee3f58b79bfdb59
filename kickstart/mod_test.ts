import { updateHosts } from "../lib/render/mod.ts";
import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  checkPublicKey,
  cidataFiles,
  DISTROS,
  hostsScript,
  oemdrvFiles,
  renderCloudInit,
  renderKickstart,
} from "./mod.ts";
import type { Linux } from "../lib/config/types.ts";

// Characters that broke the original's `sed "s/…/$key/"`, and those a shell would expand.
const NASTY =
  "ssh-ed25519 AAAAC3Nz/aC1lZ&DI1\\NTE5/AAAA&I\\\\x/$HOME`id`$(id)'\" dtk@host {{AUTHORIZED_KEY}}";

Deno.test("every distro renders both kickstarts with the key intact and no password", () => {
  for (const linux of Object.keys(DISTROS) as Linux[]) {
    for (const name of ["kvm.text.ks.cfg", "vbox.text.ks.cfg"]) {
      const ks = renderKickstart(name, { linux, authorizedKey: NASTY });
      const lines = ks.split("\n");
      assert.ok(lines.includes(NASTY), `${linux} ${name}: key line intact`);
      assert.equal(ks.split(NASTY).length, 2, "key appears exactly once");
      // The key sits in a quoted here-document, so the shell expands nothing in it.
      const start = lines.indexOf("cat > /root/.ssh/authorized_keys <<'DTK_AUTHORIZED_KEYS'");
      assert.ok(start > 0);
      assert.equal(lines[start + 1], NASTY);
      assert.equal(lines[start + 2], "DTK_AUTHORIZED_KEYS");
      assert.match(ks, /^rootpw --lock$/m);
      assert.doesNotMatch(ks, /frobozz|--plaintext|rootpw (?!--lock)/);
      assert.doesNotMatch(ks.replace(NASTY, ""), /\{\{[A-Z_]+\}\}/, "no placeholder left");
      assert.match(ks, /^rm -f \/etc\/ssh\/ssh_host_\*$/m, "clones get their own host keys");
      assert.doesNotMatch(ks, /^part swap/m);
      assert.match(ks, /swapoff -a/);
      assert.ok(ks.includes(`repo --name=AppStream --baseurl=${DISTROS[linux].appstreamUrl}`));
      for (const pkg of ["socat", "conntrack", "ipset"]) {
        assert.match(ks, new RegExp(`^${pkg}$`, "m"));
      }
      // EL8 boots cgroup v1 unless told otherwise, which a 1.35 kubelet refuses; EL9 is on v2.
      const el8 = linux === "alma8" || linux === "rocky";
      assert.match(
        ks,
        el8
          ? /^bootloader --timeout=5 --append="systemd\.unified_cgroup_hierarchy=1"$/m
          : /^bootloader --timeout=5$/m,
        `${linux} ${name}`,
      );
    }
  }
  const kvm = renderKickstart("kvm.text.ks.cfg", { linux: "alma8", authorizedKey: NASTY });
  assert.match(kvm, /--device=enp1s0/);
  assert.match(kvm, /^cloud-utils-growpart$/m);
  assert.match(kvm, /^cloud-init$/m);
  assert.match(kvm, /file:\/\/\/run\/install\/repo\/AppStream/);
  const vbox = renderKickstart("vbox.text.ks.cfg", { linux: "alma9", authorizedKey: NASTY });
  assert.match(vbox, /--device=enp0s3/);
  assert.match(vbox, /^eula --agreed$/m);
  assert.match(vbox, /\/dev\/disk\/by-label\/OEMDRV/);
});

Deno.test("a key holding the heredoc delimiter gets another delimiter", () => {
  const key = "ssh-ed25519 AAAA DTK_AUTHORIZED_KEYS";
  const ks = renderKickstart("kvm.text.ks.cfg", { linux: "alma9", authorizedKey: key });
  assert.match(
    ks,
    /<<'DTK_AUTHORIZED_KEYS_1'\nssh-ed25519 AAAA DTK_AUTHORIZED_KEYS\nDTK_AUTHORIZED_KEYS_1\n/,
  );
});

Deno.test("keys that are not one line, or private, are refused", () => {
  assert.throws(() => checkPublicKey("ssh-ed25519 AAAA\nrm -rf /"), /exactly one non-empty line/);
  assert.throws(() => checkPublicKey(""), /exactly one non-empty line/);
  assert.throws(() => checkPublicKey("-----BEGIN OPENSSH PRIVATE KEY-----"), /private SSH key/);
  assert.throws(
    () => renderKickstart("nope.ks.cfg", { linux: "alma9", authorizedKey: "k" }),
    /Unknown kickstart "nope.ks.cfg"/,
  );
});

Deno.test("the OEMDRV files carry the first-boot unit and no private key", () => {
  const files = oemdrvFiles("vbox.text.ks.cfg", { linux: "rocky", authorizedKey: NASTY });
  assert.deepEqual(files.map((f) => f.name), [
    "ks.cfg",
    "desktop-kubernetes.sh",
    "desktop-kubernetes.service",
  ]);
  for (const f of files) assert.doesNotMatch(String(f.data), /PRIVATE KEY/);
  assert.match(String(files[1]!.data), /CFGENP0S8/);
});

Deno.test("cloud-init seed: hostname, key, host key, network as parsed YAML", () => {
  const hostKey = {
    privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc/+&\\\n-----END OPENSSH PRIVATE KEY-----",
    publicKey: "ssh-ed25519 AAAAhost root@vm1",
  };
  const seed = renderCloudInit({ hostname: "vm1", authorizedKey: NASTY, hostKey });
  assert.ok(seed.userData.startsWith("#cloud-config\n"));
  const user = parse(seed.userData);
  assert.equal(user.hostname, "vm1");
  assert.equal(user.disable_root, false);
  assert.equal(user.ssh_keys.ed25519_private, `${hostKey.privateKey}\n`);
  assert.equal(user.ssh_keys.ed25519_public, `${hostKey.publicKey}\n`);
  assert.deepEqual(user.ssh_genkeytypes, []);
  const meta = parse(seed.metaData);
  assert.deepEqual(meta, {
    "instance-id": "dtk-vm1",
    "local-hostname": "vm1",
    "public-keys": [NASTY],
  });
  assert.deepEqual(parse(seed.networkConfig), {
    version: 2,
    ethernets: { primary: { match: { name: "e*" }, dhcp4: true } },
  });
  const fixed = parse(
    renderCloudInit({
      hostname: "vm2",
      authorizedKey: "ssh-ed25519 A",
      staticIp: { address: "10.0.0.5/24", gateway: "10.0.0.1" },
    }).networkConfig,
  );
  assert.deepEqual(fixed.ethernets.primary.addresses, ["10.0.0.5/24"]);
  assert.equal(
    parse(renderCloudInit({ hostname: "vm3", authorizedKey: "k" }).userData).ssh_keys,
    undefined,
  );
  assert.deepEqual(cidataFiles({ hostname: "vm1", authorizedKey: "k" }).map((f) => f.name), [
    "user-data",
    "meta-data",
    "network-config",
  ]);
  assert.throws(
    () => renderCloudInit({ hostname: "Bad_Name", authorizedKey: "k" }),
    /Invalid host name/,
  );
});

Deno.test("hosts seeding is idempotent (pure function and shell script)", async () => {
  const entries = [{ ip: "192.168.122.10", name: "vm1" }, { ip: "192.168.122.11", name: "vm2" }];
  const base = "127.0.0.1 localhost\n::1 localhost\n192.168.122.10 vm1\n";
  const once = updateHosts(base, entries);
  assert.equal(updateHosts(once, entries), once);
  assert.equal(
    once,
    "127.0.0.1 localhost\n::1 localhost\n" +
      "# BEGIN desktop-kubernetes nodes (managed by dtk, do not edit)\n192.168.122.10 vm1\n" +
      "192.168.122.11 vm2\n# END desktop-kubernetes nodes\n",
  );
  const moved = updateHosts(once, [{ ip: "192.168.122.20", name: "vm1" }]);
  assert.doesNotMatch(moved, /122\.10/);

  const dir = await Deno.makeTempDir({ prefix: "dtk-hosts-" });
  try {
    const path = `${dir}/hosts`;
    await Deno.writeTextFile(path, base);
    for (let i = 0; i < 3; i++) {
      const r = await new Deno.Command("sh", { args: ["-c", hostsScript(entries, { path })] })
        .output();
      assert.ok(r.success, new TextDecoder().decode(r.stderr));
    }
    assert.equal(await Deno.readTextFile(path), once);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(() => hostsScript([{ ip: "1.2.3.4; rm -rf /", name: "x" }]), /Invalid hosts entry/);
});
