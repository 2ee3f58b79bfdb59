/**
 * Run by the sweepStale self-test as a separate process: starts one node, prints its state
 * folder and nspawn PID, then waits to be SIGKILLed, so its nodes become leftovers.
 *
 * @module
 */
import { startNodes } from "./nodes.ts";

const nodes = await startNodes(1, { names: ["stale1"] });
const pids = await nodes.driver.pids("stale1");
console.log(
  JSON.stringify({ stateDir: nodes.driver.stateDir, pids, snapshot: await nodes.snapshot() }),
);
// Never returns on its own: the parent kills this process with SIGKILL.
await new Promise(() => setTimeout(() => {}, 600_000));
