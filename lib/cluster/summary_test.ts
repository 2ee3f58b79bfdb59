import assert from "node:assert/strict";
import { defaultConfig } from "../config/mod.ts";
import { type CreateReport, formatCreateSummary } from "./create.ts";

Deno.test("create summary: the export line pastes as it is, whatever the project path", () => {
  const kubeconfig = "/home/u/my project's $HOME/generated/dtk/kubeconfig/admin.kubeconfig";
  const report = {
    kubeconfig,
    elapsedMs: 1000,
    ran: [],
    skipped: [],
    phases: [],
  } as unknown as CreateReport;
  const text = formatCreateSummary(report, defaultConfig({ dir: "/x" }));
  assert.ok(
    text.includes(`  export KUBECONFIG='${kubeconfig.replaceAll("'", `'\\''`)}'\n`),
    text,
  );
});
