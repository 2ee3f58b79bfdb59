/**
 * Real artifacts for end-to-end tests: binaries from Debian packages (etcd, containerd, runc, CNI
 * plugins) and the Kubernetes 1.20.2 build of `build_k8s.sh`, repacked in the file layouts of the
 * upstream releases dtk downloads, plus a `dtk.lock` that pins them by sha256.
 *
 * Layouts reproduced (names as in `lib/catalog`):
 * - etcd: `etcd-vX-linux-amd64.tar.gz` holding `etcd-vX-linux-amd64/{etcd,etcdctl}`
 * - containerd: `containerd-static-X-linux-amd64.tar.gz` holding `bin/{containerd,containerd-shim*,ctr}`
 *   (Debian's build is dynamically linked against glibc, not static: fine on Debian nodes only)
 * - runc: `runc.amd64` (Debian's links libseccomp2)
 * - cni-plugins: `cni-plugins-linux-amd64-vX.tgz`, flat `./bridge`, `./host-local`, …
 * - kube-*: plain binaries named as the component; kubectl (from Debian's `kubernetes-client`
 *   1.20.2, fetched by `build_k8s.sh`) when present
 * - crictl: not packaged in Debian 12. `crictl-vX-linux-amd64.tar.gz` holds a clearly named
 *   STAND-IN shell script (it says so on every call and fails except for `--version`), only so
 *   that a lock resolved by dtk's catalogue is complete.
 *
 * Tarballs are deterministic (sorted, mtime 0, root-owned, `gzip -n`), so the hashes are stable
 * for the same package versions.
 *
 * @module
 */
import { join } from "node:path";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";
import { PrerequisiteError } from "../../lib/errors/mod.ts";
import { exists, writeFileAtomic } from "../../lib/fs/mod.ts";
import { serializeLock } from "../../store/lockfile.ts";
import type { LockArtifact, Lockfile } from "../../store/lockfile.ts";
import type { VersionsConfig } from "../../lib/config/types.ts";
import { cacheRoot, sha256File, sha256Text } from "./_util.ts";

export const K8S_VERSION = "v1.20.2";
/** Version given to the crictl stand-in (the cri-tools release that matches Kubernetes 1.20). */
export const CRICTL_STANDIN_VERSION = "v1.20.0";
export const K8S_COMPONENTS = [
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubelet",
  "kube-proxy",
] as const;

/** One artifact file of the test mirror. */
export interface TestArtifact {
  name: string;
  version: string;
  kind: "binary" | "tarball";
  file: string;
  /** sha256 hex. */
  sha256: string;
  size: number;
  /** Where the bytes really came from (a Debian package, the local k8s build, a stand-in). */
  origin: string;
}

export interface ArtifactSet {
  /** Folder holding the files by name. */
  dir: string;
  artifacts: TestArtifact[];
  /** Versions in the shape of `config.versions`, to build a matching test config. */
  versions: VersionsConfig;
  /** False when the Kubernetes build is missing: the kube-* artifacts are then absent. */
  kubernetes: boolean;
}

/** Where `build_k8s.sh` puts the binaries. */
export function k8sCacheDir(): string {
  return join(cacheRoot(), "k8s-1.20.2");
}

/**
 * Whether the Kubernetes 1.20.2 build is usable, and if not, why: tests that need it skip with
 * this reason.
 */
export function k8sStatus(): { ok: boolean; reason: string } {
  const dir = k8sCacheDir();
  try {
    Deno.statSync(join(dir, ".complete"));
    for (const c of K8S_COMPONENTS) Deno.statSync(join(dir, "bin", c));
    return { ok: true, reason: "" };
  } catch {
    return {
      ok: false,
      reason: `no Kubernetes 1.20.2 build in ${dir}; run tests/harness/build_k8s.sh (~5 min)`,
    };
  }
}

const PACKAGES = {
  etcd: "etcd-server",
  etcdctl: "etcd-client",
  containerd: "containerd",
  runc: "runc",
  cni: "containernetworking-plugins",
} as const;

async function packageVersion(runner: Runner, pkg: string): Promise<string> {
  const out = await runner.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", pkg], {
    check: false,
  });
  const match = out.stdout.match(/install ok installed (\S+)/);
  if (!match?.[1]) {
    throw new PrerequisiteError(`Package ${pkg} is not installed`, {
      hint: `Install it: apt-get install -y --no-install-recommends ${pkg}`,
    });
  }
  return match[1];
}

/** `1:3.4.23-4+b4` → `3.4.23`, `1.6.20~ds1-1` → `1.6.20`. */
export function upstreamVersion(debianVersion: string): string {
  return debianVersion.replace(/^\d+:/, "").replace(/[~+-].*$/, "");
}

const CRICTL_STANDIN = `#!/bin/sh
# dtk test harness STAND-IN for crictl: cri-tools is not packaged in Debian 12.
# It exists only so that a lock resolved by dtk's catalogue is complete. Use ctr instead.
if [ "\${1:-}" = "--version" ] || [ "\${1:-}" = "-v" ]; then
  echo "crictl version ${CRICTL_STANDIN_VERSION}-dtk-test-standin"
  exit 0
fi
echo "crictl: this is the dtk test harness stand-in, not cri-tools; use ctr" >&2
exit 1
`;

async function tarball(
  runner: Runner,
  out: string,
  options: { cwd: string; entries: string[] },
): Promise<void> {
  const quoted = options.entries.map((e) => `'${e}'`).join(" ");
  await runner.run([
    "sh",
    "-c",
    `set -e; tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - ${quoted} | gzip -n -6 >'${out}'`,
  ], { cwd: options.cwd, what: `pack ${out}` });
}

/**
 * Builds (or reuses) the repacked artifacts in `/var/cache/dtk-test/artifacts-<key>/`, keyed by
 * the Debian package versions and the Kubernetes build stamp.
 */
export async function prepareArtifacts(options: { runner?: Runner } = {}): Promise<ArtifactSet> {
  const runner = options.runner ?? new LocalRunner();
  const debVersions: Record<string, string> = {};
  for (const [key, pkg] of Object.entries(PACKAGES)) {
    debVersions[key] = await packageVersion(runner, pkg);
  }
  const k8s = k8sStatus();
  const kubectl = join(k8sCacheDir(), "bin", "kubectl");
  const hasKubectl = k8s.ok && await exists(kubectl);
  const k8sStamp = k8s.ok
    ? `${await Deno.readTextFile(join(k8sCacheDir(), ".complete"))} kubectl=${hasKubectl}`
    : "none";
  const versions: VersionsConfig = {
    kubernetes: K8S_VERSION,
    etcd: `v${upstreamVersion(debVersions.etcd ?? "")}`,
    containerd: upstreamVersion(debVersions.containerd ?? ""),
    runc: `v${upstreamVersion(debVersions.runc ?? "")}`,
    crictl: CRICTL_STANDIN_VERSION,
    cniPlugins: `v${upstreamVersion(debVersions.cni ?? "")}`,
    guestAdditions: "",
  };
  const key = sha256Text(JSON.stringify({ layout: 1, debVersions, k8sStamp, CRICTL_STANDIN }))
    .slice(0, 16);
  const dir = join(cacheRoot(), `artifacts-${key}`);
  const indexPath = join(dir, "index.json");
  if (await exists(indexPath)) {
    return JSON.parse(await Deno.readTextFile(indexPath));
  }

  await Deno.mkdir(cacheRoot(), { recursive: true });
  const temp = `${dir}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 6)}`;
  const files = join(temp, "files");
  const stage = join(temp, "stage");
  await Deno.mkdir(files, { recursive: true });
  await Deno.mkdir(stage, { recursive: true });
  const made: Omit<TestArtifact, "sha256" | "size">[] = [];
  try {
    // etcd: the release tarball has one top folder named like the file.
    const etcdBase = `etcd-${versions.etcd}-linux-amd64`;
    await Deno.mkdir(join(stage, etcdBase));
    await Deno.copyFile("/usr/bin/etcd", join(stage, etcdBase, "etcd"));
    await Deno.copyFile("/usr/bin/etcdctl", join(stage, etcdBase, "etcdctl"));
    await tarball(runner, join(files, `${etcdBase}.tar.gz`), { cwd: stage, entries: [etcdBase] });
    made.push({
      name: "etcd",
      version: versions.etcd,
      kind: "tarball",
      file: `${etcdBase}.tar.gz`,
      origin: `Debian etcd-server ${debVersions.etcd}, etcd-client ${debVersions.etcdctl}`,
    });

    const ctrdBin = join(stage, "containerd", "bin");
    await Deno.mkdir(ctrdBin, { recursive: true });
    const ctrdFiles = [
      "containerd",
      "containerd-shim",
      "containerd-shim-runc-v1",
      "containerd-shim-runc-v2",
      "ctr",
    ];
    for (const f of ctrdFiles) await Deno.copyFile(`/usr/bin/${f}`, join(ctrdBin, f));
    const ctrdFile = `containerd-static-${versions.containerd}-linux-amd64.tar.gz`;
    await tarball(runner, join(files, ctrdFile), {
      cwd: join(stage, "containerd"),
      entries: ctrdFiles.map((f) => `bin/${f}`),
    });
    made.push({
      name: "containerd",
      version: versions.containerd,
      kind: "tarball",
      file: ctrdFile,
      origin: `Debian containerd ${debVersions.containerd} (dynamically linked, not static)`,
    });

    await Deno.copyFile("/usr/sbin/runc", join(files, "runc.amd64"));
    made.push({
      name: "runc",
      version: versions.runc,
      kind: "binary",
      file: "runc.amd64",
      origin: `Debian runc ${debVersions.runc}`,
    });

    const cniFile = `cni-plugins-linux-amd64-${versions.cniPlugins}.tgz`;
    const cniDir = join(stage, "cni");
    await Deno.mkdir(cniDir);
    const cniEntries: string[] = [];
    for await (const entry of Deno.readDir("/usr/lib/cni")) {
      if (!entry.isFile) continue;
      await Deno.copyFile(join("/usr/lib/cni", entry.name), join(cniDir, entry.name));
      cniEntries.push(`./${entry.name}`);
    }
    await tarball(runner, join(files, cniFile), { cwd: cniDir, entries: cniEntries.sort() });
    made.push({
      name: "cni-plugins",
      version: versions.cniPlugins,
      kind: "tarball",
      file: cniFile,
      origin: `Debian containernetworking-plugins ${debVersions.cni}`,
    });

    const crictlDir = join(stage, "crictl");
    await Deno.mkdir(crictlDir);
    await Deno.writeTextFile(join(crictlDir, "crictl"), CRICTL_STANDIN, { mode: 0o755 });
    await Deno.chmod(join(crictlDir, "crictl"), 0o755);
    const crictlFile = `crictl-${CRICTL_STANDIN_VERSION}-linux-amd64.tar.gz`;
    await tarball(runner, join(files, crictlFile), { cwd: crictlDir, entries: ["crictl"] });
    made.push({
      name: "crictl",
      version: CRICTL_STANDIN_VERSION,
      kind: "tarball",
      file: crictlFile,
      origin: "STAND-IN shell script (cri-tools is not in Debian 12)",
    });

    if (k8s.ok) {
      for (const c of K8S_COMPONENTS) {
        // A hard link would share the inode with the cache; a copy keeps the mirror self-contained.
        await Deno.copyFile(join(k8sCacheDir(), "bin", c), join(files, c));
        made.push({
          name: c,
          version: K8S_VERSION,
          kind: "binary",
          file: c,
          origin: "built from Debian source package kubernetes 1.20.5+really1.20.2",
        });
      }
      if (hasKubectl) {
        await Deno.copyFile(kubectl, join(files, "kubectl"));
        made.push({
          name: "kubectl",
          version: K8S_VERSION,
          kind: "binary",
          file: "kubectl",
          origin: "Debian binary package kubernetes-client 1.20.5+really1.20.2",
        });
      }
    }

    const artifacts: TestArtifact[] = [];
    for (const m of made) {
      const path = join(files, m.file);
      artifacts.push({ ...m, sha256: await sha256File(path), size: (await Deno.stat(path)).size });
    }
    await Deno.remove(stage, { recursive: true });
    const set: ArtifactSet = { dir: join(dir, "files"), artifacts, versions, kubernetes: k8s.ok };
    await writeFileAtomic(join(temp, "index.json"), JSON.stringify(set, null, 2) + "\n");
    try {
      await Deno.rename(temp, dir);
    } catch (error) {
      // A concurrent process finished first: its result is the same bytes.
      if (!(await exists(indexPath))) throw error;
      await Deno.remove(temp, { recursive: true });
    }
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw error;
  }
  return JSON.parse(await Deno.readTextFile(indexPath));
}

/** A `dtk.lock` pinning the test artifacts, downloadable from `mirrorUrl`. */
export function testLock(set: ArtifactSet, options: { mirrorUrl: string }): Lockfile {
  const base = options.mirrorUrl.replace(/\/+$/, "");
  const artifacts: Record<string, LockArtifact> = {};
  for (const a of set.artifacts) {
    artifacts[a.name] = {
      version: a.version,
      kind: a.kind,
      arch: "amd64",
      urls: [`${base}/${a.file}`],
      hash: `sha256:${a.sha256}`,
      size: a.size,
      source: "computed",
      file: a.file,
    };
  }
  return { version: 1, artifacts };
}

/** Writes the test lock atomically (canonical `dtk.lock` text). */
export async function writeTestLock(
  path: string,
  set: ArtifactSet,
  options: { mirrorUrl: string },
): Promise<Lockfile> {
  const lock = testLock(set, options);
  await writeFileAtomic(path, serializeLock(lock));
  return lock;
}
