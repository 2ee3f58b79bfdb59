/** `dtk certs list|check|generate`: the cluster's certificates, keys and kubeconfigs. */
import { type Command, Option } from "commander";
import { DtkError, q, UsageError } from "../errors/mod.ts";
import { table } from "../ui/mod.ts";
import { exists } from "../fs/mod.ts";
import type { NodeIp } from "../pki/mod.ts";
import { pkiLayout } from "../paths/mod.ts";

// The X.509 code loads only when a certs command runs: other commands start faster.
const pki = () => import("../pki/mod.ts");
import type { CliContext, GlobalOptions } from "./context.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

function parseNodeIp(value: string, previous: NodeIp[] | undefined): NodeIp[] {
  const match = value.match(/^([^=\s]+)=(\S+)$/);
  if (!match) {
    throw new UsageError(`Option --node-ip wants NAME=IP, got ${q(value)}`, {
      hint: "Example: --node-ip vm1=192.168.122.10",
    });
  }
  return [...(previous ?? []), { name: match[1]!, ip: match[2]! }];
}

function parseDays(value: string): number {
  const days = Number(value);
  if (!Number.isFinite(days) || days < 0) {
    throw new UsageError(`Option --renew-before wants a number of days, got ${q(value)}`);
  }
  return days;
}

function expiry(notAfter: Date, now: Date): string {
  const days = Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
  const date = notAfter.toISOString().slice(0, 10);
  return days < 0 ? `${date} (expired)` : `${date} (${days}d)`;
}

/** Puts the config's VM order on the given addresses so users may list them in any order. */
function orderNodes(vms: readonly { name: string }[], nodes: readonly NodeIp[]): NodeIp[] {
  const rank = new Map(vms.map((vm, i) => [vm.name, i]));
  return [...nodes].sort((a, b) => (rank.get(a.name) ?? 1e9) - (rank.get(b.name) ?? 1e9));
}

export function registerCertsCommands(program: Command, ctx: CliContext): void {
  const certs = program
    .command("certs")
    .description("List, check or make the cluster's certificates, keys and kubeconfigs");

  certs
    .command("list")
    .description("Show every certificate of the cluster: subject, SANs, expiry")
    .action(async function (this: Command) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const config = await ctx.loadConfig(globals);
      const { certs: list, errors } = await (await pki()).listCerts(config);
      if (globals.json) {
        ctx.out.data(JSON.stringify({ certs: list, errors }, null, 2));
        return;
      }
      if (list.length === 0 && errors.length === 0) {
        throw new DtkError(
          `No certificates for cluster ${q(config.cluster.name)} in ${q(pkiLayout(config).root)}`,
          { hint: "They are made by: dtk cluster create (or dtk certs generate --node-ip …)" },
        );
      }
      const now = new Date();
      ctx.out.data(table(
        ["FILE", "SUBJECT", "SANS", "USAGE", "EXPIRES"],
        list.map((c) => [
          c.file,
          c.subject,
          [...c.dnsNames, ...c.ipAddresses].join(",") || "-",
          c.isCa ? "CA" : c.extendedKeyUsage.join(",") || "-",
          expiry(c.notAfter, now),
        ]),
      ));
      for (const e of errors) ctx.out.warn(`${e.file}: ${e.problem}`);
    });

  certs
    .command("check")
    .description("Verify every file against the cluster CA and the config; exit 1 on any problem")
    .addOption(
      new Option(
        "--node-ip <name=ip>",
        "A node's real address (repeat per VM); default: read from the kubelet certificates",
      )
        .argParser(parseNodeIp),
    )
    .addOption(
      new Option("--renew-before <days>", "Report certificates expiring within this many days")
        .argParser(parseDays).default(30),
    )
    .action(async function (this: Command, options: { nodeIp?: NodeIp[]; renewBefore: number }) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const config = await ctx.loadConfig(globals);
      const root = pkiLayout(config).root;
      if (!(await exists(root))) {
        throw new DtkError(`No certificates for cluster ${q(config.cluster.name)} in ${q(root)}`, {
          hint: "They are made by: dtk cluster create (or dtk certs generate --node-ip …)",
        });
      }
      const result = await (await pki()).checkPki(config, {
        nodes: options.nodeIp ? orderNodes(config.vms, options.nodeIp) : undefined,
        renewBeforeDays: options.renewBefore,
      });
      if (globals.json) {
        ctx.out.data(JSON.stringify(result, null, 2));
      } else {
        if (result.nodesInferred) {
          ctx.out.info(
            `Node addresses read from the kubelet certificates: ${
              result.nodes.map((n) => `${n.name}=${n.ip}`).join(" ")
            } (pass --node-ip to check against the real ones)`,
          );
        }
        if (result.problems.length > 0) {
          ctx.out.data(table(["FILE", "PROBLEM"], result.problems.map((p) => [p.file, p.problem])));
        }
      }
      if (result.problems.length > 0) {
        const n = result.problems.length;
        throw new DtkError(`Certificate check found ${n} problem${n === 1 ? "" : "s"}`, {
          hint: "Run dtk cluster create again to replace what is missing or wrong",
        });
      }
      if (!globals.json) {
        ctx.out.success(`${result.ok.length} files verified for cluster ${q(config.cluster.name)}`);
      }
    });

  certs
    .command("generate")
    .description("Make what is missing and replace what is wrong (cluster create does this)")
    .addOption(
      new Option("--node-ip <name=ip>", "A node's address, once per VM of the config")
        .argParser(parseNodeIp).makeOptionMandatory(),
    )
    .action(async function (this: Command, options: { nodeIp: NodeIp[] }) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const config = await ctx.loadConfig(globals);
      const result = await (await pki()).ensurePki(config, orderNodes(config.vms, options.nodeIp));
      const changed = result.files.filter((f) => f.action !== "kept");
      if (globals.json) {
        ctx.out.data(JSON.stringify({ root: result.layout.root, files: result.files }, null, 2));
        return;
      }
      for (const f of changed) {
        ctx.out.info(`${f.action.padEnd(10)} ${f.file}${f.reason ? `: ${f.reason}` : ""}`);
      }
      ctx.out.success(
        `${changed.length} of ${result.files.length} files written in ${q(result.layout.root)}`,
      );
    });
}
