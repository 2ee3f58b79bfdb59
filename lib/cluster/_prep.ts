/**
 * Checks of a node made at the `prep` step, before anything is installed on it: what would
 * otherwise surface minutes later as a component in a crash loop.
 *
 * @module
 */
import { DtkError, q } from "../errors/mod.ts";
import { kubeFeatures } from "../render/mod.ts";

/** Prints the file system type of the cgroup root: `cgroup2fs` on a unified (v2) host. */
export const CGROUP_PROBE = "stat -fc %T /sys/fs/cgroup/";

/**
 * Fails when the node mounts cgroup v1 (or the hybrid layout, whose root is a tmpfs) and the
 * Kubernetes version's kubelet refuses it. `fsType` is the output of `CGROUP_PROBE`.
 */
export function checkCgroupVersion(
  node: string,
  fsType: string,
  options: { kubernetes: string },
): void {
  const type = fsType.trim();
  if (type === "cgroup2fs") return;
  if (!kubeFeatures(options.kubernetes).refusesCgroupV1) return;
  throw new DtkError(
    `Node ${q(node)} runs cgroup v1 (${q("/sys/fs/cgroup")} is ${
      q(type || "unknown")
    }), which the kubelet of Kubernetes ${q(options.kubernetes)} refuses to start on`,
    {
      hint:
        "Use a guest that boots cgroup v2 (vm.linux: alma9 or centos9), or boot the node with " +
        "systemd.unified_cgroup_hierarchy=1 (grubby --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1, then reboot), " +
        "or choose versions.kubernetes below v1.35",
    },
  );
}
