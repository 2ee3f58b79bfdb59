/**
 * Recording fakes of virsh, virt-install, virt-clone, qemu-img and VBoxManage: small scripts in
 * `fakes/` that append their argv to a log and keep VM state in a temp folder. The runner here
 * resolves those tool names to the fakes (as a `PATH` in front would), through the real
 * `LocalRunner`, so the drivers run exactly as they do against the real tools.
 *
 * @module
 */
import { join } from "node:path";
import { LocalRunner, type Runner, type RunOptions, type RunResult } from "../../lib/exec/mod.ts";

const FAKES = join(import.meta.dirname!, "fakes");
const TOOLS = new Set(["virsh", "virt-install", "virt-clone", "qemu-img", "VBoxManage"]);

export interface FakeHost {
  runner: Runner;
  state: string;
  /** Knobs read by the fakes (`FAKE_IP_AFTER`, `FAKE_LOCKED`, …); change them between calls. */
  env: Record<string, string>;
  /** Every call so far, as argv arrays (tool name first). */
  calls(): Promise<string[][]>;
  /** Forgets the calls so far. */
  reset(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function fakeHost(): Promise<FakeHost> {
  const state = await Deno.makeTempDir({ prefix: "dtk-fake-" });
  const env: Record<string, string> = {};
  const local = new LocalRunner();
  const runner: Runner = {
    run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
      const [tool, ...rest] = argv;
      const program = tool !== undefined && TOOLS.has(tool) ? join(FAKES, tool) : tool!;
      return local.run([program, ...rest], {
        ...options,
        env: {
          ...options.env,
          ...env,
          FAKE_STATE: state,
          PATH: `${FAKES}:${Deno.env.get("PATH")}`,
        },
      });
    },
  };
  const log = join(state, "calls.log");
  return {
    runner,
    state,
    env,
    calls: async () => {
      const text = await Deno.readTextFile(log).catch(() => "");
      return text.split("\n").filter((l) => l !== "").map((l) => l.split("\x1f"));
    },
    reset: () => Deno.writeTextFile(log, ""),
    cleanup: () => Deno.remove(state, { recursive: true }),
  };
}
