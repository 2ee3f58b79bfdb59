/** IPv4 address and CIDR arithmetic for config validation. */

/** Parses a dotted IPv4 address to a 32-bit unsigned number, or `undefined`. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

export interface Cidr {
  /** Network address. */
  base: number;
  prefix: number;
  /** Number of addresses. */
  size: number;
}

/** Parses `a.b.c.d/n`; `undefined` when malformed. Host bits must be zero (`strict`). */
export function parseCidr(text: string): Cidr | undefined {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text);
  if (!match) return undefined;
  const base = parseIpv4(match[1] ?? "");
  const prefix = Number(match[2]);
  if (base === undefined || prefix > 32) return undefined;
  return { base, prefix, size: 2 ** (32 - prefix) };
}

/** True when the host bits of the CIDR's address are zero. */
export function isNetworkAddress(cidr: Cidr): boolean {
  return cidr.base % cidr.size === 0;
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.base >= outer.base && inner.base + inner.size <= outer.base + outer.size;
}

export function cidrContainsIp(cidr: Cidr, ip: number): boolean {
  return ip >= cidr.base && ip < cidr.base + cidr.size;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.base)}/${cidr.prefix}`;
}

/** The `index`-th address of a CIDR (0 = the network address). */
export function nthIp(cidr: Cidr, index: number): string {
  return formatIpv4(cidr.base + index);
}

/** The first usable address of a CIDR, e.g. the `kubernetes` Service IP of the service CIDR. */
export function firstIp(cidrText: string): string {
  const cidr = parseCidr(cidrText);
  if (!cidr) throw new TypeError(`Not a CIDR: ${cidrText}`);
  return nthIp(cidr, 1);
}

/** The `index`-th /24 inside a CIDR of prefix ≤ 24 (the default per-node pod CIDR). */
export function nthSubnet24(cidrText: string, index: number): string | undefined {
  const cidr = parseCidr(cidrText);
  if (!cidr || cidr.prefix > 24) return undefined;
  const base = cidr.base - (cidr.base % cidr.size) + index * 256;
  if (base + 256 > cidr.base + cidr.size) return undefined;
  return `${formatIpv4(base)}/24`;
}
