/**
 * Which image URLs the server may fetch. Fetching a client-supplied URL is a security boundary: without these
 * checks a client could make the server read its own loopback services, the private network, or the cloud
 * metadata endpoint (169.254.169.254). Host names are resolved here and every address is checked; the caller
 * then connects to the checked address, so a second DNS answer cannot slip in between.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Host name -> addresses; replaceable in tests. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const found = await lookup(hostname, { all: true, verbatim: true });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export class UrlPolicyError extends Error {
  override readonly name = 'UrlPolicyError';
}

interface Range {
  bytes: number[];
  prefix: number;
  label: string;
}

function v4(text: string, prefix: number, label: string): Range {
  return { bytes: text.split('.').map(Number), prefix, label };
}

function v6(text: string, prefix: number, label: string): Range {
  return { bytes: [...parseIpv6(text)!], prefix, label };
}

const BLOCKED_V4: readonly Range[] = [
  v4('0.0.0.0', 8, 'unspecified ("this network")'),
  v4('10.0.0.0', 8, 'private'),
  v4('100.64.0.0', 10, 'carrier-grade NAT (shared)'),
  v4('127.0.0.0', 8, 'loopback'),
  v4('169.254.0.0', 16, 'link-local (includes cloud metadata)'),
  v4('172.16.0.0', 12, 'private'),
  v4('192.0.0.0', 24, 'IETF protocol assignments'),
  v4('192.0.2.0', 24, 'documentation'),
  v4('192.88.99.0', 24, '6to4 relay anycast'),
  v4('192.168.0.0', 16, 'private'),
  v4('198.18.0.0', 15, 'benchmarking'),
  v4('198.51.100.0', 24, 'documentation'),
  v4('203.0.113.0', 24, 'documentation'),
  v4('224.0.0.0', 4, 'multicast'),
  v4('240.0.0.0', 4, 'reserved (includes broadcast)'),
];

/** IPv6 blocks named for clearer messages; everything outside 2000::/3 is refused anyway. */
const BLOCKED_V6: readonly Range[] = [
  v6('::', 128, 'unspecified'),
  v6('::1', 128, 'loopback'),
  v6('64:ff9b:1::', 48, 'local-use NAT64'),
  v6('100::', 64, 'discard-only'),
  v6('2001::', 23, 'IETF protocol assignments (includes Teredo)'),
  v6('2001:db8::', 32, 'documentation'),
  v6('3fff::', 20, 'documentation'),
  v6('fc00::', 7, 'unique local (private)'),
  v6('fe80::', 10, 'link-local'),
  v6('fec0::', 10, 'site-local (deprecated)'),
  v6('ff00::', 8, 'multicast'),
];
const NAT64 = v6('64:ff9b::', 96, 'NAT64');
const SIX_TO_FOUR = v6('2002::', 16, '6to4');

function inRange(bytes: Uint8Array, r: Range): boolean {
  if (bytes.length !== r.bytes.length) return false;
  let bits = r.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (r.bytes[i]! & mask)) return false;
  }
  return true;
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return null;
  return new Uint8Array(parts.map(Number));
}

/** 16 bytes of an IPv6 address in any textual form (with `::`, an embedded dotted quad), or null. */
export function parseIpv6(text: string): Uint8Array | null {
  if (isIP(text) !== 6) return null;
  let head = text;
  const tail: number[] = [];
  const quad = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const b = parseIpv4(quad[1]!);
    if (!b) return null;
    tail.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
    head = text.slice(0, quad.index + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const l = groups(left);
  const r = groups(right);
  const missing = 8 - tail.length - l.length - r.length;
  if (missing < 0 || (right === undefined && missing !== 0)) return null;
  const words = [...l, ...new Array<number>(right === undefined ? 0 : missing).fill(0), ...r, ...tail];
  if (words.length !== 8 || words.some((w) => !(w >= 0 && w <= 0xffff))) return null;
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

function ipv4Text(b: Uint8Array): string {
  return Array.from(b).join('.');
}

function blockedV4(b: Uint8Array): string | null {
  return BLOCKED_V4.find((r) => inRange(b, r))?.label ?? null;
}

function blockedV6(b: Uint8Array): string | null {
  const embedded = (what: string, at: number): string | null => {
    const inner = b.subarray(at, at + 4);
    const why = blockedV4(inner);
    return why ? `${what} form of ${ipv4Text(inner)}, which is ${why}` : null;
  };
  const zeros = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  // ::ffff:a.b.c.d (mapped) and ::ffff:0:a.b.c.d (translated) reach the IPv4 address itself.
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return embedded('IPv4-mapped', 12);
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && zeros(10, 12)) return embedded('IPv4-translated', 12);
  const named = BLOCKED_V6.find((r) => inRange(b, r));
  if (named) return named.label;
  if (zeros(0, 12)) return 'IPv4-compatible (deprecated)';
  // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that the traffic ends up at.
  if (inRange(b, NAT64)) return embedded('NAT64', 12);
  if (inRange(b, SIX_TO_FOUR)) return embedded('6to4', 2);
  if ((b[0]! & 0xe0) !== 0x20) return 'not global unicast (outside 2000::/3)';
  return null;
}

/**
 * Why an IP address must not be fetched from (e.g. 'loopback'), or null for a public address.
 * Throws for text that is not an IP address.
 */
export function blockedAddressReason(address: string): string | null {
  const bare = address.replace(/^\[|\]$/g, '');
  if (bare.includes('%')) return 'scoped (zone) address';
  const b4 = parseIpv4(bare);
  if (b4) return blockedV4(b4);
  const b6 = parseIpv6(bare);
  if (b6) return blockedV6(b6);
  throw new UrlPolicyError(`not an IP address: ${address}`);
}

export interface UrlPolicy {
  /** Skip the address checks (for tests and trusted networks); schemes are still checked. */
  allowPrivate: boolean;
  resolver: Resolver;
}

/** Parses and checks the parts of a URL that need no DNS: scheme, credentials. */
export function checkUrlSyntax(url: string | URL): URL {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : url;
  } catch {
    throw new UrlPolicyError('invalid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UrlPolicyError(`URL scheme ${u.protocol} is not allowed (use http or https)`);
  if (u.username || u.password) throw new UrlPolicyError('URLs with credentials are not allowed');
  if (!u.hostname) throw new UrlPolicyError('URL has no host');
  return u;
}

/**
 * Resolves the URL's host and checks every address it has. Returns the address to connect to.
 * A host with any forbidden address is refused, so a mixed answer cannot be used to reach one.
 */
export async function resolveAllowedAddress(url: URL, policy: UrlPolicy): Promise<ResolvedAddress> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: ResolvedAddress[];
  const literal = isIP(host);
  if (literal) {
    addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await policy.resolver(host);
    } catch (e) {
      throw new UrlPolicyError(`cannot resolve ${host}: ${(e as { code?: string }).code ?? (e as Error).message}`);
    }
    if (addresses.length === 0) throw new UrlPolicyError(`cannot resolve ${host}: no addresses`);
  }
  if (!policy.allowPrivate) {
    for (const a of addresses) {
      const why = blockedAddressReason(a.address);
      if (why) throw new UrlPolicyError(`image URL host ${host} resolves to ${a.address} (${why}); such addresses are not fetched`);
    }
  }
  return addresses[0]!;
}
