import assert from "node:assert/strict";
import { parseLock, serializeLock } from "../../store/lockfile.ts";
import { type ArtifactSet, testLock, upstreamVersion } from "./artifacts.ts";

Deno.test("upstreamVersion: strips epoch, Debian revision and repack suffixes", () => {
  assert.equal(upstreamVersion("3.4.23-4+b4"), "3.4.23");
  assert.equal(upstreamVersion("1.6.20~ds1-1+deb12u3"), "1.6.20");
  assert.equal(upstreamVersion("1:1.1.5+ds1-1+deb12u1"), "1.1.5");
});

Deno.test("testLock: the dtk.lock shape, accepted by the store's parser", () => {
  const set: ArtifactSet = {
    dir: "/nowhere",
    kubernetes: false,
    versions: {
      kubernetes: "v1.20.2",
      etcd: "v3.4.23",
      containerd: "1.6.20",
      runc: "v1.1.5",
      crictl: "v1.20.0",
      cniPlugins: "v1.1.1",
      guestAdditions: "",
    },
    artifacts: [{
      name: "etcd",
      version: "v3.4.23",
      kind: "tarball",
      file: "etcd-v3.4.23-linux-amd64.tar.gz",
      sha256: "0f".repeat(32),
      size: 123,
      origin: "test",
    }],
  };
  const lock = testLock(set, { mirrorUrl: "http://127.0.0.1:9/" });
  assert.deepEqual(lock, {
    version: 1,
    artifacts: {
      etcd: {
        version: "v3.4.23",
        kind: "tarball",
        arch: "amd64",
        urls: ["http://127.0.0.1:9/etcd-v3.4.23-linux-amd64.tar.gz"],
        hash: `sha256:${"0f".repeat(32)}`,
        size: 123,
        source: "computed",
        file: "etcd-v3.4.23-linux-amd64.tar.gz",
      },
    },
  });
  assert.deepEqual(parseLock(JSON.parse(serializeLock(lock))), lock);
});
