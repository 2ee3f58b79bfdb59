/** One measured figure of `deno task bench`. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** What it is compared with, e.g. `openssl dgst -sha256: 1.31 GiB/s`. */
  reference?: string;
  /** value / reference value, measured in the same run (higher is better unless `goal` says). */
  ratio?: number;
  /** The goal, e.g. `>= 0.95x openssl`. */
  goal?: string;
}
