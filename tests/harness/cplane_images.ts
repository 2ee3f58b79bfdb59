/**
 * OCI images of the control plane for `k8s.containerized-cplane`, built here because nothing can
 * be pulled: one single-layer image per component, named as dtk's `componentImage()` names it
 * for the harness versions, holding the harness's own binaries (the Kubernetes 1.20.2 build and
 * the etcd of the artifact set) in `/usr/local/bin` and the libraries they link. The archive is
 * an OCI layout tar like `images.ts` writes: `ctr image import` takes it, dtk preloads it from
 * `images/`.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";
import { PrerequisiteError } from "../../lib/errors/mod.ts";
import { componentImage } from "../../lib/render/mod.ts";
import type { CplaneComponent } from "../../lib/config/types.ts";
import type { ArtifactSet } from "./artifacts.ts";
import { k8sCacheDir } from "./artifacts.ts";
import { OciLayout } from "./images.ts";

/** The components the archive holds an image of, in this order. */
export const CPLANE_IMAGE_COMPONENTS = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
] as const satisfies readonly CplaneComponent[];

/** The image reference of `component` for the versions of `set` (dtk's own naming). */
export function cplaneImageRef(component: CplaneComponent, set: ArtifactSet): string {
  return componentImage(
    component,
    {
      versions: { kubernetes: set.versions.kubernetes, etcd: set.versions.etcd },
    } as Parameters<typeof componentImage>[1],
  );
}

/** The absolute paths of the shared libraries `binary` loads, none for a static binary. */
async function linkedLibraries(runner: Runner, binary: string): Promise<string[]> {
  // ldd exits 1 with "not a dynamic executable" for a static binary.
  const r = await runner.run(["ldd", binary], { check: false });
  if (!r.success) {
    if (/not a dynamic executable|statically linked/.test(r.stdout + r.stderr)) return [];
    throw new PrerequisiteError(`Cannot list the libraries of ${binary}`, {
      cause: r.stderr.trim(),
      hint: "Install ldd: apt-get install -y libc-bin",
    });
  }
  const libs: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const path = line.match(/(?:=>\s*)?(\/\S+)\s+\(0x/)?.[1];
    if (path) libs.push(path);
  }
  return libs;
}

async function copyInto(root: string, from: string, to: string): Promise<void> {
  await Deno.mkdir(join(root, dirname(to)), { recursive: true });
  await Deno.copyFile(from, join(root, to));
  await Deno.chmod(join(root, to), 0o755);
}

/**
 * Writes `path` as an OCI layout tar with an image of each of `CPLANE_IMAGE_COMPONENTS`, named by
 * `cplaneImageRef`. Needs the Kubernetes build (`k8sStatus()`) and the artifact set's etcd.
 */
export async function writeControlPlaneImages(
  path: string,
  set: ArtifactSet,
  options: { runner?: Runner } = {},
): Promise<{ refs: Record<(typeof CPLANE_IMAGE_COMPONENTS)[number], string> }> {
  const runner = options.runner ?? new LocalRunner();
  const etcd = set.artifacts.find((a) => a.name === "etcd");
  if (!etcd || !set.kubernetes) {
    throw new PrerequisiteError("The artifact set has no etcd or no Kubernetes build", {
      hint: "Run tests/harness/build_k8s.sh, then tests/harness/prepare.ts",
    });
  }
  const work = await Deno.makeTempDir({ prefix: "dtk-cplane-image-" });
  try {
    // The etcd of the image is the very etcd the artifact set's tarball ships.
    const etcdDir = join(work, "etcd");
    await Deno.mkdir(etcdDir);
    await runner.run(["tar", "-xzf", join(set.dir, etcd.file), "-C", etcdDir]);
    const etcdBase = etcd.file.replace(/\.tar\.gz$/, "");
    const binaries: Record<string, string[]> = {
      "etcd": [join(etcdDir, etcdBase, "etcd"), join(etcdDir, etcdBase, "etcdctl")],
      "kube-apiserver": [join(k8sCacheDir(), "bin", "kube-apiserver")],
      "kube-controller-manager": [join(k8sCacheDir(), "bin", "kube-controller-manager")],
      "kube-scheduler": [join(k8sCacheDir(), "bin", "kube-scheduler")],
    };
    const layout = await OciLayout.create(join(work, "img"));
    const refs = {} as Record<(typeof CPLANE_IMAGE_COMPONENTS)[number], string>;
    for (const component of CPLANE_IMAGE_COMPONENTS) {
      const root = join(work, `rootfs-${component}`);
      const libs = new Set<string>();
      for (const bin of binaries[component]!) {
        await copyInto(root, bin, `/usr/local/bin/${bin.split("/").pop()}`);
        for (const lib of await linkedLibraries(runner, bin)) libs.add(lib);
      }
      for (const lib of libs) await copyInto(root, await Deno.realPath(lib), lib);
      // Mount points runc would otherwise make; a writable /tmp; an /etc for the hosts file.
      for (const dir of ["proc", "sys", "dev", "etc", "tmp"]) await Deno.mkdir(join(root, dir));
      await Deno.chmod(join(root, "tmp"), 0o1777);
      const layer = await layout.layer(root, { runner });
      await Deno.remove(root, { recursive: true });
      refs[component] = cplaneImageRef(component, set);
      // The static pods' commands name the binary only (`etcd`, `kube-apiserver`, …).
      await layout.image(refs[component], {
        layer,
        config: { Env: ["PATH=/usr/local/bin:/usr/bin:/bin"] },
      });
    }
    await layout.writeTar(path, { runner });
    return { refs };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
