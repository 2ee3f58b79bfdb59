/**
 * Test entry for the store's integration tests: the real `main.ts`, run as a subprocess.
 *
 * @module
 */
import { main } from "../../main.ts";

Deno.exit(await main(Deno.args));
