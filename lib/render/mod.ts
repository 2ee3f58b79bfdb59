/**
 * Renderers of every file dtk puts on a node (upstream spec §4.10–4.12, §5.2), as pure
 * functions of the config and the nodes' addresses. The pipeline asks for "the files of step Y
 * on node X" (`renderStep`) or "everything for node X" (`renderNode`); each step also names the
 * binaries it installs from the lock and the PKI files it places, so that provisioning and
 * `dtk verify` share one truth.
 *
 * ```ts
 * const input = { config, nodes: [{ name: "vm1", ip: "10.0.0.2", podCidr: "10.200.0.0/24" }], node: "vm1" };
 * for (const step of renderNode(input)) console.log(step.step, step.files.map((f) => f.path));
 * ```
 *
 * @module
 */
import type { CplaneComponent } from "../config/types.ts";
import { DtkError, q } from "../errors/mod.ts";
import { NODE_PATHS } from "./_paths.ts";
import {
  renderCniConflist,
  renderContainerdConfig,
  renderContainerdUnit,
  renderCrictlConfig,
  renderModulesLoad,
  renderNetworkManagerDtk,
  renderSysctl,
} from "./_runtime.ts";
import {
  renderApiserverPod,
  renderApiserverUnit,
  renderAuditPolicy,
  renderControllerManagerPod,
  renderControllerManagerUnit,
  renderEtcdPod,
  renderEtcdUnit,
  renderKubeletConfig,
  renderKubeletUnit,
  renderKubeProxyConfig,
  renderKubeProxyPod,
  renderKubeProxyUnit,
  renderSchedulerConfig,
  renderSchedulerPod,
  renderSchedulerUnit,
} from "./_kubernetes.ts";
import { stepBinaries, stepPki } from "./_install.ts";
import { renderRegistryHosts } from "./_registry.ts";
import {
  CONTROLLER_STEPS,
  type NodeFile,
  type RenderInput,
  type RenderNode,
  type RunMode,
  type StepFiles,
  type StepName,
  STEPS,
} from "./_types.ts";

export * from "./_types.ts";
export { CONTAINERD_BIN, LOCAL_BIN, NODE_PATHS, type NodePaths } from "./_paths.ts";
export {
  type ContainerdFeatures,
  containerdFeatures,
  type EtcdFeatures,
  etcdFeatures,
  type KubeFeatures,
  kubeFeatures,
  parseVersion,
  type Semver,
} from "./_version.ts";
export {
  CONTAINERD_ENVIRONMENT,
  HOSTS_BEGIN,
  HOSTS_END,
  updateEnvironment,
  updateHosts,
} from "./_edit.ts";
export * from "./_runtime.ts";
export { type ImageRegistryInput, renderRegistryHosts, upstreamServer } from "./_registry.ts";
export * from "./_kubernetes.ts";
export { stepBinaries, stepPki } from "./_install.ts";
export { octal } from "./_text.ts";

/** `kubectl apply` input for the apiserver→kubelet RBAC: run with the admin kubeconfig. */
export const RBAC_APPLY_ARGV = ["kubectl", "apply", "-f", "-"] as const;

/** How a component of `k8s.containerized-cplane` runs. */
export function runModeOf(
  step: StepName,
  config: Pick<RenderInput["config"], "k8s">,
): RunMode {
  const containerizable: readonly string[] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
  ];
  if (!containerizable.includes(step)) return "systemd";
  return config.k8s.containerizedCplane.includes(step as CplaneComponent)
    ? "static-pod"
    : "systemd";
}

function findNode(input: RenderInput): { node: RenderNode; controller: RenderNode; index: number } {
  const controller = input.nodes[0];
  if (controller === undefined) {
    throw new DtkError("No nodes to render for", {
      hint: "Pass every node of the config, the controller (vms[0]) first",
    });
  }
  const index = input.nodes.findIndex((n) => n.name === input.node);
  const node = input.nodes[index];
  if (node === undefined) {
    throw new DtkError(`Node ${q(input.node)} is not one of the cluster's nodes`, {
      hint: `Known nodes: ${input.nodes.map((n) => n.name).join(", ")}`,
    });
  }
  return { node, controller, index };
}

/** The steps that apply to the input's node, in order. */
export function stepsForNode(input: RenderInput): StepName[] {
  const { index } = findNode(input);
  return STEPS.filter((step) => {
    if (step === "kube-proxy" && !input.config.k8s.kubeProxy) return false;
    if (CONTROLLER_STEPS.includes(step) && index !== 0) return false;
    return true;
  });
}

const FILE = 0o644;
const SECRET_DIR = 0o700;

function unitFile(name: string, content: string): NodeFile {
  return { path: `${NODE_PATHS.systemdDir}/${name}.service`, content, mode: FILE };
}

function podFile(name: string, content: string): NodeFile {
  return { path: `${NODE_PATHS.staticPods}/${name}.yaml`, content, mode: FILE };
}

/** Everything `step` puts on the input's node. Throws when the step does not apply to it. */
export function renderStep(step: StepName, input: RenderInput): StepFiles {
  const { node, controller } = findNode(input);
  if (!stepsForNode(input).includes(step)) {
    throw new DtkError(`Step ${q(step)} does not run on node ${q(node.name)}`, {
      hint: CONTROLLER_STEPS.includes(step)
        ? "Control-plane steps run on the controller (vms[0]) only"
        : "kube-proxy runs only with k8s.kube-proxy: true",
    });
  }
  const { config } = input;
  const o = input.overrides ?? {};
  const runMode = runModeOf(step, config);
  const out: StepFiles = {
    step,
    node: node.name,
    runMode,
    files: [],
    dirs: [],
    binaries: stepBinaries(step, config, runMode),
    pki: stepPki(step, node.name),
    units: [],
    activate: [],
  };
  const systemd = runMode === "systemd";
  switch (step) {
    case "sysctl":
      out.files.push(
        { path: NODE_PATHS.modulesLoad, content: renderModulesLoad(), mode: FILE },
        { path: NODE_PATHS.sysctl, content: renderSysctl(), mode: FILE },
      );
      // A module built into the kernel (or loaded by the host of a container) needs no modprobe.
      out.activate.push(
        "modprobe overlay || grep -qw overlay /proc/filesystems",
        "modprobe br_netfilter || [ -d /proc/sys/net/bridge ]",
        // Only dtk's keys (sysctl --system also re-applies the distro's), and a key that already
        // has its value is not written again (a container's /proc/sys may be read-only).
        `while IFS='=' read -r k v; do k=$(echo $k); v=$(echo $v); case "$k" in ''|'#'*) continue;; esac; ` +
          `[ "$(sysctl -n "$k" 2>/dev/null)" = "$v" ] || sysctl -w "$k=$v" >/dev/null || exit 1; ` +
          `done < ${NODE_PATHS.sysctl}`,
      );
      break;
    case "containerd": {
      out.files.push(
        unitFile("containerd", renderContainerdUnit(o)),
        {
          path: NODE_PATHS.containerdConfig,
          content: renderContainerdConfig(config, o),
          mode: FILE,
        },
      );
      out.files.push(...renderRegistryHosts(config, input.imageRegistry));
      out.dirs.push({ path: NODE_PATHS.containerdCertsDir, mode: 0o755 });
      out.units.push("containerd.service");
      break;
    }
    case "crictl":
      out.files.push({ path: NODE_PATHS.crictlConfig, content: renderCrictlConfig(), mode: FILE });
      break;
    case "cni":
      out.files.push(
        { path: NODE_PATHS.cniConflist, content: renderCniConflist(node), mode: FILE },
        { path: NODE_PATHS.networkManagerDtk, content: renderNetworkManagerDtk(), mode: FILE },
      );
      out.dirs.push(
        { path: NODE_PATHS.cniBinDir, mode: 0o755 },
        { path: NODE_PATHS.cniLogDir, mode: 0o755 },
      );
      break;
    case "kubelet":
      out.files.push(
        unitFile("kubelet", renderKubeletUnit(config, node)),
        { path: NODE_PATHS.kubeletConfig, content: renderKubeletConfig(config, o), mode: FILE },
      );
      out.dirs.push({ path: NODE_PATHS.staticPods, mode: 0o755 });
      out.units.push("kubelet.service");
      break;
    case "kube-proxy":
      out.files.push({
        path: NODE_PATHS.kubeProxyConfig,
        content: renderKubeProxyConfig(config, node, o),
        mode: FILE,
      });
      if (systemd) {
        out.files.push(unitFile("kube-proxy", renderKubeProxyUnit()));
        out.units.push("kube-proxy.service");
      } else {
        out.files.push(podFile("kube-proxy", renderKubeProxyPod(config, o)));
      }
      break;
    case "etcd":
      out.dirs.push(
        { path: NODE_PATHS.etcdConfigDir, mode: SECRET_DIR },
        { path: NODE_PATHS.etcdDataDir, mode: SECRET_DIR },
      );
      if (systemd) {
        out.files.push(unitFile("etcd", renderEtcdUnit(controller)));
        out.units.push("etcd.service");
      } else {
        out.files.push(podFile("etcd", renderEtcdPod(config, controller, o)));
      }
      break;
    case "kube-apiserver":
      out.files.push({
        path: NODE_PATHS.auditPolicy,
        content: renderAuditPolicy(config),
        mode: FILE,
      });
      if (systemd) {
        out.files.push(unitFile("kube-apiserver", renderApiserverUnit(config, controller)));
        out.units.push("kube-apiserver.service");
      } else {
        out.files.push(podFile("kube-apiserver", renderApiserverPod(config, controller, o)));
      }
      break;
    case "kube-controller-manager":
      if (systemd) {
        out.files.push(unitFile("kube-controller-manager", renderControllerManagerUnit(config)));
        out.units.push("kube-controller-manager.service");
      } else {
        out.files.push(podFile("kube-controller-manager", renderControllerManagerPod(config, o)));
      }
      break;
    case "kube-scheduler":
      out.files.push({
        path: NODE_PATHS.schedulerConfig,
        content: renderSchedulerConfig(config),
        mode: FILE,
      });
      if (systemd) {
        out.files.push(unitFile("kube-scheduler", renderSchedulerUnit()));
        out.units.push("kube-scheduler.service");
      } else {
        out.files.push(podFile("kube-scheduler", renderSchedulerPod(config, o)));
      }
      break;
  }
  return out;
}

/** Every step of the input's node, in order. */
export function renderNode(input: RenderInput): StepFiles[] {
  return stepsForNode(input).map((step) => renderStep(step, input));
}

/** Every rendered file of the input's node (PKI and binaries not included). */
export function nodeFiles(input: RenderInput): NodeFile[] {
  return renderNode(input).flatMap((s) => s.files);
}

/** The render nodes of a config's VMs, given their addresses (`name → ip`). */
export function renderNodes(
  config: { vms: readonly { name: string; podCidr: string }[] },
  ips: Readonly<Record<string, string>>,
): RenderNode[] {
  return config.vms.map((vm) => {
    const ip = ips[vm.name];
    if (ip === undefined) {
      throw new DtkError(`No address known for node ${q(vm.name)}`, {
        hint: "Start the VM, or check it with: dtk status",
      });
    }
    return { name: vm.name, ip, podCidr: vm.podCidr };
  });
}
