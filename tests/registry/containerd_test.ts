// What cluster create does with the lock's images on a node, against a real containerd (a
// private one on this host): pulls through dtk's registry with the hosts.toml dtk renders
// (offline: nothing upstream), the OCI archive fallback over the node's shell, and the pins.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ClusterImages, parseImageList } from "../../lib/cluster/_images.ts";
import { defaultConfig } from "../../lib/config/mod.ts";
import { NODE_PATHS, renderRegistryHosts } from "../../lib/render/mod.ts";
import { type Lockfile, openStore } from "../../store/mod.ts";
import { canRunContainerd, LocalRemote, startContainerd } from "./_containerd.ts";
import { addMultiArchIndex, imageArtifacts, seedStore, testLayout } from "./_images.ts";

const ignore = !canRunContainerd();

/** The images of the node's containerd (namespace k8s.io, as the kubelet's). */
async function nodeImages(remote: LocalRemote, socket: string) {
  return parseImageList((await remote.exec(`ctr -a ${socket} -n k8s.io images ls`)).stdout);
}

async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "dtk-ctr-" });
  const storeDir = join(dir, "store");
  const images = await seedStore(storeDir, await testLayout(dir));
  const lock = { version: 1, artifacts: imageArtifacts(images) } as unknown as Lockfile;
  const ctr = await startContainerd(join(dir, "containerd"));
  // The private containerd may not mount overlays inside this test's container.
  const remote = new LocalRemote("node1", { CONTAINERD_SNAPSHOTTER: "native" });
  const stop = async () => {
    await ctr.stop();
    await Deno.remove(dir, { recursive: true });
  };
  return { dir, storeDir, images, lock, ctr, remote, stop };
}

Deno.test({
  name: "node images: containerd pulls through dtk's registry by tag and digest, offline",
  ignore,
  fn: async () => {
    const f = await fixture();
    const images = new ClusterImages({
      lock: f.lock,
      store: openStore(f.storeDir),
      driver: { hostEndpoint: () => Promise.resolve({ listen: "127.0.0.1", reach: "127.0.0.1" }) },
      offline: true,
      arch: "amd64",
      port: 0,
      socket: f.ctr.socket,
    });
    try {
      const input = await images.registry();
      assert.ok(input !== undefined);
      assert.match(input.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.deepEqual(input.registries, ["dtk.test", "registry.k8s.io"]);
      // The files cluster create puts on the node, written under a folder of this host.
      const hostsDir = join(f.dir, "certs.d");
      const files = renderRegistryHosts(defaultConfig(), input);
      for (const file of files) {
        const path = join(hostsDir, file.path.slice(NODE_PATHS.containerdCertsDir.length));
        await Deno.mkdir(join(path, ".."), { recursive: true });
        await Deno.writeTextFile(path, file.content);
      }
      const pause = await Deno.readTextFile(join(hostsDir, "registry.k8s.io", "hosts.toml"));
      assert.match(pause, new RegExp(`^server = "${input.endpoint}"$`, "m"), pause);
      assert.equal(await images.reachable(f.remote), true);
      assert.equal(await images.prepareNode(f.remote), "registry");

      const [box, pauseImage] = [
        f.images.find((i) => i.ref.startsWith("dtk.test/"))!,
        f.images.find((i) => i.ref.startsWith("registry.k8s.io/"))!,
      ];
      const pull = (ref: string) =>
        f.remote.exec(
          `ctr -a ${f.ctr.socket} -n k8s.io images pull --hosts-dir ${hostsDir} --platform linux/amd64 ${ref}`,
        );
      await pull(`registry.k8s.io/pause@${pauseImage.hash}`);
      await pull(box.ref);
      const listed = await nodeImages(f.remote, f.ctr.socket);
      assert.equal(listed.find((i) => i.ref === box.ref)?.digest, box.hash);
      assert.equal(
        listed.find((i) => i.ref === `registry.k8s.io/pause@${pauseImage.hash}`)?.digest,
        pauseImage.hash,
      );

      // Nothing is missing now: the pins go on every record of a locked digest.
      const result = await images.pin(f.remote);
      assert.deepEqual(result.imported, []);
      const after = await nodeImages(f.remote, f.ctr.socket);
      for (const image of after) {
        assert.match(image.labels, /io\.cri-containerd\.pinned=pinned/, image.ref);
      }
    } finally {
      await images.close();
      await f.stop();
    }
  },
});

Deno.test({
  name: "node images: no route to the host: the OCI archive goes over the node's shell, pinned",
  ignore,
  fn: async () => {
    const f = await fixture();
    const images = new ClusterImages({
      lock: f.lock,
      store: openStore(f.storeDir),
      driver: { hostEndpoint: () => Promise.resolve(undefined) },
      offline: true,
      arch: "amd64",
      socket: f.ctr.socket,
    });
    try {
      assert.equal(await images.registry(), undefined);
      assert.equal(await images.prepareNode(f.remote), "archive");
      assert.ok(
        f.remote.log.some((l) => /images import --platform linux\/amd64 -$/.test(l)),
      );
      const listed = await nodeImages(f.remote, f.ctr.socket);
      for (const image of f.images) {
        assert.equal(listed.find((i) => i.ref === image.ref)?.digest, image.hash, image.ref);
        const [name] = image.ref.split(":");
        assert.equal(listed.find((i) => i.ref === `${name}@${image.hash}`)?.digest, image.hash);
      }
      // An image removed from the node comes back at the pin step, then everything is pinned.
      const box = f.images.find((i) => i.ref.startsWith("dtk.test/"))!;
      const records = listed.filter((i) => i.digest === box.hash).map((i) => i.ref);
      assert.ok(records.length >= 2, records.join(" "));
      await f.remote.exec(`ctr -a ${f.ctr.socket} -n k8s.io images rm ${records.join(" ")}`);
      const result = await images.pin(f.remote);
      assert.deepEqual(result.imported, ["dtk.test+box@1"]);
      const after = await nodeImages(f.remote, f.ctr.socket);
      for (const image of f.images) {
        const record = after.find((i) => i.ref === image.ref);
        assert.match(record?.labels ?? "", /io\.cri-containerd\.pinned=pinned/, image.ref);
      }
      // Every blob of both images is in the node's content store.
      const rootfs = await f.remote.exec(
        `ctr -a ${f.ctr.socket} -n k8s.io images check | grep -c complete`,
      );
      assert.ok(Number(rootfs.stdout.trim()) >= 2, rootfs.stdout);
    } finally {
      await images.close();
      await f.stop();
    }
  },
});

Deno.test({
  name: "node images: a multi-arch index with only the cluster's arch stored imports and pulls",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtk-ctr-index-" });
    const ctr = await startContainerd(join(dir, "containerd"));
    const remote = new LocalRemote("node1", { CONTAINERD_SNAPSHOTTER: "native" });
    const storeDir = join(dir, "store");
    const layout = await testLayout(dir);
    const multi = await addMultiArchIndex(layout);
    await seedStore(storeDir, layout);
    const lock = {
      version: 1,
      artifacts: {
        [multi.name]: {
          kind: "image",
          ref: multi.ref,
          hash: multi.hash,
          manifest: multi.manifest,
          arch: "amd64",
          version: "1",
          size: null,
          source: "registry",
          urls: [],
        },
      },
    } as unknown as Lockfile;
    const images = new ClusterImages({
      lock,
      store: openStore(storeDir),
      driver: { hostEndpoint: () => Promise.resolve({ listen: "127.0.0.1", reach: "127.0.0.1" }) },
      offline: true,
      arch: "amd64",
      port: 0,
      socket: ctr.socket,
    });
    try {
      // Over ssh: the archive holds the index and the amd64 manifest only.
      await images.importArchive(remote, (await images.index()).images);
      let listed = await nodeImages(remote, ctr.socket);
      assert.equal(listed.find((i) => i.ref === multi.ref)?.digest, multi.hash);
      await remote.exec(
        `ctr -a ${ctr.socket} -n k8s.io images rm ${multi.ref} dtk.test/multi@${multi.hash}`,
      );
      // Through the registry, by tag, for linux/amd64.
      const input = (await images.registry())!;
      const hostsDir = join(dir, "certs.d");
      for (const file of renderRegistryHosts(defaultConfig(), input)) {
        const path = join(hostsDir, file.path.slice(NODE_PATHS.containerdCertsDir.length));
        await Deno.mkdir(join(path, ".."), { recursive: true });
        await Deno.writeTextFile(path, file.content);
      }
      await remote.exec(
        `ctr -a ${ctr.socket} -n k8s.io images pull --hosts-dir ${hostsDir} --platform linux/amd64 ${multi.ref}`,
      );
      listed = await nodeImages(remote, ctr.socket);
      assert.equal(listed.find((i) => i.ref === multi.ref)?.digest, multi.hash);
    } finally {
      await images.close();
      await ctr.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
