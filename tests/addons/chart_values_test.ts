/**
 * dtk's add-on values read against the charts themselves (issue 17, item 3). For every pinned
 * chart whose source is at hand, `tests/testdata/charts/<addon>-<version>.values.yaml` is the key
 * tree of that chart version's own values.yaml, written from the release tag by
 * `_chart_tree_gen.ts` (its header names the repository, tag and commit). Every key path dtk sets
 * must be in that tree, or be a documented exception: a free-form map the chart passes through,
 * or a key its templates read though values.yaml leaves it out (each with where it is read). And
 * every readiness check must name a workload the chart creates with dtk's values: the names below
 * are read from the chart's templates at the same tag (fullname helpers, `kind` switches). Where
 * the chart ships a values.schema.json (nginx-gateway-fabric, cert-manager, external-dns,
 * headlamp, vcluster), dtk's values merged over the chart's defaults must pass it, as helm
 * checks at install.
 */
import assert from "node:assert/strict";
import { Ajv, type ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse, parseAllDocuments } from "yaml";
import {
  type AddonName,
  ADDONS,
  type ReadyCheck,
  renderAddon,
  renderInput,
} from "../../lib/addons/mod.ts";
import { ADDON_CHARTS } from "../../lib/catalog/mod.ts";
import { DEFAULT_FACTS, defaultTestConfig, OTHER_FACTS, otherTestConfig } from "./_fixtures.ts";

type Values = Record<string, unknown>;

interface Workload {
  resource: "daemonset" | "deployment" | "statefulset";
  name: string;
  namespace: string;
}

interface ChartCheck {
  /** Key trees: `""` is the chart's own, any other key is the subchart mounted at that key. */
  trees: Record<string, string>;
  /**
   * Keys dtk sets that the tree does not hold, with why the chart takes them anyway. `a.b.*`
   * accepts everything below `a.b` (a free-form map); a plain path accepts that key only.
   */
  exceptions: Record<string, string>;
  /** The Deployments, DaemonSets and StatefulSets the chart (or its operator) makes. */
  workloads(values: Values, release: string, namespace: string): Workload[];
}

/**
 * Helm's common fullname helper (`<chart>.fullname` in nearly every chart): the release name if
 * it contains the chart name, else `<release>-<chart>`, truncated.
 */
function fullname(release: string, chart: string, max = 63): string {
  const name = release.includes(chart) ? release : `${release}-${chart}`;
  return name.slice(0, max).replace(/-+$/, "");
}

function get(values: Values, path: string[]): unknown {
  let v: unknown = values;
  for (const k of path) {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
    v = (v as Values)[k];
  }
  return v;
}

const deployment = (name: string, namespace: string): Workload => ({
  resource: "deployment",
  name,
  namespace,
});

/** Charts whose source is not at hand here, and why. */
export const SKIPPED: Partial<Record<AddonName, string>> = {
  cilium:
    "cilium/cilium holds the chart (install/kubernetes/cilium) and its snapshot is ~755 MB, over what can be fetched here",
  openebs:
    "the openebs/dynamic-localpv-provisioner snapshot at hand ends at chart 4.0.0 (no 4.4.0 tag or branch); by hand, 4.0.0's values.yaml has both keys dtk sets",
  "kubernetes-dashboard":
    "the kubernetes/dashboard snapshot at hand ends at chart 7.13.0 (no 7.14.0 tag or branch); by hand, 7.13.0's values.yaml has every key dtk sets",
};

export const CHARTS: Partial<Record<AddonName, ChartCheck>> = {
  calico: {
    trees: { "": "calico-v3.31.3" },
    exceptions: {
      "installation.calicoNetwork":
        "templates/crs/custom-resources.yaml copies .Values.installation (less chart-only keys) into the Installation spec; calicoNetwork is a field of crds/operator.tigera.io_installations.yaml",
      "installation.calicoNetwork.*": "Installation spec.calicoNetwork (the CRD's schema)",
    },
    // The chart makes the operator (templates/tigera-operator/02-tigera-operator.yaml); the
    // operator makes calico-node: tigera/operator@v1.40.3 pkg/render/node.go
    // CalicoNodeObjectName "calico-node", pkg/common/common.go CalicoNamespace "calico-system".
    workloads: (_v, _r, ns) => [
      deployment("tigera-operator", ns),
      { resource: "daemonset", name: "calico-node", namespace: "calico-system" },
    ],
  },
  coredns: {
    trees: { "": "coredns-1.45.0" },
    exceptions: {
      "service.clusterIP":
        "templates/service.yaml reads .Values.service.clusterIP; values.yaml only mentions it in a comment",
    },
    // templates/deployment.yaml: default (coredns.fullname) .Values.deployment.name.
    workloads: (v, r, ns) => [
      deployment(String(get(v, ["deployment", "name"]) ?? fullname(r, "coredns")), ns),
    ],
  },
  "ingress-nginx": {
    trees: { "": "ingress-nginx-4.14.1" },
    exceptions: {
      "controller.config.*": "values.yaml: controller.config is the controller ConfigMap's data",
      "controller.extraArgs.*": "values.yaml: controller.extraArgs become controller flags",
    },
    // controller-daemonset.yaml / controller-deployment.yaml, switched on controller.kind;
    // name ingress-nginx.controller.fullname = <fullname>-<controller.name "controller">.
    workloads: (v, r, ns) => [{
      resource: get(v, ["controller", "kind"]) === "DaemonSet" ? "daemonset" : "deployment",
      name: `${fullname(r, "ingress-nginx")}-controller`,
      namespace: ns,
    }],
  },
  "nginx-gateway-fabric": {
    trees: { "": "nginx-gateway-fabric-2.4.1" },
    exceptions: {
      "nginx.pod.nodeSelector":
        "templates/nginxproxy.yaml passes nginx.pod into the NginxProxy's kubernetes.deployment.pod; nodeSelector is a field of its CRD",
      "nginx.pod.nodeSelector.*": "a label selector (free-form map)",
    },
    // templates/deployment.yaml (nginxGateway.kind "deployment", the default): the control
    // plane, nginx-gateway.fullname. The data plane is made later by the control plane.
    workloads: (_v, r, ns) => [deployment(fullname(r, "nginx-gateway-fabric"), ns)],
  },
  "cert-manager": {
    trees: { "": "cert-manager-v1.19.2" },
    exceptions: {},
    // templates/deployment.yaml, cainjector-deployment.yaml (cainjector.enabled, default
    // true), webhook-deployment.yaml; namespace .Values.namespace | default release namespace.
    workloads: (_v, r, ns) => {
      const f = fullname(r, "cert-manager");
      return [deployment(f, ns), deployment(`${f}-cainjector`, ns), deployment(`${f}-webhook`, ns)];
    },
  },
  "external-dns": {
    trees: { "": "external-dns-1.19.0" },
    exceptions: {},
    workloads: (_v, r, ns) => [deployment(fullname(r, "external-dns"), ns)],
  },
  "kube-prometheus-stack": {
    trees: { "": "kube-prometheus-stack-80.6.0", grafana: "grafana-10.4.0" },
    exceptions: {
      "coreDns.service.selector":
        "templates/exporters/core-dns/service.yaml reads it; values.yaml has it only commented out",
      "coreDns.service.selector.*": "a label selector (free-form map)",
      "grafana.adminPassword":
        "grafana 10.4.0 templates/_config.tpl writes it into the admin Secret; its values.yaml has it only commented out",
      "grafana.grafana.ini.*": "grafana 10.4.0 values.yaml: grafana.ini is Grafana's own ini file",
    },
    // templates/prometheus-operator/deployment.yaml (prometheusOperator.enabled, default true):
    // kube-prometheus-stack.operator.fullname = <fullname truncated to 26>-operator.
    workloads: (
      _v,
      r,
      ns,
    ) => [deployment(`${fullname(r, "kube-prometheus-stack", 26)}-operator`, ns)],
  },
  headlamp: {
    trees: { "": "headlamp-0.40.0" },
    exceptions: { "httpRoute.labels.*": "values.yaml: labels of the HTTPRoute (free-form map)" },
    workloads: (_v, r, ns) => [deployment(fullname(r, "headlamp"), ns)],
  },
  "metrics-server": {
    trees: { "": "metrics-server-3.13.0" },
    exceptions: {},
    workloads: (_v, r, ns) => [deployment(fullname(r, "metrics-server"), ns)],
  },
  "nfs-provisioner": {
    trees: { "": "nfs-provisioner-4.0.18" },
    exceptions: {},
    workloads: (_v, r, ns) => [deployment(fullname(r, "nfs-subdir-external-provisioner"), ns)],
  },
  vcluster: {
    trees: { "": "vcluster-0.30.4" },
    exceptions: {},
    // templates/statefulset.yaml: kind vcluster.kind (_persistence.tpl), a StatefulSet when the
    // volume claim is on ("auto" with the default embedded database) or etcd is embedded, a
    // Deployment otherwise; named after the release.
    workloads: (v, r, ns) => {
      const claim = get(v, [
        "controlPlane",
        "statefulSet",
        "persistence",
        "volumeClaim",
        "enabled",
      ]);
      const etcd = get(v, ["controlPlane", "backingStore", "etcd", "embedded", "enabled"]);
      const persistent = claim === undefined || claim === true || claim === "auto" || etcd === true;
      return [{ resource: persistent ? "statefulset" : "deployment", name: r, namespace: ns }];
    },
  },
};

async function readTree(file: string): Promise<Values> {
  const url = new URL(`../testdata/charts/${file}.values.yaml`, import.meta.url);
  return parse(await Deno.readTextFile(url)) ?? {};
}

/** Key paths of every map key, not descending into lists (their items are chart-defined). */
export function keyPaths(value: unknown, prefix: string[] = []): string[][] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value as Values).flatMap(([k, v]) => [
    [...prefix, k],
    ...keyPaths(v, [...prefix, k]),
  ]);
}

/** True when `path` is a key of the tree (the chart's, or a subchart's at its mount key). */
export function inTrees(trees: Record<string, Values>, path: string[]): boolean {
  const own = trees[""];
  if (own !== undefined && has(own, path)) return true;
  const [head, ...rest] = path;
  const sub = head === undefined ? undefined : trees[head];
  return sub !== undefined && (rest.length === 0 || has(sub, rest));
}

function has(tree: Values, path: string[]): boolean {
  let v: unknown = tree;
  for (const k of path) {
    if (v === null || typeof v !== "object" || Array.isArray(v) || !Object.hasOwn(v, k)) {
      return false;
    }
    v = (v as Values)[k];
  }
  return true;
}

/** The exception that accepts `dotted`, if any. */
export function exceptionFor(exceptions: Record<string, string>, dotted: string): string | null {
  for (const key of Object.keys(exceptions)) {
    if (key === dotted) return key;
    if (key.endsWith(".*") && dotted.startsWith(key.slice(0, -1))) return key;
  }
  return null;
}

/** Keys dtk sets that neither the trees nor an exception account for. */
export function unknownKeys(
  values: Values,
  trees: Record<string, Values>,
  exceptions: Record<string, string>,
): string[] {
  return keyPaths(values)
    .filter((p) => !inTrees(trees, p) && exceptionFor(exceptions, p.join(".")) === null)
    .map((p) => p.join("."));
}

/**
 * Keys where the chart's default is a list or a map and dtk sets something else (a scalar
 * default is recorded as null, as is an unset one, so scalars are not compared).
 */
export function shapeMismatches(values: Values, trees: Record<string, Values>): string[] {
  const shape = (v: unknown) =>
    Array.isArray(v) ? "list" : v !== null && typeof v === "object" ? "map" : "scalar";
  const out: string[] = [];
  const walk = (v: Values, tree: unknown, path: string[]) => {
    if (tree === null || typeof tree !== "object" || Array.isArray(tree)) return;
    for (const [k, x] of Object.entries(v)) {
      if (!Object.hasOwn(tree, k)) continue;
      const t = (tree as Values)[k];
      if (t !== null && shape(t) !== shape(x)) out.push([...path, k].join("."));
      if (shape(x) === "map") walk(x as Values, t, [...path, k]);
    }
  };
  walk(values, trees[""], []);
  for (const [mount, tree] of Object.entries(trees)) {
    const sub = values[mount];
    if (mount !== "" && shape(sub) === "map") walk(sub as Values, tree, [mount]);
  }
  return out;
}

/** Readiness checks that name no workload (or no Deployment, for "deployments") of the chart. */
export function unmatchedChecks(checks: ReadyCheck[], workloads: Workload[]): ReadyCheck[] {
  return checks.filter((c) => {
    if (c.kind === "rollout") {
      return !workloads.some((w) =>
        w.resource === c.resource && w.name === c.name && w.namespace === c.namespace
      );
    }
    if (c.kind === "deployments") {
      return !workloads.some((w) => w.resource === "deployment" && w.namespace === c.namespace);
    }
    return false; // "condition" waits on an object dtk applies itself: see appliedObjects
  });
}

/**
 * The workloads dtk's own kubectl actions patch by name (`[-n ns] patch <kind> <name>`), as
 * `kind/name/namespace`: they must be ones the chart makes, or the patch fails after helm.
 */
export function patchedWorkloads(
  actions: readonly { kind: string; args?: string[] }[],
  namespace: string,
): string[] {
  return actions.flatMap((a) => {
    const args = a.kind === "kubectl" ? a.args ?? [] : [];
    const at = args.indexOf("patch");
    const kind = args[at + 1];
    if (at < 0 || !["deployment", "daemonset", "statefulset"].includes(kind ?? "")) return [];
    const n = args.indexOf("-n");
    return [`${kind}/${args[at + 2]}/${n >= 0 ? args[n + 1] : namespace}`];
  });
}

/** `kind/name/namespace` (kind lower-cased, as kubectl takes it) of every object dtk applies. */
export function appliedObjects(actions: readonly { kind: string; stdin?: string }[]): string[] {
  return actions.flatMap((a) =>
    a.kind !== "kubectl" || a.stdin === undefined ? [] : parseAllDocuments(a.stdin).map((d) => {
      const o = d.toJSON() as { kind?: string; metadata?: { name?: string; namespace?: string } };
      return `${o.kind?.toLowerCase()}/${o.metadata?.name}/${o.metadata?.namespace ?? ""}`;
    })
  );
}

/**
 * Helm's merge of user values over chart defaults (chartutil.CoalesceValues): maps merge key by
 * key, a null deletes the default, anything else replaces it.
 */
export function helmMerge(defaults: Values, over: Values): Values {
  const out: Values = { ...defaults };
  for (const [k, v] of Object.entries(over)) {
    const d = out[k];
    if (v === null) delete out[k];
    else if (isMap(v) && isMap(d)) out[k] = helmMerge(d, v);
    else out[k] = v;
  }
  return out;
}

function isMap(v: unknown): v is Values {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * The chart's values.schema.json as helm applies it to the merged values, when the chart ships
 * one (recorded beside its key tree). Formats are annotations only, as in helm's validator.
 */
async function schemaValidator(file: string): Promise<ValidateFunction | null> {
  const url = new URL(`../testdata/charts/${file}.values.schema.json`, import.meta.url);
  let schema: Record<string, unknown>;
  try {
    schema = JSON.parse(await Deno.readTextFile(url));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const options = { strict: false, validateFormats: false, allErrors: true };
  const draft2020 = String(schema.$schema ?? "").includes("2020-12");
  return (draft2020 ? new Ajv2020(options) : new Ajv(options)).compile(schema);
}

async function readDefaults(file: string): Promise<Values> {
  const url = new URL(`../testdata/charts/${file}.defaults.yaml`, import.meta.url);
  return parse(await Deno.readTextFile(url)) ?? {};
}

/** Schema errors of dtk's values merged over the chart's defaults, as `path: message`. */
export function schemaErrors(validate: ValidateFunction, merged: Values): string[] {
  if (validate(merged)) return [];
  return (validate.errors ?? []).map((e) =>
    `${e.instancePath || "/"}: ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ""}`
  );
}

const RENDERS = [
  [defaultTestConfig("/x"), DEFAULT_FACTS],
  [otherTestConfig("/x"), OTHER_FACTS],
] as const;

function renders(name: AddonName) {
  return RENDERS.map(([config, facts]) =>
    renderAddon(name, renderInput(config, facts, name), {
      kubeconfig: "/k",
      chartPath: "/c",
      helmTimeoutMs: 1,
    })
  );
}

Deno.test("every add-on is read against its chart, or skipped with the reason", () => {
  for (const name of ADDONS.keys()) {
    assert.ok((CHARTS[name] === undefined) !== (SKIPPED[name] === undefined), name);
  }
});

for (const name of ADDONS.keys()) {
  const check = CHARTS[name];
  const def = ADDONS.get(name)!;
  Deno.test({
    name: check
      ? `add-on ${name}: values keys exist in its chart, readiness names a chart workload`
      : `add-on ${name}: read against its chart (skipped: ${SKIPPED[name]})`,
    ignore: check === undefined,
    fn: async () => {
      const trees: Record<string, Values> = {};
      for (const [mount, file] of Object.entries(check!.trees)) {
        if (mount === "") {
          // The recorded tree is of the version dtk pins, from a named commit.
          const text = await Deno.readTextFile(
            new URL(`../testdata/charts/${file}.values.yaml`, import.meta.url),
          );
          const pinned = ADDON_CHARTS[name]!.version;
          assert.equal(file, `${name}-${pinned}`);
          assert.match(text, /^# source: [\w.-]+\/[\w.-]+@[0-9a-f]{40}:\S+values\.yaml$/m);
        }
        trees[mount] = await readTree(file);
      }
      const validate = await schemaValidator(check!.trees[""]!);
      const defaults = validate ? await readDefaults(check!.trees[""]!) : {};
      if (validate) {
        assert.deepEqual(schemaErrors(validate, defaults), [], "the chart's own defaults");
      }
      for (const r of renders(name)) {
        if (validate) {
          const errors = schemaErrors(validate, helmMerge(defaults, r.values));
          assert.deepEqual(errors, [], "helm would refuse these values (values.schema.json)");
        }
        assert.deepEqual(unknownKeys(r.values, trees, check!.exceptions), [], "not in the chart");
        assert.deepEqual(shapeMismatches(r.values, trees), [], "list or map in the chart");
        const workloads = check!.workloads(r.values, def.release, def.namespace);
        const checks = r.ready;
        assert.ok(checks.length > 0, "no readiness check");
        assert.deepEqual(unmatchedChecks(checks, workloads), [], "names nothing the chart makes");
        const made = workloads.map((w) => `${w.resource}/${w.name}/${w.namespace}`);
        for (const p of patchedWorkloads(r.after, def.namespace)) assert.ok(made.includes(p), p);
        // A condition wait is on an object dtk applies after helm, never on a guessed name.
        const applied = appliedObjects(r.after);
        for (const c of checks) {
          if (c.kind !== "condition") continue;
          assert.ok(applied.includes(`${c.resource}/${c.name}/${c.namespace ?? ""}`), c.name);
        }
      }
      // Every exception is still used: a stale one would silently accept a key's twin.
      const used = new Set(
        renders(name).flatMap((r) =>
          keyPaths(r.values).map((p) => exceptionFor(check!.exceptions, p.join(".")))
        ),
      );
      for (const key of Object.keys(check!.exceptions)) {
        assert.ok(used.has(key), `unused exception ${key}`);
        // An exact exception for a key the tree has would hide nothing: it is stale.
        if (!key.endsWith(".*")) assert.ok(!inTrees(trees, key.split(".")), `in the tree: ${key}`);
      }
    },
  });
}

// The checks above must be able to fail: the same real records, each with one thing taken away.
Deno.test("a key removed from a recorded tree is reported; a wrong workload is reported", async () => {
  const calico = CHARTS.calico!;
  const tree = await readTree("calico-v3.31.3");
  const values = renders("calico")[0]!.values;
  assert.deepEqual(unknownKeys(values, { "": tree }, calico.exceptions), []);
  const installation = structuredClone(tree.installation) as Values;
  delete installation.kubeletVolumePluginPath;
  assert.deepEqual(unknownKeys(values, { "": { ...tree, installation } }, calico.exceptions), [
    "installation.kubeletVolumePluginPath",
  ]);
  // The finding issue 17 names: Calico's top-level kubeletVolumePluginPath is not a chart key.
  assert.deepEqual(
    unknownKeys({ ...values, kubeletVolumePluginPath: "None" }, { "": tree }, calico.exceptions),
    ["kubeletVolumePluginPath"],
  );
  // Without its free-form exception, a key below an empty map is not accepted.
  const ingress = renders("ingress-nginx")[0]!.values;
  const ingressTree = { "": await readTree("ingress-nginx-4.14.1") };
  assert.deepEqual(unknownKeys(ingress, ingressTree, {}), [
    "controller.config.annotations-risk-level",
  ]);
  // A subchart key is looked up in the subchart's tree.
  const kps = CHARTS["kube-prometheus-stack"]!;
  const kpsTrees = { "": await readTree("kube-prometheus-stack-80.6.0") };
  const kpsValues = renders("kube-prometheus-stack")[0]!.values;
  assert.ok(unknownKeys(kpsValues, kpsTrees, kps.exceptions).length > 0);

  const workloads = calico.workloads(values, "tigera-operator", "tigera-operator");
  const ok = {
    kind: "rollout",
    resource: "daemonset",
    name: "calico-node",
    namespace: "calico-system",
  } as const;
  assert.deepEqual(unmatchedChecks([ok], workloads), []);
  for (
    const wrong of [{ ...ok, name: "calico" }, { ...ok, namespace: "tigera-operator" }, {
      ...ok,
      resource: "deployment" as const,
    }]
  ) {
    assert.deepEqual(unmatchedChecks([wrong], workloads), [wrong]);
  }
  assert.deepEqual(
    unmatchedChecks([{ kind: "deployments", namespace: "calico-system" }], workloads).length,
    1,
  );
  // vcluster with its volume claim off renders a Deployment: a StatefulSet check would hang.
  const off = {
    controlPlane: { statefulSet: { persistence: { volumeClaim: { enabled: false } } } },
  };
  const vc = CHARTS.vcluster!.workloads(off, "vcluster", "vcluster");
  assert.deepEqual(unmatchedChecks(renders("vcluster")[0]!.ready, vc).length, 1);
  // A condition wait is checked against what dtk applies: the Certificate is, a guess is not.
  const applied = appliedObjects(renders("cert-manager")[0]!.after);
  assert.ok(applied.includes("certificate/dtk-selfsigned-ca/cert-manager"), applied.join(" "));
  assert.ok(!applied.includes("certificate/dtk-selfsigned-ca/"));
  assert.ok(
    renders("cert-manager")[0]!.ready.some((c) => c.kind === "condition"),
    "cert-manager waits on a condition",
  );
  // A list where the chart has a list; a string there is reported.
  const vcTree = { "": await readTree("vcluster-0.30.4") };
  const vcValues = renders("vcluster")[0]!.values;
  assert.deepEqual(shapeMismatches(vcValues, vcTree), []);
  const bad = { controlPlane: { proxy: { extraSANs: "10.0.0.1" } } };
  assert.deepEqual(shapeMismatches(bad, vcTree), ["controlPlane.proxy.extraSANs"]);
  // The schema check bites: cert-manager's schema refuses keys it does not know, NGF's refuses
  // a data-plane kind it does not support.
  const cm = (await schemaValidator("cert-manager-v1.19.2"))!;
  const cmDefaults = await readDefaults("cert-manager-v1.19.2");
  assert.deepEqual(schemaErrors(cm, helmMerge(cmDefaults, { crds: { enabled: true } })), []);
  assert.ok(schemaErrors(cm, helmMerge(cmDefaults, { crds: { enable: true } })).length > 0);
  const ngf = (await schemaValidator("nginx-gateway-fabric-2.4.1"))!;
  const ngfDefaults = await readDefaults("nginx-gateway-fabric-2.4.1");
  assert.ok(
    schemaErrors(ngf, helmMerge(ngfDefaults, { nginx: { kind: "statefulSet" } })).length > 0,
  );
  assert.deepEqual(helmMerge({ a: { b: 1, c: 2 }, d: [1] }, { a: { b: null, e: 3 }, d: [2] }), {
    a: { c: 2, e: 3 },
    d: [2],
  });
  // external-dns's sidecar removal patches the Deployment the chart makes.
  const edns = renders("external-dns")[0]!;
  assert.deepEqual(patchedWorkloads(edns.after, "external-dns"), [
    "deployment/external-dns/external-dns",
  ]);
});
