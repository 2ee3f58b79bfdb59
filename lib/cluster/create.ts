/**
 * `dtk cluster create`: from a config to a running cluster. Checks the host first, then locks
 * and fetches every artifact, plans, and runs the plan through the `Driver`, `Remote` and
 * `Runner` ports, resumably.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { parseAllDocuments } from "yaml";
import type { Config } from "../config/types.ts";
import {
  DtkError,
  escapeLines,
  formatDuration,
  IntegrityError,
  InterruptedError,
  q,
  TimeoutError,
} from "../errors/mod.ts";
import { type Runner, shellQuote } from "../exec/mod.ts";
import type { Output } from "../ui/mod.ts";
import { clusterDir, storeDir } from "../paths/mod.ts";
import { ensureWebhookToken } from "../dnswebhook/mod.ts";
import { ensurePki, ensureSshKey, type PkiLayout, pkiLayout, readAdminToken } from "../pki/mod.ts";
import {
  etcdGateCommand,
  NODE_PATHS,
  renderApiserverRbac,
  type RenderInput,
  renderNodes,
  type RenderOverrides,
  renderStep,
  type StepFiles,
  type StepName,
  stepsForNode,
  updateEnvironment,
  updateHosts,
} from "../render/mod.ts";
import { waitForSsh } from "../remote/mod.ts";
import { buildPlan, checkPlan, type Plan, type Step } from "../plan/mod.ts";
import {
  executePlan,
  formatEvent,
  type RunReport,
  StateStore,
  type StepHandler,
} from "../pipeline/mod.ts";
import {
  assignPodCidrs,
  KubeClient,
  leaseHolder,
  PodCidrConflictError,
  poll,
  type WantedPodCidr,
} from "../kube/mod.ts";
import { installAddon } from "../addons/mod.ts";
import type { AddonName } from "../config/mod.ts";
import { GUEST_ADDITIONS, OS_CLOUD_IMAGE, OS_ISO, resolveArtifacts } from "../catalog/mod.ts";
import {
  artifactPath,
  ensureLock,
  type Lockfile,
  mirrorList,
  openStore,
  requireHash,
} from "../../store/mod.ts";
import type { Driver, TemplateSpec } from "../../drivers/types.ts";
import type { RunLog } from "../runlog/mod.ts";
import { binaryCopies } from "./_binaries.ts";
import { addonNodeStepRunner, Nodes, pkiSourceFile } from "./_nodes.ts";
import { ClusterImages } from "./_images.ts";
import { requiredImages } from "../addons/mod.ts";
import { lockedImages, parseImageReference } from "../registry/mod.ts";
import type { ImageRegistryInput } from "../render/mod.ts";
import { PREP_COMMANDS, prepProbe, runPrep } from "./_prep.ts";

/** Every bounded wait of a create, in milliseconds. */
export interface CreateTimeouts {
  template: number;
  clone: number;
  ssh: number;
  unit: number;
  etcd: number;
  apiserver: number;
  lease: number;
  nodesReady: number;
}

export const DEFAULT_TIMEOUTS: CreateTimeouts = {
  template: 90 * 60_000,
  clone: 15 * 60_000,
  ssh: 5 * 60_000,
  unit: 90_000,
  etcd: 120_000,
  apiserver: 180_000,
  lease: 180_000,
  nodesReady: 5 * 60_000,
};

export interface CreateOptions {
  runner: Runner;
  out: Output;
  driver: Driver;
  lock: Lockfile;
  /** `dtk.lock`'s path (registered as a store root). */
  lockPath?: string;
  createTemplate: boolean;
  createVms: boolean;
  jobs: number;
  mirrors?: string[];
  env?: (name: string) => string | undefined;
  signal?: AbortSignal;
  timeouts?: Partial<CreateTimeouts>;
  /** Settings for nodes that cannot do what a VM can (the test harness). */
  renderOverrides?: RenderOverrides;
  /** Folder of `*.tar`/`*.tgz` images preloaded into containerd (default `images/` beside the config). */
  imagesDir?: string;
  /** `--offline`: the nodes pull only from dtk's registry, never upstream. */
  offline?: boolean;
  /** Port of dtk's registry on the host endpoint (default 5380; 0 in tests: any free one). */
  registryPort?: number;
  /** The run log: every step, and (through `runner`) every command, under its step. */
  log?: RunLog;
}

export interface CreateReport extends RunReport {
  kubeconfig: string;
  plan: Plan;
}

function sha256(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
}

function digestOf(value: unknown): string {
  return sha256(JSON.stringify(value));
}

const RENDER_STEPS: Partial<Record<Step["kind"], StepName[]>> = {
  "prep": ["sysctl"],
  "runtime": ["containerd", "crictl", "cni"],
  "kubelet": ["kubelet"],
  "kube-proxy": ["kube-proxy"],
  "etcd": ["etcd"],
  "kube-apiserver": ["kube-apiserver"],
  "kube-controller-manager": ["kube-controller-manager"],
  "kube-scheduler": ["kube-scheduler"],
};

/** Runs `cluster create`. The caller has checked the host (doctor's preflight). */
export class ClusterCreate {
  readonly config: Config;
  readonly plan: Plan;
  readonly #o: CreateOptions;
  readonly #t: CreateTimeouts;
  readonly #layout: PkiLayout;
  readonly #storeDir: string;
  #state!: StateStore;
  #nodes!: Nodes;
  #kube: KubeClient | undefined;
  readonly #locked: ClusterImages;

  constructor(config: Config, options: CreateOptions) {
    this.config = config;
    this.#o = options;
    this.#t = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#layout = pkiLayout(config);
    this.#storeDir = storeDir(config, options.env);
    this.plan = buildPlan(config, {
      createTemplate: options.createTemplate,
      createVms: options.createVms,
    });
    checkPlan(this.plan);
    this.#locked = new ClusterImages({
      lock: options.lock,
      store: openStore(this.#storeDir),
      driver: options.driver,
      offline: options.offline ?? false,
      arch: config.arch,
      port: options.registryPort,
      lockPath: options.lockPath,
      log: options.out,
    });
  }

  get kubeconfig(): string {
    return this.#layout.kubeconfig("admin");
  }

  async run(): Promise<CreateReport> {
    const dir = clusterDir(this.config);
    await Deno.mkdir(dir, { recursive: true });
    this.#state = await StateStore.open(join(dir, "state.json"), this.config.cluster.name);
    this.#nodes = new Nodes(this.config, {
      layout: this.#layout,
      state: this.#state,
      runner: this.#o.runner,
    });
    const out = this.#o.out;
    const log = this.#o.log;
    await this.#state.recordMeta({
      config: this.config.source.file,
      configDir: this.config.source.dir,
      virt: this.config.virt,
      kubernetes: this.config.versions.kubernetes,
      nodes: this.config.vms.map((vm) => vm.name),
    });
    // `dtk cluster list` finds the cluster through the store's roots.
    await openStore(this.#storeDir).addRoot(dir, "cluster").catch((error) =>
      out.debug(`Cannot register the cluster in the store: ${error}`)
    );
    const finish = (result: "ok" | "failed" | "interrupted", error?: unknown) =>
      this.#state.recordMeta({
        ...(result === "ok" && !this.#state.data.meta?.createdAt
          ? { createdAt: new Date().toISOString() }
          : {}),
        lastCreate: {
          result,
          at: new Date().toISOString(),
          ...(log ? { log: log.path } : {}),
          ...(error instanceof Error ? { error: error.message } : {}),
        },
      });
    try {
      const report = await executePlan(this.plan, {
        jobs: this.#o.jobs,
        state: this.#state,
        signal: this.#o.signal,
        handler: (step) => this.#handler(step),
        around: log ? (step, work) => log.inStep(step.id, work) : undefined,
        onEvent: (event) => {
          if (event.type === "start" || event.type === "done") out.info(formatEvent(event));
          else if (event.type === "skip") out.debug(formatEvent(event));
          else out.error(escapeLines(formatEvent(event)));
          if (!log) return;
          if (event.type === "start") log.stepStart(event.step);
          else if (event.type === "done") log.stepEnd(event.step.id, "done");
          else if (event.type === "skip") {
            log.stepStart(event.step);
            log.stepEnd(event.step.id, "skipped");
          } else log.stepEnd(event.step.id, "failed", event.error);
        },
      });
      await finish("ok");
      return { ...report, kubeconfig: this.kubeconfig, plan: this.plan };
    } catch (error) {
      await finish(error instanceof InterruptedError ? "interrupted" : "failed", error)
        .catch(() => {});
      throw error;
    } finally {
      this.#kube?.close();
      await this.#locked.close();
      await this.#nodes.closeAll();
    }
  }

  #handler(step: Step): StepHandler {
    const handler = this.#realHandler(step);
    if (this.config.virt !== "test-nspawn") return handler;
    // The test driver's hidden `failAt` injects a failure at one step, and `failCommand` a
    // failing command run on the step's node first (end-to-end tests only).
    if (this.config.testNspawn?.["failAt"] === step.id) {
      return { ...handler, run: () => Promise.reject(new DtkError("injected failure")) };
    }
    const failCommand = this.config.testNspawn?.["failCommand"] as
      | { step?: string; command?: string }
      | undefined;
    if (failCommand?.step === step.id && step.node && failCommand.command) {
      const command = failCommand.command;
      return {
        ...handler,
        run: async (s, options) => {
          await this.#nodes.remote(step.node!).exec(command, {
            timeoutMs: 30_000,
            what: "the injected command",
          });
          await handler.run(s, options);
        },
      };
    }
    return handler;
  }

  #realHandler(step: Step): StepHandler {
    const signal = this.#o.signal;
    switch (step.kind) {
      case "artifacts":
        return { run: () => this.#artifacts() };
      case "ssh-key":
        return { run: async () => void await ensureSshKey(this.config) };
      case "template":
        return { run: () => this.#template(signal) };
      case "clone":
        return { run: () => this.#clone(step.node!, signal) };
      case "pki":
        return { run: () => this.#pki() };
      case "hosts":
        return { run: () => this.#hosts(step.node!) };
      case "labels":
        return {
          digest: () => Promise.resolve(digestOf(this.#nodes.names)),
          run: () => this.#labels(),
        };
      case "rbac":
        return {
          digest: () => Promise.resolve(digestOf(renderApiserverRbac())),
          run: () => this.#rbac(),
        };
      case "nodes-ready":
        return { run: () => this.#nodesReady(signal) };
      case "addon":
        return { run: () => this.#addon(step.addon as AddonName, signal) };
      case "images":
        return {
          digest: () =>
            Promise.resolve(
              digestOf({ images: lockedImages(this.#o.lock), nodes: this.#nodes.names }),
            ),
          run: () => this.#pinImages(),
        };
      default:
        return this.#nodeStep(step);
    }
  }

  async #artifacts(): Promise<void> {
    const summary = await ensureLock(this.#o.lock, {
      store: openStore(this.#storeDir),
      mirrors: this.#o.mirrors ?? mirrorList([], this.config, this.#o.env),
      lockPath: this.#o.lockPath,
      signal: this.#o.signal,
      log: (m) => this.#o.out.debug(m),
    });
    if (summary.fetched > 0) {
      this.#o.out.info(
        `  fetched ${summary.fetched} artifacts, ${summary.present} already present`,
      );
    }
  }

  #media(): TemplateSpec["media"] {
    const media: TemplateSpec["media"] = {};
    const path = (name: string) => {
      const entry = this.#o.lock.artifacts[name];
      return entry ? artifactPath(this.#storeDir, entry) : undefined;
    };
    const iso = path(OS_ISO);
    const cloud = path(OS_CLOUD_IMAGE);
    const ga = path(GUEST_ADDITIONS);
    if (iso) media.iso = iso;
    if (cloud) media.cloudImage = cloud;
    if (ga) media.guestAdditions = ga;
    return media;
  }

  async #template(signal?: AbortSignal): Promise<void> {
    const name = this.config.vm.templateVmname;
    if (await this.#o.driver.exists(name)) {
      this.#o.out.info(`  template ${q(name)} exists: reused`);
      return;
    }
    const key = await ensureSshKey(this.config);
    await this.#o.driver.createTemplate({
      name,
      authorizedKey: key.publicKey,
      media: this.#media(),
      workDir: join(clusterDir(this.config), "vm"),
    }, { timeoutMs: this.#t.template, signal });
  }

  async #clone(name: string, signal?: AbortSignal): Promise<void> {
    const vm = this.config.vms.find((v) => v.name === name)!;
    const driver = this.#o.driver;
    const key = await ensureSshKey(this.config);
    const hostKey = await this.#nodes.hostKey(name);
    let injected = true;
    if (this.#o.createVms && !(await driver.exists(name))) {
      await this.#forgetWorkOn(name);
      const staticIp = this.config.virt === "virtualbox" && this.config.vbox.hostOnlyNetwork &&
          vm.ip !== undefined
        ? `${this.config.vbox.hostOnlyNetwork}.${vm.ip}`
        : undefined;
      await driver.clone({
        name,
        template: this.config.vm.templateVmname,
        cpu: vm.cpu,
        mem: vm.mem,
        disk: vm.disk,
        staticIp,
        hostKey,
        authorizedKey: key.publicKey,
        workDir: join(clusterDir(this.config), "vm"),
      }, { timeoutMs: this.#t.clone, signal });
    } else if (!this.#o.createVms) {
      injected = false;
    }
    const status = await driver.status(name);
    if (status === "absent") {
      throw new DtkError(`VM ${q(name)} does not exist`, {
        hint: "Run without --create-vms=false to create it",
      });
    }
    if (status === "paused") await driver.resume(name);
    else if (status !== "running") await driver.start(name, { timeoutMs: this.#t.clone, signal });
    const address = await driver.address(name, { timeoutMs: this.#t.clone, signal });
    const previous = this.#state.node(name);
    if (
      previous && (previous.ip !== address.ip || previous.ssh.host !== address.ssh.host ||
        previous.ssh.port !== address.ssh.port)
    ) {
      this.#o.out.warn(`Node ${q(name)} moved from ${previous.ip} to ${address.ip}`);
      await this.#nodes.reset(name);
    }
    if (injected) {
      await this.#nodes.pin(name, address, hostKey.publicKey);
    } else if (!(await this.#nodes.isPinned(address))) {
      // Existing VMs that dtk did not create: trust on first use, then pinned for good.
      const { scanHostKey } = await import("../remote/mod.ts");
      const scanned = await scanHostKey(address.ssh.host, address.ssh.port, {
        runner: this.#o.runner,
        timeoutMs: 30_000,
      });
      this.#o.out.warn(
        `Pinned the host key of ${q(name)} on first use (dtk did not create this VM)`,
      );
      await this.#nodes.pin(name, address, scanned);
    }
    await this.#state.recordNode(name, address);
    await waitForSsh(this.#nodes.remote(name), { timeoutMs: this.#t.ssh });
  }

  /**
   * A VM made anew holds none of what earlier runs put on it: its steps must run again even
   * when their inputs (and its address) are unchanged. A new controller means a new etcd, so
   * everything on the cluster runs again.
   */
  async #forgetWorkOn(name: string): Promise<void> {
    const controller = name === this.config.vms[0]?.name;
    for (const id of Object.keys(this.#state.data.steps)) {
      // A new VM holds no image either: the pins go on it again.
      const onNode = id.startsWith(`node/${name}/`) || id.startsWith("gates/") ||
        id.startsWith("images/");
      const onCluster = id.startsWith("control-plane/") || id.startsWith("addon/") ||
        id.startsWith("node/");
      if (onNode || (controller && onCluster)) await this.#state.forgetStep(id);
    }
  }

  async #pki(): Promise<void> {
    const ips = this.#nodes.ips();
    const nodes = this.config.vms.map((vm) => ({ name: vm.name, ip: ips[vm.name]! }));
    const result = await ensurePki(this.config, nodes);
    const changed = result.files.filter((f) => f.action !== "kept");
    if (changed.length > 0) this.#o.out.debug(`  PKI: ${changed.length} files written`);
  }

  #renderInput(node: string, imageRegistry?: ImageRegistryInput): RenderInput {
    return {
      config: this.config,
      nodes: renderNodes(this.config, this.#nodes.ips()),
      node,
      overrides: this.#o.renderOverrides,
      ...(imageRegistry === undefined ? {} : { imageRegistry }),
    };
  }

  async #hosts(name: string): Promise<void> {
    const remote = this.#nodes.remote(name);
    const nodes = renderNodes(this.config, this.#nodes.ips());
    const read = async (path: string) =>
      (await remote.exec(`cat ${path} 2>/dev/null || true`, { timeoutMs: 30_000 })).stdout;
    const hostsNow = await read(NODE_PATHS.hosts);
    const envNow = await read(NODE_PATHS.environment);
    const hosts = updateHosts(hostsNow, nodes);
    const environment = updateEnvironment(envNow);
    const files = [];
    if (hosts !== hostsNow) files.push({ path: NODE_PATHS.hosts, content: hosts, mode: 0o644 });
    if (environment !== envNow) {
      files.push({ path: NODE_PATHS.environment, content: environment, mode: 0o644 });
    }
    if (files.length > 0) await remote.upload(files);
    await remote.exec(
      `printf '%s\\n' ${name} > /etc/hostname && (hostnamectl set-hostname ${name} 2>/dev/null || hostname ${name})`,
      { timeoutMs: 30_000, what: `set the hostname of ${q(name)}` },
    );
  }

  #stepFiles(step: Step, imageRegistry?: ImageRegistryInput): StepFiles[] {
    const node = step.node!;
    const input = this.#renderInput(node, imageRegistry);
    const applicable = stepsForNode(input);
    return (RENDER_STEPS[step.kind] ?? []).filter((s) => applicable.includes(s)).map((s) =>
      renderStep(s, input)
    );
  }

  #nodeStep(step: Step): StepHandler {
    const node = step.node!;
    let prepared: Promise<{ steps: StepFiles[]; pki: Map<string, string>; digest: string }>;
    const prepare = () =>
      prepared ??= (async () => {
        // The runtime step's hosts.toml files point at dtk's registry: it serves from here on.
        const registry = step.kind === "runtime" ? await this.#locked.registry() : undefined;
        const steps = this.#stepFiles(step, registry);
        const pki = new Map<string, string>();
        for (const s of steps) {
          for (const p of s.pki) {
            pki.set(
              p.path,
              await Deno.readTextFile(pkiSourceFile(this.#layout, p.source)),
            );
          }
        }
        const source = {
          lock: this.#o.lock,
          storeDir: this.#storeDir,
          cacheDir: join(clusterDir(this.config), "cache", "unpacked"),
          runner: this.#o.runner,
        };
        const binaries = [];
        for (const s of steps) binaries.push(...await binaryCopies(s.binaries, source));
        const images = step.kind === "runtime" ? await this.#images() : [];
        const digest = digestOf({
          steps: steps.map((s) => ({
            files: s.files.map((f) => [f.path, f.mode, f.owner ?? "", sha256(f.content)]),
            dirs: s.dirs,
            pki: s.pki.map((p) => [p.path, p.mode, sha256(pki.get(p.path) ?? "")]),
            units: s.units,
            activate: s.activate,
          })),
          binaries: binaries.map((b) => [b.dest, b.mode, b.sha256]),
          images: images.map((i) => [i.name, i.sha256]),
          // The probe names the resolv.conf it checks: another k8s.resolv-conf checks again.
          extra: step.kind === "prep"
            ? [prepProbe(this.config.k8s.resolvConf), ...PREP_COMMANDS]
            : [],
          address: this.#state.node(node),
        });
        return { steps, pki, digest };
      })();
    return {
      digest: async () => (await prepare()).digest,
      run: async () => {
        const { steps, pki } = await prepare();
        const remote = this.#nodes.remote(node);
        if (step.kind === "prep") {
          await runPrep(remote, {
            kubernetes: this.config.versions.kubernetes,
            resolvConf: this.config.k8s.resolvConf,
          });
        }
        for (const s of steps) await this.#applyStep(node, s, pki);
        if (step.kind === "runtime") await this.#preloadImages(node);
        await this.#gate(step);
        if (step.kind === "runtime") {
          const how = await this.#locked.prepareNode(remote);
          if (how !== "none") this.#o.out.debug(`  ${node}: images via ${how}`);
        }
      },
    };
  }

  async #applyStep(node: string, s: StepFiles, pki: Map<string, string>): Promise<void> {
    const remote = this.#nodes.remote(node);
    const dirs = new Map<string, number>();
    for (const d of s.dirs) dirs.set(d.path, d.mode);
    const parents = new Set<string>();
    for (const f of s.files) parents.add(dirname(f.path));
    for (const p of s.pki) parents.add(dirname(p.path));
    const mkdirs = [
      ...[...parents].filter((p) => !dirs.has(p)).map((p) => `mkdir -p ${shellQuote(p)}`),
      ...[...dirs].map(([p, mode]) => `install -d -m ${mode.toString(8)} ${shellQuote(p)}`),
    ];
    if (mkdirs.length > 0) {
      await remote.exec(mkdirs.join(" && "), {
        timeoutMs: 30_000,
        what: `create folders on ${q(node)}`,
      });
    }
    const files = [
      ...s.files,
      ...s.pki.map((p) => ({ path: p.path, content: pki.get(p.path) ?? "", mode: p.mode })),
    ];
    if (files.length > 0) await remote.upload(files);
    await this.#installBinaries(node, s);
    for (const command of s.activate) {
      await remote.exec(command, {
        timeoutMs: 60_000,
        what: `${s.step} on ${q(node)}: ${command}`,
      });
    }
    if (s.units.length > 0) {
      await remote.exec(
        [
          "systemctl daemon-reload",
          ...s.units.flatMap((u) => [`systemctl enable ${u}`, `systemctl restart ${u}`]),
        ]
          .join(" && "),
        { timeoutMs: 120_000, what: `start ${s.units.join(", ")} on ${q(node)}` },
      );
    }
  }

  /** Copies what differs, then checks on the node that every binary's sha256 equals the lock's. */
  async #installBinaries(node: string, s: StepFiles): Promise<void> {
    if (s.binaries.length === 0) return;
    const remote = this.#nodes.remote(node);
    const copies = await binaryCopies(s.binaries, {
      lock: this.#o.lock,
      storeDir: this.#storeDir,
      cacheDir: join(clusterDir(this.config), "cache", "unpacked"),
      runner: this.#o.runner,
    });
    const dests = copies.map((c) => c.dest);
    const before = await remote.sha256(dests);
    const parents = [...new Set(copies.map((c) => dirname(c.dest)))];
    await remote.exec(`mkdir -p ${parents.map(shellQuote).join(" ")}`, { timeoutMs: 30_000 });
    for (const copy of copies) {
      if (before.get(copy.dest) !== copy.sha256) {
        await remote.uploadFile(copy.local, copy.dest, { mode: copy.mode });
      }
    }
    const after = await remote.sha256(dests);
    for (const copy of copies) {
      const actual = after.get(copy.dest);
      if (actual !== copy.sha256) {
        throw new IntegrityError(
          `${q(copy.dest)} on node ${q(node)} has sha256 ${
            actual ?? "(missing)"
          }, the lock says ${copy.sha256}`,
          {
            hint: `The copy of ${
              q(copy.artifact)
            } was altered on the way; run dtk store verify, then again`,
          },
        );
      }
    }
  }

  async #images(): Promise<{ name: string; path: string; sha256: string }[]> {
    const dir = this.#o.imagesDir ?? join(this.config.source.dir, "images");
    const out: { name: string; path: string; sha256: string }[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.isFile && /\.(tar|tgz|tar\.gz)$/.test(e.name)) {
          const path = join(dir, e.name);
          out.push({ name: e.name, path, sha256: sha256(await Deno.readFile(path)) });
        }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** `images/*.tar|*.tgz` beside the config, imported into containerd's `k8s.io` namespace. */
  async #preloadImages(node: string): Promise<void> {
    const images = await this.#images();
    if (images.length === 0) return;
    const remote = this.#nodes.remote(node);
    await remote.exec("mkdir -p /var/lib/dtk/images", { timeoutMs: 30_000 });
    for (const image of images) {
      const dest = `/var/lib/dtk/images/${image.name}`;
      await remote.uploadFile(image.path, dest, { mode: 0o644 });
      const unzip = image.name.endsWith(".tar")
        ? `cat ${shellQuote(dest)}`
        : `gzip -dc ${shellQuote(dest)}`;
      await remote.exec(
        `${unzip} | ctr -n k8s.io -a ${NODE_PATHS.containerdSocket} image import -`,
        { timeoutMs: 10 * 60_000, what: `import image ${q(image.name)} on ${q(node)}` },
      );
    }
  }

  async #unitActive(node: string, unit: string): Promise<void> {
    const remote = this.#nodes.remote(node);
    await poll(async () => {
      const r = await remote.exec(`systemctl is-active ${unit}`, {
        timeoutMs: 15_000,
        check: false,
      });
      const state = r.stdout.trim();
      if (state === "active") return true;
      if (state === "failed") {
        const log = await remote.exec(`journalctl -u ${unit} -n 25 --no-pager 2>&1 || true`, {
          timeoutMs: 15_000,
          check: false,
        });
        throw new DtkError(`${unit} failed on node ${q(node)}`, {
          cause: log.stdout.trim().split("\n").slice(-25).join("\n"),
          hint: `See: dtk ssh ${node} journalctl -u ${unit}`,
        });
      }
      return undefined;
    }, {
      timeoutMs: this.#t.unit,
      intervalMs: 1000,
      what: `${unit} to be active on node ${q(node)}`,
      hint: `See: dtk ssh ${node} journalctl -u ${unit}`,
      signal: this.#o.signal,
    }).catch((error) => {
      if (error instanceof TimeoutError && error.cause instanceof DtkError) throw error.cause;
      throw error;
    });
  }

  async #kubeClient(): Promise<KubeClient> {
    this.#kube ??= await KubeClient.fromKubeconfigFile(this.kubeconfig);
    return this.#kube;
  }

  /** The health gates of the spec (§4.10, §4.11), each bounded. */
  async #gate(step: Step): Promise<void> {
    const node = step.node!;
    const staticPod = (c: string) => this.config.k8s.containerizedCplane.includes(c as never);
    switch (step.kind) {
      case "runtime":
        return await this.#unitActive(node, "containerd.service");
      case "kubelet":
        return await this.#unitActive(node, "kubelet.service");
      case "kube-proxy":
        if (!staticPod("kube-proxy")) await this.#unitActive(node, "kube-proxy.service");
        return;
      case "etcd": {
        if (!staticPod("etcd")) await this.#unitActive(node, "etcd.service");
        const remote = this.#nodes.remote(node);
        await poll(async () => {
          const r = await remote.exec(etcdGateCommand(this.config.versions.etcd), {
            timeoutMs: 15_000,
            check: false,
          });
          return r.success && r.stdout.includes(node) ? true : undefined;
        }, {
          timeoutMs: this.#t.etcd,
          intervalMs: 2000,
          what: `etcd on ${q(node)} to list its member`,
          hint: `See: dtk ssh ${node} journalctl -u etcd`,
          signal: this.#o.signal,
        });
        return;
      }
      case "kube-apiserver": {
        if (!staticPod("kube-apiserver")) await this.#unitActive(node, "kube-apiserver.service");
        const kube = await this.#kubeClient();
        const timeoutMs = this.#t.apiserver * (staticPod("kube-apiserver") ? 2 : 1);
        for (const path of ["/version", "/livez"]) {
          await poll(async () => {
            const r = await kube.request("GET", path, { timeoutMs: 10_000 });
            return r.status === 200 ? true : undefined;
          }, {
            timeoutMs,
            what: `kube-apiserver at ${kube.server}${path} to answer 200`,
            hint: `See: dtk ssh ${node} journalctl -u kube-apiserver`,
            signal: this.#o.signal,
          });
        }
        return;
      }
      case "kube-controller-manager":
      case "kube-scheduler": {
        if (!staticPod(step.kind)) await this.#unitActive(node, `${step.kind}.service`);
        const kube = await this.#kubeClient();
        await poll(() => leaseHolder(kube, step.kind), {
          timeoutMs: this.#t.lease,
          intervalMs: 2000,
          what: `${step.kind} to hold its leader lease`,
          hint: `See: dtk ssh ${node} journalctl -u ${step.kind}`,
          signal: this.#o.signal,
        });
        return;
      }
      default:
        return;
    }
  }

  async #rbac(): Promise<void> {
    const kube = await this.#kubeClient();
    for (const doc of parseAllDocuments(renderApiserverRbac())) {
      const object = doc.toJSON() as Record<string, unknown> | null;
      if (object) await kube.apply(object);
    }
  }

  async #nodesReady(signal?: AbortSignal): Promise<void> {
    const kube = await this.#kubeClient();
    const names = this.#nodes.names;
    // The controller-manager allocates no pod CIDRs (--allocate-node-cidrs=false): each node
    // gets its `vms[].pod-cidr` here, as soon as it registers, on every run (a no-op once set).
    const wanted = new Map<string, WantedPodCidr>(
      this.config.vms.map((vm, i) => [vm.name, { cidr: vm.podCidr, key: `vms[${i}].pod-cidr` }]),
    );
    let last = { registered: [] as string[], ready: [] as string[] };
    await poll(async () => {
      const seen = await assignPodCidrs(kube, wanted);
      for (const name of seen.assigned) {
        this.#o.out.debug(`  ${name}: pod CIDR ${wanted.get(name)?.cidr}`);
      }
      last = seen;
      return names.every((n) => last.ready.includes(n)) ? true : undefined;
    }, {
      timeoutMs: this.#t.nodesReady,
      intervalMs: 2000,
      what: `every node to be Ready (${names.join(", ")})`,
      hint: "See: kubectl describe nodes, and dtk ssh <vm> journalctl -u kubelet",
      signal,
      fatal: (error) => error instanceof PodCidrConflictError,
    }).catch((error) => {
      if (error instanceof TimeoutError) {
        const missing = names.filter((n) => !last.registered.includes(n));
        const notReady = names.filter((n) =>
          last.registered.includes(n) && !last.ready.includes(n)
        );
        throw new TimeoutError(
          `every node to be Ready (not registered: ${missing.join(", ") || "none"}; not Ready: ${
            notReady.join(", ") || "none"
          })`,
          { timeoutMs: error.timeoutMs, hint: error.hint, cause: error.cause },
        );
      }
      throw error;
    });
    // The service-account controller makes `default/default` a few seconds after the
    // controller-manager starts; until then the apiserver refuses every Pod of the namespace,
    // so a user's first `kubectl run` right after create would fail (minikube waits the same).
    await poll(async () => {
      const r = await kube.request("GET", "/api/v1/namespaces/default/serviceaccounts/default");
      return r.status === 200 ? true : undefined;
    }, {
      timeoutMs: this.#t.nodesReady,
      intervalMs: 1000,
      what: 'the "default" ServiceAccount of namespace "default"',
      hint: "See: dtk ssh <controller> journalctl -u kube-controller-manager",
      signal,
    });
  }

  async #labels(): Promise<void> {
    const kube = await this.#kubeClient();
    for (const [i, name] of this.#nodes.names.entries()) {
      await kube.labelNode(name, {
        ...(i === 0 ? { "node-role.kubernetes.io/controller": "" } : {}),
        "node-role.kubernetes.io/worker": "",
      });
    }
  }

  /**
   * Every locked image on every node that may run it (static-pod images on the controller
   * only), pinned, so that kubelet's image GC keeps them and the cluster needs no dtk to run.
   */
  async #pinImages(): Promise<void> {
    if (!this.#locked.enabled) return;
    const refKey = (r: { registry: string; repository: string; tag?: string }) =>
      `${r.registry}/${r.repository}:${r.tag ?? ""}`;
    const key = (ref: string) => refKey(parseImageReference(ref));
    let controllerOnly = new Set<string>();
    try {
      const needs = requiredImages(this.config, { skipUnlisted: true });
      const other = new Set(
        needs.filter((n) => n.addon !== "control-plane").map((n) => key(n.ref)),
      );
      controllerOnly = new Set(
        needs.filter((n) => n.addon === "control-plane" && !other.has(key(n.ref))).map((n) =>
          key(n.ref)
        ),
      );
    } catch (error) {
      this.#o.out.debug(`  every locked image goes to every node: ${(error as Error).message}`);
    }
    const controller = this.#nodes.controller;
    await Promise.all(this.#nodes.names.map(async (node) => {
      const result = await this.#locked.pin(
        this.#nodes.remote(node),
        (image) => node === controller || !controllerOnly.has(refKey(image.ref)),
      );
      this.#o.out.info(
        `  ${node}: ${result.pinned.length} image record(s) pinned${
          result.imported.length > 0 ? `, ${result.imported.length} imported from the store` : ""
        }`,
      );
    }));
  }

  async #addon(name: AddonName, signal?: AbortSignal): Promise<void> {
    const ips = this.#nodes.ips();
    const names = this.#nodes.names;
    const adminToken = await readAdminToken(this.config);
    if (!adminToken) {
      throw new DtkError("The cluster has no admin token", {
        hint: "Run dtk cluster create again",
      });
    }
    await installAddon(name, {
      config: this.config,
      facts: {
        controllerIp: ips[names[0]!]!,
        nodeIps: names.map((n) => ips[n]!),
        adminToken,
        dnsWebhookToken: name === "external-dns"
          ? await ensureWebhookToken(clusterDir(this.config))
          : undefined,
      },
      kubeconfig: this.kubeconfig,
      runner: this.#o.runner,
      artifactPath: (artifact) => {
        const entry = this.#o.lock.artifacts[artifact];
        if (!entry) {
          throw new DtkError(`Artifact ${q(artifact)} is not in the lock`, {
            hint: "Run dtk lock",
          });
        }
        requireHash(entry.hash, artifact);
        return artifactPath(this.#storeDir, entry);
      },
      runNodeStep: addonNodeStepRunner(this.#nodes),
      log: (t) => this.#o.out.info(`  ${t}`),
      signal,
    });
  }
}

/**
 * The summary printed at the end of a create; `timings` (the run log's phase table and critical
 * path) replaces the plain per-phase list when given.
 */
export function formatCreateSummary(
  report: CreateReport,
  config: Config,
  timings?: string,
): string {
  const lines = [
    `Cluster ${q(config.cluster.name)} is ready in ${
      formatDuration(report.elapsedMs)
    } (${report.ran.length} steps run, ${report.skipped.length} unchanged).`,
    "",
    ...(timings !== undefined ? [timings.trimEnd()] : [
      "Elapsed time per phase:",
      ...report.phases.map((p) =>
        `  ${p.phase.padEnd(14)} ${
          formatDuration(p.elapsedMs).padStart(9)
        }  (${p.ran} run, ${p.skipped} unchanged)`
      ),
    ]),
    "",
    `Kubeconfig: ${report.kubeconfig}`,
    `  export KUBECONFIG=${shellQuote(report.kubeconfig)}`,
    `Log in to a node: dtk ssh ${config.vms[0]?.name ?? "<vm>"}`,
  ];
  return lines.join("\n");
}

/**
 * With `--frozen` the lock is used exactly as it is: it must hold every artifact the config
 * needs, at the config's versions. (kubectl is catalogued for the user; dtk installs it nowhere.)
 */
export function checkLockCovers(config: Config, lock: Lockfile, path: string): void {
  const problems: string[] = [];
  for (const spec of resolveArtifacts(config)) {
    if (spec.name === "kubectl") continue;
    const entry = lock.artifacts[spec.name];
    if (!entry) problems.push(`${q(spec.name)} is missing`);
    else if (entry.version !== spec.version) {
      problems.push(`${q(spec.name)} is ${entry.version}, the config asks for ${spec.version}`);
    }
  }
  if (problems.length > 0) {
    throw new DtkError(`The lock ${q(path)} does not fit the config: ${problems.join("; ")}`, {
      hint: "Run dtk lock to update it (without --frozen), then review and commit it",
    });
  }
}
