/**
 * Just enough IP address handling for certificates: parse, canonicalise, and the first host of a
 * CIDR (the `kubernetes` Service IP).
 *
 * @module
 */

/** The 4 or 16 bytes of an IPv4 or IPv6 address, or `undefined` when `text` is not one. */
export function parseIp(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (const [i, part] of parts.entries()) {
    // Leading zeros are refused because some parsers read them as octal.
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string | undefined): number[] | undefined => {
    if (half === undefined || half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (const [i, part] of parts.entries()) {
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const rest = groups(halves[1]);
  if (!head || !rest) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 1 ? 0 : missing).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

/** Formats 4 or 16 bytes the canonical way (RFC 5952 for IPv6). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // The longest run of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** The canonical text of an IP address, or `undefined` when `text` is not one. */
export function canonicalIp(text: string): string | undefined {
  const bytes = parseIp(text);
  return bytes ? formatIp(bytes) : undefined;
}

/**
 * The first host address of a CIDR (`10.32.0.0/24` → `10.32.0.1`), which Kubernetes gives to the
 * `kubernetes` Service. `undefined` when the text is not a CIDR with room for a host.
 */
export function firstHostIp(cidr: string): string | undefined {
  const [address, prefixText, ...extra] = cidr.trim().split("/");
  if (address === undefined || prefixText === undefined || extra.length > 0) return undefined;
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const bytes = parseIp(address);
  if (!bytes) return undefined;
  const prefix = Number(prefixText);
  const bits = bytes.length * 8;
  if (prefix > bits - 1) return undefined;
  const network = new Uint8Array(bytes);
  for (let bit = prefix; bit < bits; bit++) {
    network[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  // Adding one to the network address: carry from the last byte.
  for (let i = network.length - 1; i >= 0; i--) {
    network[i] = (network[i]! + 1) & 0xff;
    if (network[i] !== 0) break;
  }
  return formatIp(network);
}
