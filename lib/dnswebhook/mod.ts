/**
 * The host-side external-dns webhook (the original's `hostsfile-server.py`): external-dns in the
 * cluster calls it with the host names of Ingresses and routes, and it points those of the
 * managed domains at the controller in a hosts file on the desktop.
 *
 * Endpoints and media type are the original's: GET `/`, `/records`, `/domains`, `/clusterip`;
 * POST `/records`, `/adjustendpoints`, `/domains`, `/clusterip`. Fixed: a batch with an
 * unmanaged name is still applied for its managed names (the original returned at the first
 * unmanaged one without writing anything); `evildtk.io` is not in domain `dtk.io`; the hosts
 * file is replaced atomically; names that are not host names are never written.
 *
 * @module
 */
import { DtkError, q } from "../errors/mod.ts";
import {
  applyEndpoints,
  type Endpoint,
  type HostsChange,
  normalizeName,
  writeHostsFile,
} from "./_hosts.ts";

export {
  applyEndpoints,
  type Endpoint,
  type HostsChange,
  type HostsEdit,
  isManaged,
  isValidHostName,
  writeHostsFile,
} from "./_hosts.ts";

/** The media type of the external-dns webhook protocol, exactly as external-dns checks it. */
export const WEBHOOK_MEDIA_TYPE = "application/external.dns.webhook+json;version=1";

export const DEFAULT_WEBHOOK_PORT = 5000;

export interface DnsWebhookOptions {
  /** The hosts file to edit. Default `/etc/hosts`. */
  hostsFile?: string;
  /** Address to listen on. Default `0.0.0.0` (the guests must reach it). */
  hostname?: string;
  /** Default 5000; 0 picks a free port. */
  port?: number;
  /** The controller's address, written for every managed name. Also set by POST `/clusterip`. */
  clusterIp?: string;
  /** Managed domains. Also added to by POST `/domains`. */
  domains?: string[];
  /** Log the changes, write nothing. */
  dryRun?: boolean;
  /** Log every request and record. */
  debug?: boolean;
  log?: (text: string) => void;
  signal?: AbortSignal;
}

export interface DnsWebhookState {
  clusterIp: string;
  domains: string[];
  records: Endpoint[];
}

export interface DnsWebhookServer {
  hostname: string;
  port: number;
  state(): DnsWebhookState;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:]+$/;

function isIp(text: string): boolean {
  return IPV4.test(text) || (text.includes(":") && IPV6.test(text));
}

function splitDomains(text: string): string[] {
  return text.split(/[,\s]+/).map(normalizeName).filter((d) => d !== "");
}

/** A body that is JSON is decoded; anything else is taken as text (the original's rule). */
function decodeBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

class Webhook {
  readonly #hostsFile: string;
  readonly #dryRun: boolean;
  readonly #debug: boolean;
  readonly #log: (text: string) => void;
  #clusterIp: string;
  #domains: string[];
  #records: Endpoint[] = [];
  /** Edits of the hosts file run one after the other. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: DnsWebhookOptions) {
    this.#hostsFile = options.hostsFile ?? "/etc/hosts";
    this.#dryRun = options.dryRun ?? false;
    this.#debug = options.debug ?? false;
    this.#log = options.log ?? (() => {});
    this.#clusterIp = options.clusterIp ?? "";
    this.#domains = [];
    for (const d of options.domains ?? []) this.#addDomains(d);
  }

  state(): DnsWebhookState {
    return { clusterIp: this.#clusterIp, domains: [...this.#domains], records: [...this.#records] };
  }

  #addDomains(text: string): void {
    for (const d of splitDomains(text)) if (!this.#domains.includes(d)) this.#domains.push(d);
  }

  #json(status: number, data: unknown): Response {
    return new Response(JSON.stringify(data), { status, headers: this.#headers() });
  }

  #empty(status: number): Response {
    return new Response(null, { status, headers: this.#headers() });
  }

  #headers(): Headers {
    return new Headers({
      "content-type": WEBHOOK_MEDIA_TYPE,
      "vary": "Content-Type",
      "access-control-allow-origin": "*",
      "access-control-allow-methods": "GET, POST, OPTIONS",
      "access-control-allow-headers": "Content-Type",
    });
  }

  async handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (this.#debug) this.#log(`${request.method} ${path}`);
    if (request.method === "OPTIONS") return this.#empty(204);
    if (request.method === "GET") {
      switch (path) {
        case "/":
          // `include` is external-dns's own domain filter; `domains` is the original's key.
          return this.#json(200, { domains: this.#domains, include: this.#domains });
        case "/records":
          return this.#json(200, this.#records);
        case "/domains":
          return this.#json(200, this.#domains);
        case "/clusterip":
          return this.#json(200, this.#clusterIp);
      }
    } else if (request.method === "POST") {
      const text = await request.text();
      switch (path) {
        case "/records":
          // Changes are applied through /adjustendpoints; external-dns wants 204 here.
          return this.#empty(204);
        case "/adjustendpoints":
          return await this.#adjust(text);
        case "/domains": {
          const body = decodeBody(text);
          const value = Array.isArray(body) ? body.join(",") : typeof body === "string" ? body : "";
          if (splitDomains(value).length === 0) {
            return this.#json(400, { error: "No domain data provided" });
          }
          this.#addDomains(value);
          this.#log(`managed domains: ${this.#domains.join(", ")}`);
          return this.#empty(200);
        }
        case "/clusterip": {
          const body = decodeBody(text);
          const ip = typeof body === "string" ? body.trim() : "";
          if (ip === "") return this.#json(400, { error: "No cluster ip data provided" });
          if (!isIp(ip)) return this.#json(400, { error: `Not an IP address: ${q(ip)}` });
          this.#clusterIp = ip;
          this.#log(`cluster IP: ${ip}`);
          return this.#empty(200);
        }
      }
    } else {
      return this.#json(405, { error: "Method Not Allowed" });
    }
    return this.#json(404, { error: "Not Found" });
  }

  async #adjust(text: string): Promise<Response> {
    if (text.trim() === "") return this.#json(200, []);
    const body = decodeBody(text);
    if (!Array.isArray(body)) {
      return this.#json(400, { error: "Expected a JSON array of endpoints" });
    }
    const endpoints = body.filter((e): e is Endpoint =>
      e !== null && typeof e === "object" && typeof (e as Endpoint).dnsName === "string"
    );
    this.#records = endpoints;
    if (this.#debug) { for (const e of endpoints) this.#log(`record: ${JSON.stringify(e)}`); }
    if (this.#clusterIp === "") {
      this.#log("no cluster IP yet (POST /clusterip): hosts file not changed");
      return this.#json(200, []);
    }
    const run = this.#queue.then(() => this.#edit(endpoints));
    this.#queue = run.catch(() => {});
    try {
      await run;
    } catch (error) {
      this.#log(`cannot update ${this.#hostsFile}: ${(error as Error).message}`);
      return this.#json(500, {
        error: `Cannot update the hosts file: ${(error as Error).message}`,
      });
    }
    // The original answers with an empty list: nothing for external-dns to create itself.
    return this.#json(200, []);
  }

  async #edit(endpoints: Endpoint[]): Promise<HostsChange[]> {
    let current = "";
    try {
      current = await Deno.readTextFile(this.#hostsFile);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const edit = applyEndpoints(current, endpoints, {
      ip: this.#clusterIp,
      domains: this.#domains,
    });
    for (const change of edit.changes) {
      if (change.action === "skipped") {
        this.#log(`skipped ${change.name}: ${change.reason}`);
      } else if (change.action !== "unchanged" || this.#debug) {
        this.#log(
          `${change.action} ${this.#clusterIp} ${change.name}${this.#dryRun ? " (dry run)" : ""}`,
        );
      }
    }
    const changed = edit.changes.some((c) => c.action === "added" || c.action === "updated");
    if (changed && !this.#dryRun) await writeHostsFile(this.#hostsFile, edit.text);
    return edit.changes;
  }
}

/** Starts the webhook server; resolves once it listens. */
export function startDnsWebhook(options: DnsWebhookOptions = {}): Promise<DnsWebhookServer> {
  const webhook = new Webhook(options);
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? DEFAULT_WEBHOOK_PORT;
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port,
      signal: options.signal,
      // Deno prints "Listening on" otherwise; the command says it itself.
      onListen: () => {},
      onError: (error) => {
        options.log?.(`request failed: ${(error as Error).message}`);
        return new Response(JSON.stringify({ error: "Internal Server Error" }), {
          status: 500,
          headers: { "content-type": WEBHOOK_MEDIA_TYPE },
        });
      },
    }, (request) => webhook.handle(request));
  } catch (error) {
    const inUse = error instanceof Deno.errors.AddrInUse;
    return Promise.reject(
      new DtkError(
        inUse
          ? `Port ${port} on ${q(hostname)} is in use`
          : `Cannot listen on ${q(`${hostname}:${port}`)}`,
        {
          cause: error,
          hint: inUse ? "Stop the other server, or pick another port with --port" : undefined,
        },
      ),
    );
  }
  return Promise.resolve({
    hostname: server.addr.hostname,
    port: server.addr.port,
    state: () => webhook.state(),
    finished: server.finished,
    shutdown: () => server.shutdown(),
  });
}
