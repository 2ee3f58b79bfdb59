/**
 * Reading version numbers out of what host tools print, and comparing them. Tools print their
 * version in a dozen formats; each extractor accepts every format the supported releases print.
 *
 * @module
 */

/**
 * The numeric parts of a version: `9.2p1` → `[9, 2, 1]`, `v1.32.4-dispatcher` → `[1, 32, 4]`,
 * `7.0.18r162988` → `[7, 0, 18]`. `undefined` when the text does not start with a number.
 */
export function parseVersion(text: string): number[] | undefined {
  const match = /^v?(\d+(?:\.\d+)*)(?:p(\d+))?/.exec(text.trim());
  if (!match?.[1]) return undefined;
  const parts = match[1].split(".").map(Number);
  // OpenSSH's portable release number orders after the base version: 9.2p1 < 9.2p2 < 9.3.
  if (match[2] !== undefined) parts.push(Number(match[2]));
  return parts;
}

/** Negative, zero or positive as `a` is older, equal or newer than `b`; missing parts are 0. */
export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Whether `found` is at least `minimum` (both as printed, e.g. `9.2p1` and `7.6`). */
export function versionAtLeast(found: string, minimum: string): boolean {
  const f = parseVersion(found);
  const m = parseVersion(minimum);
  if (!f || !m) return false;
  return compareVersions(f, m) >= 0;
}

/** `ssh -V` (on stderr): `OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL 3.0.19 27 Jan 2026` → `9.2p1`. */
export function sshVersion(output: string): string | undefined {
  return /OpenSSH_(\d+\.\d+(?:\.\d+)?(?:p\d+)?)/.exec(output)?.[1];
}

/**
 * `kubectl version --client`, every format since 1.24:
 * - 1.24–1.27: a deprecation `WARNING:` line, then
 *   `Client Version: version.Info{Major:"1", Minor:"27", GitVersion:"v1.27.4", …}`;
 * - 1.28+: `Client Version: v1.35.0` then `Kustomize Version: v5.7.1`.
 */
export function kubectlVersion(output: string): string | undefined {
  const info = /Client Version: version\.Info\{[^}]*GitVersion:"v?([^"]+)"/.exec(output);
  if (info?.[1]) return info[1];
  return /Client Version:\s*v?(\d+\.\d+\.\d+\S*)/.exec(output)?.[1];
}

/** `helm version --short`: `v3.14.4+g81c902a` or `v4.1.1+g5caf004` → `3.14.4`. */
export function helmVersion(output: string): string | undefined {
  return /(?:^|\s)v?(\d+\.\d+\.\d+)/m.exec(output)?.[1];
}

/** `qemu-img --version`: `qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)` → `7.2.22`. */
export function qemuImgVersion(output: string): string | undefined {
  return /qemu-img version (\d+\.\d+(?:\.\d+)?)/.exec(output)?.[1];
}

/** `virsh --version`, `virt-install --version`, `virt-clone --version`: a bare `9.0.0`. */
export function bareVersion(output: string): string | undefined {
  for (const line of output.split("\n")) {
    const match = /^\s*(\d+\.\d+(?:\.\d+)?)\s*$/.exec(line);
    if (match?.[1]) return match[1];
  }
  return undefined;
}

/**
 * `VBoxManage --version`: `7.0.18r162988`, `7.0.16_Ubuntur162802`, `7.1.6_Debianr167084`. When
 * the vboxdrv module is missing, warning lines come first; the version is the last line.
 */
export function vboxVersion(output: string): string | undefined {
  const lines = output.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] ?? "";
    if (/^\d+\.\d+\.\d+\S*$/.test(line)) return line;
  }
  return undefined;
}

/** `major.minor` of a Kubernetes version (`v1.35.0`, `1.35`), or undefined. */
export function minorOf(version: string): [number, number] | undefined {
  const parts = parseVersion(version);
  if (!parts || parts.length < 2) return undefined;
  return [parts[0] ?? 0, parts[1] ?? 0];
}

/** `major.minor` of a kernel release (`6.18.44-fc-v782`, `6.8.0-51-generic`). */
export function kernelVersion(release: string): [number, number] | undefined {
  return minorOf(release);
}
