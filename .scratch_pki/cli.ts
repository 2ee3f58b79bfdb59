import { buildProgram } from "../lib/cli/mod.ts";
import { registerCertsCommands } from "../lib/cli/certs.ts";
import { loadConfig } from "../lib/config/mod.ts";
import { Output } from "../lib/ui/mod.ts";
import { LocalRunner } from "../lib/exec/mod.ts";
import { renderError } from "../lib/cli/mod.ts";
const ctx = { runner: new LocalRunner(), out: Output.fromEnv(), cwd: Deno.cwd(), env: (n: string) => Deno.env.get(n),
  async loadConfig(g: { config?: string }) { return (await loadConfig({ path: g.config, cwd: this.cwd })).config; } };
const program = buildProgram(ctx);
registerCertsCommands(program as never, ctx);
try { await program.parseAsync(Deno.args, { from: "user" }); } catch (e) { const r = renderError(e, ctx.out); ctx.out.error(r.text); Deno.exit(r.exitCode); }
