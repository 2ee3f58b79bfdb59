/**
 * Test certificates made with `openssl` (independent of dtk's own PKI, so tests of that PKI have
 * an outside oracle): a CA, and ECDSA P-256 leaf certs with IP/DNS SANs.
 *
 * @module
 */
import { join } from "node:path";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestCa extends CertFiles {
  dir: string;
  /** Issues `<name>.pem` / `<name>-key.pem` signed by this CA. */
  issue(name: string, options: IssueOptions): Promise<CertFiles>;
}

export interface IssueOptions {
  cn: string;
  /** Subject O (Kubernetes group). */
  o?: string;
  ips?: string[];
  dns?: string[];
  /** Default both. */
  usage?: "server" | "client" | "both";
}

/** Makes a CA in `dir` (`<name>.pem`, `<name>-key.pem`). */
export async function makeTestCa(
  dir: string,
  options: { name?: string; cn?: string; runner?: Runner } = {},
): Promise<TestCa> {
  const runner = options.runner ?? new LocalRunner();
  const name = options.name ?? "ca";
  await Deno.mkdir(dir, { recursive: true });
  const key = join(dir, `${name}-key.pem`);
  const cert = join(dir, `${name}.pem`);
  await runner.run([
    "openssl",
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    key,
  ]);
  await Deno.chmod(key, 0o600);
  await runner.run([
    "openssl",
    "req",
    "-x509",
    "-new",
    "-key",
    key,
    "-sha256",
    "-days",
    "2",
    "-subj",
    `/CN=${options.cn ?? "dtk-test-ca"}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    cert,
  ]);
  const ca: TestCa = {
    dir,
    cert,
    key,
    issue: async (leaf, issue) => {
      const leafKey = join(dir, `${leaf}-key.pem`);
      const leafCert = join(dir, `${leaf}.pem`);
      const csr = join(dir, `${leaf}.csr`);
      const ext = join(dir, `${leaf}.ext`);
      await runner.run([
        "openssl",
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        leafKey,
      ]);
      await Deno.chmod(leafKey, 0o600);
      const subject = `/CN=${issue.cn}` + (issue.o ? `/O=${issue.o}` : "");
      await runner.run(["openssl", "req", "-new", "-key", leafKey, "-subj", subject, "-out", csr]);
      const usage = issue.usage ?? "both";
      const eku = usage === "server"
        ? "serverAuth"
        : usage === "client"
        ? "clientAuth"
        : "serverAuth,clientAuth";
      const sans = [
        ...(issue.ips ?? []).map((ip) => `IP:${ip}`),
        ...(issue.dns ?? []).map((d) => `DNS:${d}`),
      ];
      await Deno.writeTextFile(
        ext,
        [
          "basicConstraints=critical,CA:FALSE",
          "keyUsage=critical,digitalSignature,keyEncipherment",
          `extendedKeyUsage=${eku}`,
          ...(sans.length > 0 ? [`subjectAltName=${sans.join(",")}`] : []),
        ].join("\n") + "\n",
      );
      await runner.run([
        "openssl",
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        cert,
        "-CAkey",
        key,
        // A random serial, not -CAcreateserial: concurrent issues would race on the .srl file.
        "-set_serial",
        `0x${
          Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
            b.toString(16).padStart(2, "0")).join("")
        }`,
        "-days",
        "2",
        "-sha256",
        "-extfile",
        ext,
        "-out",
        leafCert,
      ]);
      await Deno.remove(csr);
      await Deno.remove(ext);
      return { cert: leafCert, key: leafKey };
    },
  };
  return ca;
}
