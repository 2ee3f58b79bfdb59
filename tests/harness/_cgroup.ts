/**
 * Cgroups of nodes that run containers. A node with `containers` gets its own subtree
 * `dtk-test-<id>` in every cgroup v1 hierarchy, bound over the node's `/sys/fs/cgroup/<ctrl>`, so
 * that what runc, containerd and the kubelet create stays inside it, and the driver can remove
 * it (depth first) once the node's processes are gone.
 *
 * @module
 */
import { join } from "node:path";

/** The boot script in the node; its argument file holds the subtree name. */
export const CGROUP_SCRIPT = `#!/bin/sh
# nspawn mounts the cgroup v1 controllers read-only; runc and the kubelet create cgroups. Give
# each controller a writable mount of this node's own subtree of the hierarchy.
set -u
name=$(cat /etc/dtk-test-cgroup)
mount -o remount,rw /sys/fs/cgroup
mkdir -p /run/dtk-cg
for dir in /sys/fs/cgroup/*; do
  [ -d "$dir" ] && [ ! -L "$dir" ] || continue
  [ "$(basename "$dir")" = systemd ] && continue
  line=$(awk -v m="$dir" '$2 == m {print $3, $4}' /proc/mounts | tail -n1)
  [ "\${line%% *}" = cgroup ] || continue
  opts=$(echo "\${line#* }" | tr ',' '\\n' | grep -v -x -e rw -e ro -e nosuid -e nodev -e noexec -e relatime | paste -sd, -)
  top=/run/dtk-cg/$(basename "$dir")
  mkdir -p "$top"
  mount -t cgroup -o "$opts" cgroup "$top" || continue
  mkdir -p "$top/$name"
  # A new cpuset cgroup starts with no CPUs and no memory nodes; runc copies from the parent,
  # but inside the node this folder is the root, so fill it here.
  if [ -f "$top/cpuset.cpus" ]; then
    cat "$top/cpuset.cpus" >"$top/$name/cpuset.cpus"
    cat "$top/cpuset.mems" >"$top/$name/cpuset.mems"
  fi
  umount -l "$dir"
  mount --bind "$top/$name" "$dir"
  umount -l "$top"
  # Like a container with its own cgroup namespace: the node's processes live inside the
  # subtree it sees as root, which is what runc expects when it resolves its own cgroup.
  for pid in $(ls /proc | grep -x '[0-9]*'); do echo "$pid" >"$dir/cgroup.procs" 2>/dev/null || true; done
done
# The kubelet writes these kernel settings when they differ from what it wants. They are global
# to the host kernel and the node's /proc/sys is read-only, so the node sees read-only files that
# already hold the kubelet's values (a VM lets the kubelet set them in its own kernel).
mkdir -p /run/dtk-tunables
for kv in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
  key=\${kv%%=*}
  file=/run/dtk-tunables/$(echo "$key" | tr / .)
  echo "\${kv#*=}" >"$file"
  mount --bind -o ro "$file" "/proc/sys/$key" || true
done
`;

export const CGROUP_UNIT = `[Unit]
Description=dtk test harness: writable per-node cgroup controllers for containers
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target containerd.service kubelet.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/dtk-test-cgroups
[Install]
WantedBy=sysinit.target
`;

/** Mount points of the host's cgroup v1 hierarchies (not the named systemd one). */
export function cgroupV1Mounts(): string[] {
  const mounts: string[] = [];
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const [fstype, , options] = right.split(" ");
    const point = left.split(" ")[4];
    if (fstype === "cgroup" && point && !(options ?? "").includes("name=")) mounts.push(point);
  }
  return mounts;
}

/** Existing folders of the subtree `name`, one per hierarchy. */
export function cgroupDirs(name: string): string[] {
  return cgroupV1Mounts().map((m) => join(m, name)).filter((dir) => {
    try {
      return Deno.statSync(dir).isDirectory;
    } catch {
      return false;
    }
  });
}

function removeDepthFirst(dir: string): void {
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isDirectory) removeDepthFirst(join(dir, entry.name));
  }
  // rmdir: a cgroup folder goes only when it holds no process and no child.
  Deno.removeSync(dir);
}

/** Removes the subtree `name` from every hierarchy; returns the folders it could not remove. */
export function removeCgroupTree(name: string): string[] {
  if (!/^dtk-test-[0-9a-f]{8,32}$/.test(name)) throw new Error(`Not a harness cgroup: ${name}`);
  const failed: string[] = [];
  for (const dir of cgroupDirs(name)) {
    try {
      removeDepthFirst(dir);
    } catch {
      failed.push(dir);
    }
  }
  return failed;
}
