/**
 * The host-side external-dns webhook (the original's `hostsfile-server.py`): external-dns in the
 * cluster calls it with the host names of Ingresses and routes, and it points those of the
 * managed domains at the controller in a hosts file on the desktop.
 *
 * Endpoints are the original's: GET `/`, `/records`, `/domains`, `/clusterip`; POST `/records`,
 * `/adjustendpoints`, `/domains`, `/clusterip`. Because it edits `/etc/hosts`, it lets no one
 * else in (the original listened on `0.0.0.0` with no authentication and `Access-Control-Allow-
 * Origin: *`, so any host on the network or any web page could rewrite the hosts file):
 *
 * - it listens where the cluster reaches it (the caller picks: `dns.host-ip`, the VM network's
 *   host address, else loopback), never on every interface unless asked;
 * - every request carries the cluster's random token (`generated/<cluster>/dns-webhook.token`),
 *   as `Authorization: Bearer <token>` or as the password of HTTP Basic (external-dns's client
 *   sends no headers of its own, so the token rides in the URL it is given, from a Secret);
 * - no CORS headers; a body must be of the webhook media type (415 otherwise), at most
 *   `maxBodyBytes` (413, checked while it streams in);
 * - managed domains must be domain names of two labels or more;
 * - it writes only inside its own marked block of the hosts file (see `_hosts.ts`);
 * - names are escaped when logged, so a name cannot forge a log line;
 * - shutdown is bounded: bodies still arriving are cut off.
 *
 * Fixed from the original besides: a batch with an unmanaged name is still applied for its
 * managed names; `evildtk.io` is not in domain `dtk.io`; the hosts file is replaced atomically;
 * names that are not host names are never written.
 *
 * @module
 */
import { join } from "node:path";
import { DtkError, escapeText, q } from "../errors/mod.ts";
import { writeSecretAtomic } from "../fs/mod.ts";
import {
  applyEndpoints,
  domainProblem,
  type Endpoint,
  type HostsChange,
  normalizeName,
  writeHostsFile,
} from "./_hosts.ts";

export {
  applyEndpoints,
  domainProblem,
  type Endpoint,
  hostsBlockBegin,
  hostsBlockEnd,
  type HostsChange,
  type HostsEdit,
  isManaged,
  isValidHostName,
  writeHostsFile,
} from "./_hosts.ts";

/** The media type of the external-dns webhook protocol, exactly as external-dns checks it. */
export const WEBHOOK_MEDIA_TYPE = "application/external.dns.webhook+json;version=1";

export const DEFAULT_WEBHOOK_PORT = 5000;

/** 20,000 endpoints as external-dns sends them are about 4 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** How long shutdown waits for requests in flight before it cuts them off. */
export const SHUTDOWN_GRACE_MS = 500;

/** The user name dtk puts in the URL it gives external-dns; only the password is checked. */
export const WEBHOOK_USER = "dtk";

export interface DnsWebhookOptions {
  /** The cluster's token: every request must carry it. */
  token: string;
  /** Names the hosts-file block, so the webhooks of two clusters never edit each other's. */
  cluster?: string;
  /** The hosts file to edit. Default `/etc/hosts`. */
  hostsFile?: string;
  /** Address to listen on. Default `127.0.0.1`. */
  hostname?: string;
  /** Default 5000; 0 picks a free port. */
  port?: number;
  /** The controller's address, written for every managed name. Also set by POST `/clusterip`. */
  clusterIp?: string;
  /** Managed domains, each checked by `domainProblem`. Also added to by POST `/domains`. */
  domains?: string[];
  /** Largest request body taken. Default `DEFAULT_MAX_BODY_BYTES`. */
  maxBodyBytes?: number;
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
  /** Stops within about a second: requests still sending their body are cut off. */
  shutdown(): Promise<void>;
}

/** `generated/<cluster>/dns-webhook.token`. */
export function webhookTokenPath(clusterDir: string): string {
  return join(clusterDir, "dns-webhook.token");
}

const TOKEN = /^[0-9a-f]{64}$/;

/**
 * The cluster's webhook token, made (32 random bytes, hex, 0600) when there is none yet. Both
 * `dtk dns-webhook` and the external-dns installer call it, whichever runs first makes it.
 */
export async function ensureWebhookToken(clusterDir: string): Promise<string> {
  const path = webhookTokenPath(clusterDir);
  try {
    // A link, FIFO or device there is not dtk's token (and a FIFO would block the read).
    const info = await Deno.lstat(path);
    if (!info.isFile || info.size > 1024) {
      throw new DtkError(`The DNS webhook token ${q(path)} is not a small regular file`, {
        hint: "Remove it; dtk makes a new one",
      });
    }
    const text = (await Deno.readTextFile(path)).trim();
    if (!TOKEN.test(text)) {
      throw new DtkError(`The DNS webhook token ${q(path)} is not 64 hex digits`, {
        hint: "Remove it; dtk makes a new one (then reinstall external-dns: dtk install-addon " +
          "external-dns)",
      });
    }
    return text;
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new DtkError(`Cannot read the DNS webhook token ${q(path)}`, {
        cause: error,
        hint: "It belongs to another user (made by sudo dtk dns-webhook?): chown it to yourself",
      });
    }
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const token = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  await writeSecretAtomic(path, `${token}\n`);
  return token;
}

/** The URL external-dns is given: the token as the password of HTTP Basic. Secret. */
export function webhookUrlWithToken(url: string, token: string): string {
  const u = new URL(url);
  u.username = WEBHOOK_USER;
  u.password = token;
  return u.href.replace(/\/$/, "");
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:]+$/;

function isIp(text: string): boolean {
  return IPV4.test(text) || (text.includes(":") && IPV6.test(text));
}

function splitDomains(text: string): string[] {
  return text.split(/[,\s]+/).map(normalizeName).filter((d) => d !== "");
}

/**
 * At most this many managed domains: every name of a batch is checked against each of them, so
 * an unbounded list would make a batch quadratic.
 */
export const MAX_DOMAINS = 64;

/**
 * Why a list of domains is refused, or undefined; `known` are those managed already. Exported
 * for `dtk dns-webhook --domains`.
 */
export function domainsProblem(text: string, known: readonly string[] = []): string | undefined {
  const domains = splitDomains(text);
  if (domains.length === 0) return "No domain data provided";
  if (new Set([...known, ...domains]).size > MAX_DOMAINS) {
    return `Too many managed domains: at most ${MAX_DOMAINS}`;
  }
  for (const d of domains) {
    const problem = domainProblem(d);
    if (problem !== undefined) return `Not a managed domain: ${q(d)} (${problem})`;
  }
  return undefined;
}

/** A body that is JSON is decoded; anything else is taken as text (the original's rule). */
function decodeBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Compares in time independent of where the strings differ. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < y.length; i++) diff |= (x[i] ?? 0) ^ y[i]!;
  return diff === 0;
}

/** The token a request carries: `Bearer <token>`, or the password of `Basic`. */
function presentedToken(header: string | null): string | undefined {
  if (header === null) return undefined;
  const [scheme, value] = header.trim().split(/\s+/, 2);
  if (value === undefined) return undefined;
  if (scheme!.toLowerCase() === "bearer") return value;
  if (scheme!.toLowerCase() !== "basic") return undefined;
  try {
    const bytes = Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
    const decoded = new TextDecoder().decode(bytes);
    const colon = decoded.indexOf(":");
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  } catch {
    return undefined;
  }
}

/** True for the webhook media type, parameters in any order and case, `charset=utf-8` allowed. */
export function isWebhookMediaType(value: string | null): boolean {
  if (value === null) return false;
  const [type, ...params] = value.toLowerCase().split(";").map((p) => p.trim());
  if (type !== "application/external.dns.webhook+json") return false;
  const rest = params.filter((p) => p !== "" && p !== "charset=utf-8");
  return rest.length === 1 && rest[0]!.replace(/\s/g, "") === "version=1";
}

class BodyTooLarge extends Error {}
class BodyCancelled extends Error {}

class Webhook {
  readonly #token: string;
  readonly #cluster: string;
  readonly #hostsFile: string;
  readonly #maxBody: number;
  readonly #dryRun: boolean;
  readonly #debug: boolean;
  readonly #log: (text: string) => void;
  #clusterIp: string;
  #domains: string[];
  #records: Endpoint[] = [];
  /** Edits of the hosts file run one after the other. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Bodies being read, cancelled at shutdown. */
  readonly #reading = new Set<ReadableStreamDefaultReader<Uint8Array>>();
  #closing = false;

  constructor(options: DnsWebhookOptions) {
    if (options.token.length < 16) {
      throw new DtkError("The DNS webhook needs a token of at least 16 characters", {
        hint: "dtk dns-webhook makes one per cluster in generated/<cluster>/dns-webhook.token",
      });
    }
    this.#token = options.token;
    this.#cluster = options.cluster ?? "dtk";
    this.#hostsFile = options.hostsFile ?? "/etc/hosts";
    this.#maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.#dryRun = options.dryRun ?? false;
    this.#debug = options.debug ?? false;
    this.#log = options.log ?? (() => {});
    this.#clusterIp = options.clusterIp ?? "";
    this.#domains = [];
    for (const d of options.domains ?? []) {
      const problem = domainsProblem(d, this.#domains);
      if (problem !== undefined) throw new DtkError(problem, { hint: "Give domains like dtk.io" });
      this.#addDomains(d);
    }
  }

  state(): DnsWebhookState {
    return { clusterIp: this.#clusterIp, domains: [...this.#domains], records: [...this.#records] };
  }

  /** Refuses new requests and cuts off the bodies still arriving. */
  close(): void {
    this.#closing = true;
    for (const reader of this.#reading) reader.cancel().catch(() => {});
  }

  #addDomains(text: string): void {
    this.#domains = [...new Set([...this.#domains, ...splitDomains(text)])];
  }

  #json(status: number, data: unknown, extra: Record<string, string> = {}): Response {
    return new Response(JSON.stringify(data), {
      status,
      headers: { "content-type": WEBHOOK_MEDIA_TYPE, "vary": "Content-Type", ...extra },
    });
  }

  #empty(status: number): Response {
    return new Response(null, {
      status,
      headers: { "content-type": WEBHOOK_MEDIA_TYPE, "vary": "Content-Type" },
    });
  }

  /** The body as text, read chunk by chunk so that an oversized one is never held whole. */
  async #body(request: Request): Promise<string> {
    const declared = Number(request.headers.get("content-length") ?? "0");
    if (declared > this.#maxBody) throw new BodyTooLarge();
    if (request.body === null) return "";
    const reader = request.body.getReader();
    this.#reading.add(reader);
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (this.#closing) throw new BodyCancelled();
        if (done) break;
        size += value.byteLength;
        if (size > this.#maxBody) {
          await reader.cancel().catch(() => {});
          throw new BodyTooLarge();
        }
        chunks.push(value);
      }
    } finally {
      this.#reading.delete(reader);
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
    return new TextDecoder().decode(bytes);
  }

  async handle(request: Request): Promise<Response> {
    if (this.#closing) return this.#json(503, { error: "Shutting down" });
    const path = new URL(request.url).pathname;
    if (this.#debug) this.#log(`${escapeText(request.method)} ${q(path)}`);
    const token = presentedToken(request.headers.get("authorization"));
    if (token === undefined || !sameSecret(token, this.#token)) {
      if (request.headers.has("authorization")) {
        this.#log(`refused ${escapeText(request.method)} ${q(path)}: wrong token`);
      }
      await request.body?.cancel().catch(() => {});
      return this.#json(401, { error: "Unauthorized" }, {
        "www-authenticate": 'Bearer realm="dtk dns-webhook"',
      });
    }
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
      return this.#json(404, { error: "Not Found" });
    }
    if (request.method !== "POST") {
      await request.body?.cancel().catch(() => {});
      return this.#json(405, { error: "Method Not Allowed" }, { allow: "GET, POST" });
    }
    if (path === "/records") {
      // Changes are applied through /adjustendpoints; external-dns wants 204 here. The body is
      // never read, so its type does not matter (older external-dns sends none on this call).
      await request.body?.cancel().catch(() => {});
      return this.#empty(204);
    }
    // The body's type; external-dns before v0.20 sent its POSTs with only `Accept` set to it.
    const type = request.headers.get("content-type") ?? request.headers.get("accept");
    if (!isWebhookMediaType(type)) {
      await request.body?.cancel().catch(() => {});
      return this.#json(415, { error: `Content-Type must be ${WEBHOOK_MEDIA_TYPE}` });
    }
    let text: string;
    try {
      text = await this.#body(request);
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        this.#log(`refused POST ${q(path)}: body over ${this.#maxBody} bytes`);
        return this.#json(413, { error: `Body over ${this.#maxBody} bytes` });
      }
      if (error instanceof BodyCancelled) return this.#json(503, { error: "Shutting down" });
      throw error;
    }
    switch (path) {
      case "/adjustendpoints":
        return await this.#adjust(text);
      case "/domains": {
        const body = decodeBody(text);
        const value = Array.isArray(body)
          ? body.filter((d) => typeof d === "string").join(",")
          : typeof body === "string"
          ? body
          : "";
        const problem = domainsProblem(value, this.#domains);
        if (problem !== undefined) {
          this.#log(`refused POST "/domains": ${problem}`);
          return this.#json(400, { error: problem });
        }
        this.#addDomains(value);
        this.#log(`managed domains: ${this.#domains.map(q).join(", ")}`);
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
    if (this.#debug) {
      for (const e of endpoints) this.#log(`record: ${escapeText(JSON.stringify(e))}`);
    }
    if (this.#clusterIp === "") {
      this.#log("no cluster IP yet (POST /clusterip): hosts file not changed");
      return this.#json(200, []);
    }
    const run = this.#queue.then(() => this.#edit(endpoints));
    this.#queue = run.catch(() => {});
    try {
      await run;
    } catch (error) {
      const message = escapeText((error as Error).message);
      this.#log(`cannot update ${q(this.#hostsFile)}: ${message}`);
      return this.#json(500, { error: `Cannot update the hosts file: ${message}` });
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
      cluster: this.#cluster,
    });
    let skipped = 0;
    for (const change of edit.changes) {
      if (change.action === "skipped") {
        // One line per skipped name would let a batch of 20,000 bad names flood the log.
        if (++skipped <= 20 || this.#debug) {
          this.#log(`skipped ${q(change.name)}: ${change.reason}`);
        }
      } else if (change.action !== "unchanged" || this.#debug) {
        this.#log(
          `${change.action} ${this.#clusterIp} ${q(change.name)}${
            this.#dryRun ? " (dry run)" : ""
          }`,
        );
      }
    }
    if (skipped > 20 && !this.#debug) this.#log(`skipped ${skipped - 20} more names`);
    const changed = edit.changes.some((c) => c.action === "added" || c.action === "updated");
    if (changed && !this.#dryRun) await writeHostsFile(this.#hostsFile, edit.text);
    return edit.changes;
  }
}

/** True for an address that listens on every interface. */
export function isWildcardAddress(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::" || hostname === "[::]" || hostname === "";
}

/** Starts the webhook server; resolves once it listens. */
export function startDnsWebhook(options: DnsWebhookOptions): Promise<DnsWebhookServer> {
  let webhook: Webhook;
  try {
    webhook = new Webhook(options);
  } catch (error) {
    return Promise.reject(error);
  }
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? DEFAULT_WEBHOOK_PORT;
  const internal = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port,
      signal: internal.signal,
      // Deno prints "Listening on" otherwise; the command says it itself.
      onListen: () => {},
      onError: (error) => {
        options.log?.(`request failed: ${escapeText((error as Error).message)}`);
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
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      // Graceful first: a request being handled gets to answer. Then bodies still dripping in
      // are cut off, so a slow or stuck client never holds the process.
      internal.abort();
      const grace = new Promise<void>((r) => setTimeout(r, SHUTDOWN_GRACE_MS));
      const done = server.finished.then(() => true);
      if (!await Promise.race([done, grace.then(() => false)])) {
        webhook.close();
        await Promise.race([done, new Promise<void>((r) => setTimeout(r, SHUTDOWN_GRACE_MS))]);
      }
    })();
    return stopping;
  };
  if (options.signal?.aborted) void shutdown();
  options.signal?.addEventListener("abort", () => void shutdown(), { once: true });
  const finished = new Promise<void>((resolve) => {
    server.finished.then(resolve);
    // The stop is bounded even if Deno still waits on a connection: the caller may exit then.
    options.signal?.addEventListener("abort", () => shutdown().then(resolve), { once: true });
  });
  return Promise.resolve({
    hostname: server.addr.hostname,
    port: server.addr.port,
    state: () => webhook.state(),
    finished,
    shutdown: () => shutdown(),
  });
}
