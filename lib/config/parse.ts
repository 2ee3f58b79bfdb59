/**
 * Parses `config.yaml`: parse with positions, check every key against the schema, fill defaults,
 * then check what the keys mean together. Every problem is collected, each with
 * `file:line:column`, and raised at once as one `ConfigError`.
 *
 * @module
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, Parser } from "yaml";
import defaultText from "../../config.yaml" with { type: "text" };
import { ConfigError, type ConfigIssue, q } from "../errors/mod.ts";
import type {
  AddonConfig,
  AnyVirt,
  Arch,
  Config,
  ConfigSource,
  CplaneComponent,
  Linux,
  VmConfig,
} from "./types.ts";
import { CPLANE_COMPONENTS } from "./types.ts";
import { BUILT_IN_CONFIG } from "./_default_config.ts";
import type { LoadedConfig } from "./load.ts";
import { type Field, SCHEMA } from "./_schema.ts";
import { suggestion } from "./_suggest.ts";
import { nthSubnet24 } from "./_net.ts";
import { validateSemantics } from "./_validate.ts";

/** The embedded default `config.yaml`. */
export const DEFAULT_CONFIG_TEXT: string = defaultText;

export interface ParseOptions {
  file: string;
  /** Folder of the config: where `dtk.lock` and `generated/` go. */
  dir: string;
  builtIn?: boolean;
  /** Accept the test-only driver (`virt: test-nspawn`). Default: `DTK_TEST_DRIVERS=1`. */
  allowTestDrivers?: boolean;
}

interface Pos {
  line: number;
  column: number;
}

type YNode = unknown;

/** Collects issues and the position of every key path while decoding. */
class Decoder {
  readonly issues: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];
  readonly #positions = new Map<string, Pos>();
  readonly #counter: LineCounter;
  readonly #file: string;
  readonly #allowHidden: boolean;

  constructor(file: string, counter: LineCounter, allowHidden: boolean) {
    this.#file = file;
    this.#counter = counter;
    this.#allowHidden = allowHidden;
  }

  at(offset: number | undefined): Pos {
    if (offset === undefined) return { line: 1, column: 1 };
    const { line, col } = this.#counter.linePos(offset);
    return { line, column: col };
  }

  mark(path: string, node: YNode): void {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    if (range) this.#positions.set(path, this.at(range[0]));
  }

  /** Position of a path, or of its closest ancestor that has one. */
  position(path: string): Pos {
    let current = path;
    while (current !== "") {
      const found = this.#positions.get(current);
      if (found) return found;
      const cut = Math.max(current.lastIndexOf("."), current.lastIndexOf("["));
      current = cut <= 0 ? "" : current.slice(0, cut);
    }
    return this.#positions.get("") ?? { line: 1, column: 1 };
  }

  issue(path: string, message: string, hint?: string): void {
    const pos = this.position(path);
    this.issues.push({ file: this.#file, ...pos, path, message, ...(hint ? { hint } : {}) });
  }

  warn(path: string, message: string, hint?: string): void {
    const pos = this.position(path);
    this.warnings.push({ file: this.#file, ...pos, path, message, ...(hint ? { hint } : {}) });
  }

  issueAt(pos: Pos, path: string, message: string, hint?: string): void {
    this.issues.push({ file: this.#file, ...pos, path, message, ...(hint ? { hint } : {}) });
  }

  decodeMap(
    node: YNode,
    fields: Readonly<Record<string, Field>>,
    path: string,
  ): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const values = new Map<string, YNode>();
    if (node !== undefined && !isNullScalar(node)) {
      if (!isMap(node)) {
        this.issue(path, `${label(path)} must be a map of keys, found ${describe(node)}`);
      } else {
        const known = Object.entries(fields).filter(([, f]) =>
          !(f.kind === "any" && !this.#allowHidden)
        ).map(([k]) => k);
        for (const pair of node.items) {
          const keyNode = pair.key;
          const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
          const keyPath = path === "" ? key : `${path}.${key}`;
          this.mark(keyPath, keyNode);
          if (!known.includes(key)) {
            if (LEGACY_KEYS.has(keyPath)) {
              this.warn(keyPath, `Key ${q(keyPath)} is ignored: dtk never writes into the config`);
              continue;
            }
            this.issue(
              keyPath,
              `Unknown key ${q(key)}${path === "" ? "" : ` in ${q(path)}`}`,
              suggestion(key, known),
            );
            continue;
          }
          // Scalars point at the value; maps and lists at their key, which is easier to find.
          if (isScalar(pair.value)) this.mark(keyPath, pair.value);
          values.set(key, pair.value);
        }
      }
    }
    for (const [key, field] of Object.entries(fields)) {
      const keyPath = path === "" ? key : `${path}.${key}`;
      out[key] = this.decodeField(values.get(key), field, keyPath);
    }
    return out;
  }

  decodeField(node: YNode, field: Field, path: string): unknown {
    const empty = node === undefined || node === null || isNullScalar(node);
    switch (field.kind) {
      case "map":
        return this.decodeMap(empty ? undefined : node, field.fields, path);
      case "any":
        return empty ? undefined : (node as { toJSON(): unknown }).toJSON();
      case "list": {
        if (empty) return undefined;
        if (!isSeq(node)) {
          this.issue(path, `${label(path)} must be a list, found ${describe(node)}`);
          return undefined;
        }
        return node.items.map((item, i) => {
          const itemPath = `${path}[${i}]`;
          this.mark(itemPath, item);
          return this.decodeMap(item, field.item.fields, itemPath);
        });
      }
      case "strings": {
        if (empty) return [...field.default];
        if (!isSeq(node)) {
          this.issue(path, `${label(path)} must be a list of strings, found ${describe(node)}`);
          return [...field.default];
        }
        const out: string[] = [];
        node.items.forEach((item, i) => {
          this.mark(`${path}[${i}]`, item);
          if (isScalar(item) && typeof item.value === "string" && item.value !== "") {
            out.push(item.value);
          } else {
            this.issue(`${path}[${i}]`, `${label(path)} entries must be strings`);
          }
        });
        return out;
      }
      case "bool": {
        if (empty) return field.default;
        if (isScalar(node)) {
          if (typeof node.value === "boolean") return node.value;
          if (typeof node.value === "string") {
            const lower = node.value.toLowerCase();
            if (["yes", "on", "true"].includes(lower)) return true;
            if (["no", "off", "false"].includes(lower)) return false;
          }
        }
        this.issue(path, `${label(path)} must be true or false, found ${describe(node)}`);
        return field.default;
      }
      case "int": {
        if (empty) return field.default;
        if (isScalar(node) && typeof node.value === "number" && Number.isInteger(node.value)) {
          if (node.value < field.min || node.value > field.max) {
            this.issue(
              path,
              `${label(path)} must be between ${field.min} and ${field.max}, found ${node.value}`,
            );
            return field.default;
          }
          return node.value;
        }
        this.issue(path, `${label(path)} must be a whole number, found ${describe(node)}`);
        return field.default;
      }
      case "string": {
        if (empty) return field.default;
        let value: string | undefined;
        if (isScalar(node)) {
          if (typeof node.value === "string") value = node.value;
          else if (typeof node.value === "number" && field.numeric) {
            value = String(node.source ?? node.value);
          }
        }
        if (value === undefined && isSeq(node) && path === "k8s.containerized-cplane") {
          value = node.items.map((i) => isScalar(i) ? String(i.value) : "?").join(",");
        }
        if (value === undefined) {
          this.issue(path, `${label(path)} must be a string, found ${describe(node)}`);
          return field.default;
        }
        if (field.enum) {
          const aliased = field.aliases?.[value] ?? value;
          if (field.enum.includes(aliased)) return aliased;
          if (this.#allowHidden && field.hidden?.includes(value)) return value;
          this.issue(
            path,
            `${label(path)} must be one of ${field.enum.map((v) => q(v)).join(", ")}, found ${
              q(value)
            }`,
            suggestion(value, [...field.enum, ...Object.keys(field.aliases ?? {})]),
          );
          return field.default;
        }
        return value;
      }
    }
  }
}

/** Keys the original writes into the config; accepted and ignored with a warning. */
const LEGACY_KEYS = new Set(["cluster.admin-kubeconfig", "cluster.priv-key"]);

function isNullScalar(node: YNode): boolean {
  return isScalar(node) && (node.value === null || node.value === undefined);
}

function label(path: string): string {
  return q(path);
}

function describe(node: YNode): string {
  if (isMap(node)) return "a map";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === "string") return `the string ${q(v)}`;
    if (typeof v === "number") return `the number ${node.source ?? v}`;
    if (typeof v === "boolean") return `the boolean ${v}`;
    return String(v);
  }
  return "nothing";
}

/** Parses and validates config text. Throws one `ConfigError` with every problem found. */
export function parseConfig(text: string, options: ParseOptions): LoadedConfig {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  const allowHidden = options.allowTestDrivers ?? Deno.env.get("DTK_TEST_DRIVERS") === "1";
  const decoder = new Decoder(options.file, counter, allowHidden);
  const openers = doc.errors.length > 0 ? unclosedOpeners(text) : [];
  for (const error of doc.errors) {
    // The parser notices an unclosed "[", "{" or quote only where the file (or the block)
    // ends: the place to fix is where it opened.
    const kind = /^Flow sequence/.test(error.message)
      ? "["
      : /^Flow map/.test(error.message)
      ? "{"
      : /^Missing closing "quote/.test(error.message)
      ? '"'
      : /^Missing closing 'quote/.test(error.message)
      ? "'"
      : undefined;
    const opener = kind === undefined ? -1 : openers.findIndex((o) => o.char === kind);
    if (opener >= 0) {
      const { offset, char } = openers.splice(opener, 1)[0]!;
      const close = char === "[" ? "]" : char === "{" ? "}" : char;
      decoder.issueAt(
        decoder.at(offset),
        "",
        `Invalid YAML: this ${q(char)} is never closed`,
        char === "[" || char === "{"
          ? `Close it with ${q(close)} (a plain value that starts with ${q(char)} must be quoted)`
          : "End the value with the same quote",
      );
      continue;
    }
    const pos = decoder.at(error.pos[0]);
    const duplicate = error.code === "DUPLICATE_KEY";
    decoder.issueAt(
      pos,
      "",
      duplicate ? "Duplicate key: a key may appear only once in a map" : yamlMessage(error.message),
      duplicate ? "Remove or merge one of the two entries" : "Fix the YAML syntax",
    );
  }
  if (decoder.issues.length > 0) {
    throw new ConfigError(
      [...decoder.issues].sort((a, b) => a.line - b.line || a.column - b.column),
    );
  }
  decoder.mark("", doc.contents);
  const raw = decoder.decodeMap(doc.contents ?? undefined, SCHEMA, "");
  const source: ConfigSource = {
    file: options.file,
    dir: options.dir,
    builtIn: options.builtIn ?? false,
  };
  const config = toConfig(raw, source, decoder);
  // Keys that failed their type check hold defaults now: report nothing more about them.
  const failed = new Set(decoder.issues.map((i) => i.path));
  validateSemantics(config, {
    issue: (path, message, hint) => {
      if (!failed.has(path)) decoder.issue(path, message, hint);
    },
    warn: (path, message, hint) => decoder.warn(path, message, hint),
  });
  if (decoder.issues.length > 0) {
    const sorted = [...decoder.issues].sort((a, b) => a.line - b.line || a.column - b.column);
    throw new ConfigError(sorted);
  }
  return { config, warnings: decoder.warnings };
}

/**
 * Flow collections and quoted scalars that never close, innermost first, from the YAML CST:
 * where the `[`, `{` or quote that needs closing is.
 */
function unclosedOpeners(text: string): { offset: number; char: string }[] {
  const found: { offset: number; char: string; depth: number }[] = [];
  const walk = (node: unknown, depth: number): void => {
    if (node === null || typeof node !== "object") return;
    const token = node as {
      type?: string;
      offset?: number;
      source?: string;
      start?: { source?: string; offset?: number };
      end?: { source?: string }[];
    };
    if (token.type === "flow-collection" && token.start?.offset !== undefined) {
      const open = token.start.source ?? "";
      const close = open === "[" ? "]" : "}";
      if (!(token.end ?? []).some((t) => t.source === close)) {
        found.push({ offset: token.start.offset, char: open, depth });
      }
    }
    if (
      (token.type === "double-quoted-scalar" || token.type === "single-quoted-scalar") &&
      token.offset !== undefined
    ) {
      const quote = token.type === "double-quoted-scalar" ? '"' : "'";
      const source = token.source ?? "";
      if (source.length < 2 || !source.endsWith(quote)) {
        found.push({ offset: token.offset, char: quote, depth });
      }
    }
    for (const value of Object.values(node)) {
      if (Array.isArray(value)) { for (const v of value) walk(v, depth + 1); }
      else if (value !== null && typeof value === "object") walk(value, depth + 1);
    }
  };
  for (const token of new Parser().parse(text)) walk(token, 0);
  return found.sort((a, b) => b.depth - a.depth || b.offset - a.offset);
}

function yamlMessage(message: string): string {
  const first = message.split("\n")[0] ?? message;
  const clean = first.replace(/ at line \d+, column \d+:?$/, "").replace(/\.$/, "");
  return `Invalid YAML: ${clean.charAt(0).toLowerCase()}${clean.slice(1)}`;
}

function builtInLists(): { addons: AddonConfig[]; vms: VmConfig[] } {
  return { addons: BUILT_IN_CONFIG.config.addons, vms: BUILT_IN_CONFIG.config.vms };
}

type Raw = Record<string, unknown>;

function str(raw: Raw, key: string): string {
  return raw[key] as string;
}

function optStr(raw: Raw, key: string): string | undefined {
  const value = raw[key];
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

function toConfig(raw: Raw, source: ConfigSource, decoder: Decoder): Config {
  const cluster = raw["cluster"] as Raw;
  const k8s = raw["k8s"] as Raw;
  const mirror = k8s["containerd-mirror"] as Raw;
  const versions = raw["versions"] as Raw;
  const kvm = raw["kvm"] as Raw;
  const vbox = raw["vbox"] as Raw;
  const vm = raw["vm"] as Raw;
  const dns = raw["dns"] as Raw;
  const store = raw["store"] as Raw;
  const clusterCidr = str(k8s, "cluster-cidr");

  const rawAddons = raw["addons"] as Raw[] | undefined;
  const addons: AddonConfig[] = rawAddons === undefined
    ? builtInLists().addons.map((a) => ({ ...a }))
    : rawAddons.map((a, i) => {
      const name = optStr(a, "name");
      if (name === undefined) decoder.issue(`addons[${i}]`, `"addons[${i}]" has no name`);
      return {
        name: name ?? "",
        enabled: a["enabled"] as boolean,
        sslPassthrough: a["ssl-passthrough"] as boolean,
        chartVersion: optStr(a, "chart-version"),
      };
    });

  const rawVms = raw["vms"] as Raw[] | undefined;
  const vms: VmConfig[] = rawVms === undefined
    ? builtInLists().vms.map((v) => ({ ...v }))
    : rawVms.map((v, i) => {
      const name = optStr(v, "name");
      if (name === undefined) decoder.issue(`vms[${i}]`, `"vms[${i}]" has no name`);
      return {
        name: name ?? "",
        cpu: v["cpu"] as number,
        mem: v["mem"] as number,
        ip: (v["ip"] as number | undefined) ?? 200 + i,
        disk: v["disk"] as number | undefined,
        podCidr: optStr(v, "pod-cidr") ?? nthSubnet24(clusterCidr, i) ?? "",
      };
    });

  const cplaneText = optStr(k8s, "containerized-cplane") ?? "";
  const containerizedCplane: CplaneComponent[] = [];
  if (cplaneText === "all") containerizedCplane.push(...CPLANE_COMPONENTS);
  else if (cplaneText !== "") {
    for (const part of cplaneText.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
      if ((CPLANE_COMPONENTS as readonly string[]).includes(part)) {
        if (!containerizedCplane.includes(part as CplaneComponent)) {
          containerizedCplane.push(part as CplaneComponent);
        }
      } else {
        decoder.issue(
          "k8s.containerized-cplane",
          `Unknown control-plane component ${q(part)} in "k8s.containerized-cplane"`,
          suggestion(part, ["all", ...CPLANE_COMPONENTS]),
        );
      }
    }
  }

  return {
    cluster: { name: str(cluster, "name") },
    virt: raw["virt"] as AnyVirt,
    arch: raw["arch"] as Arch,
    addons,
    k8s: {
      containerizedCplane,
      clusterCidr,
      clusterDns: str(k8s, "cluster-dns"),
      serviceCidr: str(k8s, "service-cidr"),
      clusterDomain: str(k8s, "cluster-domain"),
      kubeProxy: k8s["kube-proxy"] as boolean,
      containerdMirror: {
        enabled: mirror["enabled"] as boolean,
        name: str(mirror, "name"),
        config: str(mirror, "config"),
      },
      auditPolicy: optStr(k8s, "audit-policy") === undefined ? undefined : str(k8s, "audit-policy"),
      runtimeConfig: optStr(k8s, "runtime-config"),
      resolvConf: str(k8s, "resolv-conf"),
    },
    versions: {
      kubernetes: str(versions, "kubernetes"),
      etcd: str(versions, "etcd"),
      containerd: str(versions, "containerd"),
      runc: str(versions, "runc"),
      crictl: str(versions, "crictl"),
      cniPlugins: str(versions, "cni-plugins"),
      guestAdditions: str(versions, "guest-additions"),
    },
    kvm: {
      network: str(kvm, "network") as "nat" | "user",
      libvirtNetwork: str(kvm, "libvirt-network"),
      uri: str(kvm, "uri"),
      accel: str(kvm, "accel") as "kvm" | "tcg",
      kickstart: str(kvm, "kickstart"),
      osVariant: str(kvm, "os-variant"),
    },
    vbox: {
      hostNetworkInterface: optStr(vbox, "host-network-interface"),
      hostOnlyNetwork: optStr(vbox, "host-only-network") ??
        (optStr(vbox, "host-network-interface") === undefined ? "192.168.56" : undefined),
      kickstart: str(vbox, "kickstart"),
      vboxdir: optStr(vbox, "vboxdir"),
    },
    vm: {
      linux: str(vm, "linux") as Linux,
      createTemplate: vm["create-template"] as boolean,
      templateVmname: str(vm, "template-vmname"),
      templateSource: str(vm, "template-source") as "kickstart" | "cloud-image",
    },
    dns: {
      domain: str(dns, "domain"),
      hostIp: optStr(dns, "host-ip"),
      webhookPort: dns["webhook-port"] as number,
    },
    store: { path: optStr(store, "path"), mirrors: store["mirrors"] as string[] },
    vms,
    testNspawn: raw["test-nspawn"] as Record<string, unknown> | undefined,
    source,
  };
}
