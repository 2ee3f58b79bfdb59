// cluster create's image plumbing without nodes: the registry it starts on the driver's host
// endpoint, what the hosts.toml files then say with and without --offline, a taken port, a
// driver with no route, and the node commands of the pin step (recorded by a fake remote).
import assert from "node:assert/strict";
import { join } from "node:path";
import { ClusterImages, parseImageList, PINNED_LABEL } from "../../lib/cluster/_images.ts";
import { defaultConfig } from "../../lib/config/mod.ts";
import { renderRegistryHosts } from "../../lib/render/mod.ts";
import { type Lockfile, openStore } from "../../store/mod.ts";
import { imageArtifacts, seedStore, testLayout } from "./_images.ts";
import { LocalRemote } from "./_containerd.ts";

const LOOPBACK = { listen: "127.0.0.1", reach: "127.0.0.1" };

async function withLock(
  fn: (f: { storeDir: string; lock: Lockfile; hashes: string[] }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "dtk-cluster-images-" });
  try {
    const storeDir = join(dir, "store");
    const images = await seedStore(storeDir, await testLayout(dir));
    const lock = { version: 1, artifacts: imageArtifacts(images) } as unknown as Lockfile;
    await fn({ storeDir, lock, hashes: images.map((i) => i.hash) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function logger() {
  const lines: string[] = [];
  return {
    lines,
    info: (t: string) => lines.push(`info ${t}`),
    warn: (t: string) => lines.push(`warn ${t}`),
    debug: (t: string) => lines.push(`debug ${t}`),
  };
}

Deno.test("cluster images: the registry serves on the host endpoint; --offline makes it the server", async () => {
  await withLock(async ({ storeDir, lock }) => {
    for (const offline of [false, true]) {
      const log = logger();
      const images = new ClusterImages({
        lock,
        store: openStore(storeDir),
        driver: { hostEndpoint: () => Promise.resolve(LOOPBACK) },
        offline,
        arch: "amd64",
        port: 0,
        log,
      });
      try {
        const input = await images.registry();
        assert.ok(input);
        // Started once, however often asked.
        assert.equal((await images.registry())?.endpoint, input.endpoint);
        const r = await fetch(`${input.endpoint}/v2/`);
        assert.equal(r.status, 200);
        await r.body?.cancel();
        const files = renderRegistryHosts(defaultConfig(), input);
        const pause = files.find((f) => f.path.endsWith("/registry.k8s.io/hosts.toml"))!;
        const server = /^server = "(.*)"$/m.exec(pause.content)?.[1];
        assert.equal(server, offline ? input.endpoint : "https://registry.k8s.io");
        assert.match(pause.content, new RegExp(`\\[host\\."${input.endpoint}"\\]`));
        assert.ok(files.some((f) => f.path.endsWith("/dtk.test/hosts.toml")));
        assert.ok(log.lines.some((l) => /serving 2 image\(s\) to the nodes/.test(l)));
      } finally {
        await images.close();
      }
    }
  });
});

Deno.test("cluster images: a taken port names cluster create's remedy; no route means ssh", async () => {
  await withLock(async ({ storeDir, lock }) => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const images = new ClusterImages({
        lock,
        store: openStore(storeDir),
        driver: { hostEndpoint: () => Promise.resolve(LOOPBACK) },
        offline: true,
        arch: "amd64",
        port: (taken.addr as Deno.NetAddr).port,
      });
      await assert.rejects(
        images.registry(),
        (e: Error & { hint?: string }) =>
          /the port is in use/.test(e.message) && /dtk cluster create again/.test(e.hint ?? ""),
      );
    } finally {
      taken.close();
    }
    const log = logger();
    const bridged = new ClusterImages({
      lock,
      store: openStore(storeDir),
      driver: {},
      offline: false,
      arch: "amd64",
      log,
    });
    assert.equal(await bridged.registry(), undefined);
    assert.ok(
      log.lines.some((l) => /no known route to this host: images go to them over ssh/.test(l)),
    );
    const noneLog = logger();
    const none = new ClusterImages({
      lock: { version: 1, artifacts: {} },
      store: openStore(storeDir),
      driver: { hostEndpoint: () => Promise.resolve(LOOPBACK) },
      offline: true,
      arch: "amd64",
      log: noneLog,
    });
    assert.equal(none.enabled, false);
    assert.equal(await none.registry(), undefined);
    assert.ok(noneLog.lines.some((l) => /^warn The lock names no container images/.test(l)));
  });
});

/** A node whose `ctr images ls` already lists both images: the pin step only labels. */
class ListingRemote extends LocalRemote {
  constructor(readonly listing: string) {
    super("vm1");
  }
  override exec(command: string | readonly string[], options: { check?: boolean } = {}) {
    const line = typeof command === "string" ? command : command.join(" ");
    if (/ images ls$/.test(line)) {
      this.log.push(line);
      return Promise.resolve({
        code: 0,
        success: true,
        stdout: this.listing,
        stderr: "",
        elapsedMs: 0,
      });
    }
    if (/ images label /.test(line)) {
      this.log.push(line);
      return Promise.resolve({ code: 0, success: true, stdout: "", stderr: "", elapsedMs: 0 });
    }
    return super.exec(command, options);
  }
}

Deno.test("cluster images: the pin step labels every record of a locked digest, nothing else", async () => {
  await withLock(async ({ storeDir, lock, hashes }) => {
    const [a, b] = hashes as [string, string];
    const other = `sha256:${"e".repeat(64)}`;
    const listing = [
      "REF                          TYPE                                           DIGEST SIZE PLATFORMS LABELS",
      `dtk.test/box:1               application/vnd.oci.image.manifest.v1+json     ${a} 1.2 MiB linux/amd64 -`,
      `dtk.test/box@${a} application/vnd.oci.image.manifest.v1+json ${a} 1.2 MiB linux/amd64 -`,
      `registry.k8s.io/pause:3.10   application/vnd.oci.image.manifest.v1+json     ${b} 1.2 MiB linux/amd64 io.cri-containerd.image=managed`,
      `docker.io/library/other:1    application/vnd.oci.image.manifest.v1+json     ${other} 3 MiB linux/amd64 -`,
    ].join("\n");
    assert.deepEqual(parseImageList(listing).map((i) => i.digest), [a, a, b, other]);
    const remote = new ListingRemote(listing);
    const images = new ClusterImages({
      lock,
      store: openStore(storeDir),
      driver: {},
      offline: true,
      arch: "amd64",
    });
    const result = await images.pin(remote);
    assert.deepEqual(result.imported, []);
    assert.deepEqual(result.pinned.sort(), [
      `dtk.test/box:1`,
      `dtk.test/box@${a}`,
      "registry.k8s.io/pause:3.10",
    ]);
    const labels = remote.log.filter((l) => / images label /.test(l)).join("\n");
    assert.match(
      labels,
      new RegExp(`images label registry\\.k8s\\.io/pause:3\\.10 ${PINNED_LABEL}`),
    );
    assert.doesNotMatch(labels, /other:1/);
  });
});
