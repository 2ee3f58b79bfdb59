/**
 * What every e2e test of a whole dtk cluster on harness nodes shares: the test entry of dtk and
 * why the test cannot run here, if it cannot.
 *
 * @module
 */
import { k8sStatus, nodeSupport } from "../harness/mod.ts";

/** dtk with the test-only nspawn driver registered (`tests/harness/dtk.ts`). */
export const DTK_TEST_MAIN = new URL("../harness/dtk.ts", import.meta.url).pathname;

/** The reason the cluster e2e tests skip (not asked for, no nodes, no Kubernetes build), or undefined. */
export function clusterSkipReason(): string | undefined {
  if (Deno.env.get("DTK_E2E") !== "1") return "set DTK_E2E=1 (deno task e2e)";
  const support = nodeSupport();
  if (!support.ok) return support.reason;
  const k8s = k8sStatus();
  return k8s.ok ? undefined : k8s.reason;
}
