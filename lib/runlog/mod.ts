/**
 * Run logs: `generated/<cluster>/logs/<timestamp>-<command>.log` for every run of
 * `cluster create`, `up`, `down`, `delete` and `install-addon`, written through a redacting sink,
 * with every step and every command; and the redaction shared with `dtk export logs`.
 *
 * ```ts
 * const log = await RunLog.open(join(clusterDir, "logs"), { command: "create", redactor });
 * const runner = new LoggingRunner(ctx.runner, log);
 * ```
 *
 * @module
 */
export {
  type LoggedCommand,
  type LoggedStep,
  LoggingRunner,
  logTimestamp,
  RunLog,
  type RunLogOptions,
  type StepResult,
} from "./_log.ts";
export { clusterRedactor, REDACTED, Redactor, secretFiles, secretValues } from "./_redact.ts";
export {
  criticalPath,
  formatRunSummary,
  type PathStep,
  type PhaseRow,
  phaseRows,
} from "./_summary.ts";
