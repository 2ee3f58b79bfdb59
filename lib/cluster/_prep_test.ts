import assert from "node:assert/strict";
import { DtkError } from "../errors/mod.ts";
import { CGROUP_PROBE, checkCgroupVersion } from "./_prep.ts";

Deno.test("prep: a cgroup v1 node fails for Kubernetes 1.35 with the reason and the fix", () => {
  for (const fsType of ["tmpfs\n", "cgroupfs", ""]) {
    assert.throws(
      () => checkCgroupVersion("vm2", fsType, { kubernetes: "v1.35.0" }),
      (e: unknown) => {
        assert.ok(e instanceof DtkError);
        assert.match(e.message, /^Node "vm2" runs cgroup v1 \("\/sys\/fs\/cgroup" is "/);
        assert.match(e.message, /the kubelet of Kubernetes "v1\.35\.0" refuses to start on$/);
        assert.match(e.hint ?? "", /systemd\.unified_cgroup_hierarchy=1/);
        assert.match(e.hint ?? "", /below v1\.35/);
        return true;
      },
    );
  }
  checkCgroupVersion("vm2", "cgroup2fs\n", { kubernetes: "v1.35.0" });
  checkCgroupVersion("vm2", "cgroup2fs", { kubernetes: "v1.36.2" });
  // Older kubelets still run on v1: the 1.20 harness nodes are on a v1 host.
  checkCgroupVersion("vm2", "tmpfs", { kubernetes: "v1.34.3" });
  checkCgroupVersion("vm2", "tmpfs", { kubernetes: "v1.20.2" });
});

Deno.test("prep: the probe names the cgroup root's file system type on this host", async () => {
  const out = await new Deno.Command("sh", { args: ["-c", CGROUP_PROBE] }).output();
  assert.equal(out.code, 0);
  const type = new TextDecoder().decode(out.stdout).trim();
  // v2 (cgroup2fs) or v1/hybrid (tmpfs): nothing else is a Linux cgroup root.
  assert.ok(["cgroup2fs", "tmpfs"].includes(type), type);
  const procV2 = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n").some((l) =>
    / \/sys\/fs\/cgroup .* - cgroup2 /.test(l)
  );
  assert.equal(type === "cgroup2fs", procV2);
});
