/**
 * dtk with the test-only `test-nspawn` driver registered: the entry the end-to-end tests run
 * instead of `main.ts`. dtk itself never imports `tests/`, so the driver reaches it only this way.
 *
 * @module
 */
import { main } from "../../main.ts";
import { createNspawnDriver } from "./nspawn_driver.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args, { testDriver: createNspawnDriver }));
}
