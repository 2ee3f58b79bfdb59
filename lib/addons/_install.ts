/**
 * The one installer: node steps, actions before helm, the values file, `helm upgrade --install`,
 * actions after helm, then the readiness checks. Every wait is bounded and names the add-on and
 * what it waited for; every failure carries the tail of helm's or kubectl's output.
 *
 * @module
 */
import {
  CommandError,
  DtkError,
  escapeText,
  formatDuration,
  InterruptedError,
  PrerequisiteError,
  q,
  tail,
  TimeoutError,
} from "../errors/mod.ts";
import { commandFailed, formatCommand, type Runner, type RunResult } from "../exec/mod.ts";
import { exists, writeFileAtomic } from "../fs/mod.ts";
import type { AddonName, Config } from "../config/mod.ts";
import { WEBHOOK_MEDIA_TYPE } from "../dnswebhook/mod.ts";
import { readTextAtMost } from "../http/mod.ts";
import type {
  AddonAction,
  ClusterFacts,
  KubectlAction,
  NodeStep,
  ReadyCheck,
  WebhookAction,
} from "./_types.ts";
import {
  checkArgs,
  describeCheck,
  renderAddon,
  type RenderedAddon,
  renderInput,
} from "./_render.ts";

/** Bounds of every wait the installer makes. */
export interface AddonTimeouts {
  /** Given to helm as `--timeout`; the process is killed a little after it. */
  helmMs: number;
  /** All readiness checks of one add-on together. */
  readyMs: number;
  /** How long a kubectl action that may race with an operator or webhook is retried. */
  applyMs: number;
  /** Pause between retries. */
  pollMs: number;
  /** One request to the host-side DNS webhook. */
  webhookMs: number;
  /** Extra time a process gets beyond its own `--timeout` before it is killed. */
  graceMs: number;
}

export const DEFAULT_TIMEOUTS: Readonly<AddonTimeouts> = {
  helmMs: 10 * 60_000,
  readyMs: 5 * 60_000,
  applyMs: 2 * 60_000,
  pollMs: 5_000,
  webhookMs: 10_000,
  graceMs: 30_000,
};

export interface InstallOptions {
  config: Config;
  facts: ClusterFacts;
  /** The cluster's admin kubeconfig: helm and kubectl never use the user's default context. */
  kubeconfig: string;
  runner: Runner;
  /** The store path of an artifact by lock name (`chart-<addon>`, `gateway-api-crds`). */
  artifactPath: (artifact: string) => string | Promise<string>;
  /** Runs a node step on its nodes. Needed by add-ons that have node steps (calico, NFS). */
  runNodeStep?: (step: NodeStep) => Promise<void>;
  timeouts?: Partial<AddonTimeouts>;
  /** Added to helm's and kubectl's environment. */
  env?: Record<string, string>;
  /** For the DNS webhook requests. Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Progress lines. */
  log?: (text: string) => void;
  signal?: AbortSignal;
  helm?: string;
  kubectl?: string;
  /** Where the values files go. Default: `generated/<cluster>/addons/<name>/`. */
  valuesDir?: (name: AddonName) => string;
}

export interface InstallStepTiming {
  what: string;
  elapsedMs: number;
}

export interface InstallResult {
  name: AddonName;
  release: string;
  namespace: string;
  chartVersion: string;
  valuesFile: string;
  elapsedMs: number;
  steps: InstallStepTiming[];
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new InterruptedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new InterruptedError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function outputOf(result: Pick<RunResult, "stdout" | "stderr"> | undefined): string {
  if (result === undefined) return "";
  const text = [result.stderr.trim(), result.stdout.trim()].filter((t) => t !== "").join("\n");
  return tail(text, 15);
}

function withOutput(hint: string, output: string): string {
  return output === "" ? hint : `${hint}\nLast output:\n${output}`;
}

class Installer {
  readonly #o: InstallOptions;
  readonly #t: AddonTimeouts;
  readonly #name: AddonName;
  readonly #steps: InstallStepTiming[] = [];

  constructor(name: AddonName, options: InstallOptions) {
    this.#o = options;
    this.#t = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#name = name;
  }

  get steps(): InstallStepTiming[] {
    return this.#steps;
  }

  #label(): string {
    return `add-on ${q(this.#name)}`;
  }

  #kubectl(args: readonly string[]): string[] {
    return [this.#o.kubectl ?? "kubectl", "--kubeconfig", this.#o.kubeconfig, ...args];
  }

  #checkSignal(): void {
    if (this.#o.signal?.aborted) throw new InterruptedError();
  }

  async #timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.#checkSignal();
    this.#o.log?.(`${this.#name}: ${what}`);
    const started = performance.now();
    const value = await fn();
    this.#steps.push({ what, elapsedMs: performance.now() - started });
    return value;
  }

  /** Runs a command; a runner timeout or start failure becomes a result with code -1. */
  async #run(
    argv: string[],
    options: { timeoutMs: number; stdin?: string; what: string },
  ): Promise<RunResult & { killed: boolean }> {
    try {
      const result = await this.#o.runner.run(argv, {
        check: false,
        timeoutMs: options.timeoutMs,
        stdin: options.stdin,
        env: this.#o.env,
        what: options.what,
        signal: this.#o.signal,
      });
      return { ...result, killed: false };
    } catch (error) {
      this.#checkSignal();
      if (error instanceof CommandError && error.code === null) {
        // Killed at the timeout: report like a failed run, with what it printed.
        if (/did not finish within/.test(error.message)) {
          return {
            code: -1,
            success: false,
            stdout: "",
            stderr: error.stderrTail,
            elapsedMs: options.timeoutMs,
            killed: true,
          };
        }
      }
      throw error;
    }
  }

  async install(rendered: RenderedAddon): Promise<void> {
    for (const step of rendered.nodeSteps) {
      await this.#timed(`node step ${q(step.id)}: ${step.description}`, async () => {
        if (this.#o.runNodeStep === undefined) {
          throw new DtkError(
            `${this.#label()} needs to run ${
              q(step.id)
            } on the nodes, but no node access was given`,
            { hint: "Install it with: dtk install-addon " + this.#name },
          );
        }
        await this.#o.runNodeStep(step);
      });
    }
    for (const action of rendered.before) await this.#action(action);
    await this.#timed(
      `write ${rendered.valuesFile}`,
      () =>
        writeFileAtomic(rendered.valuesFile, rendered.valuesYaml, { mode: rendered.valuesMode }),
    );
    await this.#timed(`helm upgrade --install ${rendered.release}`, () => this.#helm(rendered));
    for (const action of rendered.after) await this.#action(action);
    const deadline = performance.now() + this.#t.readyMs;
    for (const check of rendered.ready) {
      await this.#timed(`wait for ${describeCheck(check)}`, () => this.#ready(check, deadline));
    }
  }

  async #helm(rendered: RenderedAddon): Promise<void> {
    const what = `helm upgrade --install of ${this.#label()}`;
    const result = await this.#run(rendered.helmArgv, {
      timeoutMs: this.#t.helmMs + this.#t.graceMs,
      what,
    });
    const inspect = `Inspect it with: ${
      formatCommand([
        "helm",
        "status",
        rendered.release,
        "--namespace",
        rendered.namespace,
        "--kubeconfig",
        this.#o.kubeconfig,
      ])
    }`;
    if (result.killed) {
      throw new TimeoutError(`${this.#label()}: helm release ${q(rendered.release)} to install`, {
        timeoutMs: this.#t.helmMs,
        hint: withOutput(inspect, outputOf(result)),
      });
    }
    if (!result.success) {
      throw commandFailed(rendered.helmArgv, result, { what, hint: inspect });
    }
  }

  async #action(action: AddonAction): Promise<void> {
    switch (action.kind) {
      case "kubectl":
        return await this.#timed(action.what, () => this.#kubectlAction(action));
      case "apply-artifact":
        return await this.#timed(action.what, async () => {
          if (action.unlessApiGroup !== undefined) {
            const probe = await this.#run(
              this.#kubectl([
                "api-resources",
                `--api-group=${action.unlessApiGroup}`,
                "-o",
                "name",
              ]),
              { timeoutMs: 60_000, what: `list the API group ${q(action.unlessApiGroup)}` },
            );
            if (probe.success && probe.stdout.trim() !== "") {
              this.#o.log?.(`${this.#name}: ${action.unlessApiGroup} is served already, skipped`);
              return;
            }
          }
          const path = await this.#o.artifactPath(action.artifact);
          if (!await exists(path)) {
            throw new PrerequisiteError(
              `${this.#label()} needs ${q(action.artifact)}, which is not in the store (${
                q(path)
              })`,
              { hint: "Fetch it with: dtk fetch" },
            );
          }
          await this.#kubectlAction({
            kind: "kubectl",
            what: action.what,
            args: ["apply", "--server-side", "-f", path],
            retry: true,
          });
        });
      case "webhook":
        return await this.#timed(action.what, () => this.#webhook(action));
    }
  }

  async #webhook(action: WebhookAction): Promise<void> {
    const { url, body } = action;
    const doFetch = this.#o.fetch ?? fetch;
    let response: Response;
    try {
      response = await doFetch(url, {
        method: "POST",
        body,
        headers: {
          "content-type": WEBHOOK_MEDIA_TYPE,
          "accept": WEBHOOK_MEDIA_TYPE,
          "authorization": `Bearer ${action.token}`,
        },
        signal: AbortSignal.timeout(this.#t.webhookMs),
      });
    } catch (error) {
      throw new DtkError(`${this.#label()} cannot reach the DNS webhook at ${q(url)}`, {
        cause: error,
        hint:
          `Start it on the desktop first: dtk dns-webhook --port ${this.#o.config.dns.webhookPort}`,
      });
    }
    // The webhook answers a few bytes; whatever listens there gets 64 KiB at most.
    const text = (await readTextAtMost(response, 64 * 1024)) ?? "(an answer over 64 KiB)";
    if (!response.ok) {
      const hint = response.status === 401
        ? "The webhook there has another token: start it with this config (dtk -c CONFIG " +
          "dns-webhook), which reads generated/<cluster>/dns-webhook.token"
        : "Check that dtk dns-webhook runs on the desktop";
      throw new DtkError(
        `The DNS webhook answered ${response.status} to ${q(url)} for ${this.#label()}`,
        { hint: withOutput(hint, tail(escapeText(text), 5)) },
      );
    }
  }

  async #kubectlAction(action: KubectlAction): Promise<void> {
    const argv = this.#kubectl(action.args);
    const deadline = performance.now() + this.#t.applyMs;
    let last: RunResult | undefined;
    while (true) {
      const remaining = deadline - performance.now();
      const result = await this.#run(argv, {
        timeoutMs: Math.max(remaining, 1000) + this.#t.graceMs,
        stdin: action.stdin,
        what: `kubectl for ${this.#label()}: ${action.what}`,
      });
      if (result.success) return;
      last = result;
      if (!action.retry) {
        throw commandFailed(argv, result, {
          what: `${this.#label()}: ${action.what}`,
          hint: `Run it by hand: ${formatCommand(argv)}`,
        });
      }
      const left = deadline - performance.now();
      if (left <= 0) break;
      await sleep(Math.min(this.#t.pollMs, left), this.#o.signal);
    }
    throw new TimeoutError(`${this.#label()}: ${action.what} to succeed`, {
      timeoutMs: this.#t.applyMs,
      hint: withOutput(`Run it by hand: ${formatCommand(argv)}`, outputOf(last)),
    });
  }

  async #ready(check: ReadyCheck, deadline: number): Promise<void> {
    let last: RunResult | undefined;
    while (true) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) break;
      const argv = this.#kubectl(checkArgs(check, remaining));
      const result = await this.#run(argv, {
        timeoutMs: remaining + this.#t.graceMs,
        what: `kubectl for ${this.#label()}: wait for ${describeCheck(check)}`,
      });
      if (result.success) return;
      last = result;
      // A check fails at once while its object does not exist yet (operators create them).
      const left = deadline - performance.now();
      if (left <= 0) break;
      await sleep(Math.min(this.#t.pollMs, left), this.#o.signal);
    }
    const namespace = check.namespace;
    const inspect = `Inspect it with: ${
      formatCommand([
        "kubectl",
        "--kubeconfig",
        this.#o.kubeconfig,
        ...(namespace ? ["--namespace", namespace] : []),
        "get",
        "pods,events",
      ])
    }`;
    throw new TimeoutError(`${this.#label()}: ${describeCheck(check)}`, {
      timeoutMs: this.#t.readyMs,
      hint: withOutput(inspect, outputOf(last)),
    });
  }
}

/**
 * Installs (or upgrades) one add-on on a running cluster and waits until it is ready. Ignores
 * `enabled`, as the original's `install-addon` does; checking the order is the caller's job.
 */
export async function installAddon(
  name: AddonName,
  options: InstallOptions,
): Promise<InstallResult> {
  const started = performance.now();
  const t = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  if (!await exists(options.kubeconfig)) {
    throw new PrerequisiteError(`The admin kubeconfig ${q(options.kubeconfig)} does not exist`, {
      hint: "Create the cluster first: dtk cluster create",
    });
  }
  const input = renderInput(options.config, options.facts, name);
  const chartArtifact = `chart-${name}`;
  const chartPath = await options.artifactPath(chartArtifact);
  if (!await exists(chartPath)) {
    throw new PrerequisiteError(
      `The chart of add-on ${q(name)} is not in the store (${q(chartPath)})`,
      { hint: "Fetch it with: dtk fetch" },
    );
  }
  const rendered = renderAddon(name, input, {
    kubeconfig: options.kubeconfig,
    chartPath,
    helmTimeoutMs: t.helmMs,
    helm: options.helm,
    valuesDir: options.valuesDir?.(name),
  });
  const installer = new Installer(name, options);
  await installer.install(rendered);
  const elapsedMs = performance.now() - started;
  options.log?.(`${name}: ready in ${formatDuration(elapsedMs)}`);
  return {
    name,
    release: rendered.release,
    namespace: rendered.namespace,
    chartVersion: rendered.chart.version,
    valuesFile: rendered.valuesFile,
    elapsedMs,
    steps: installer.steps,
  };
}

/** The enabled add-ons of a config, in its order (validated by the config loader). */
export function enabledAddons(config: Pick<Config, "addons">): AddonName[] {
  return config.addons.filter((a) => a.enabled).map((a) => a.name as AddonName);
}

/** Installs every enabled add-on in the config's order, one after the other. */
export async function installEnabledAddons(options: InstallOptions): Promise<InstallResult[]> {
  const results: InstallResult[] = [];
  for (const name of enabledAddons(options.config)) {
    results.push(await installAddon(name, options));
  }
  return results;
}
