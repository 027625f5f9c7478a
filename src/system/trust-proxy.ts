/**
 * `TRUST_PROXY`: which peers' `X-Forwarded-For` is believed, and how much of the address space
 * such a list may cover. Pure: config.ts turns its errors into configuration errors.
 */
import { isIP } from 'node:net';

export class TrustProxyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustProxyError';
  }
}

/**
 * `TRUST_PROXY`: unset or `false`, or a comma-separated list of the trusted proxies' IP
 * addresses and CIDR ranges. Neither `true` nor a hop count is accepted: both believe the
 * header from whoever connects, so any client that reaches the server directly (another pod,
 * say) could name its own address and slip past the rate limit. A /0 range is refused too,
 * and so is a list that covers too much of the address space (see refuseWideTrust).
 * Prefixes are decimal lengths only: proxy-addr also reads IPv4 netmasks
 * (`10.0.0.0/255.0.0.0`), but nothing this function does not parse is passed on to it.
 */
export function parseTrustProxy(raw: string | undefined): false | readonly string[] {
  if (raw === undefined || raw.trim() === '' || raw.trim().toLowerCase() === 'false') return false;
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  const valid = (entry: string) => {
    const [address, prefix, extra] = entry.split('/');
    const family = isIP(address ?? '');
    if (family === 0 || extra !== undefined) return false;
    if (prefix === undefined) return true;
    const bits = Number(prefix);
    return /^\d+$/.test(prefix) && bits >= 1 && bits <= (family === 4 ? 32 : 128);
  };
  const bad = entries.find((e) => !valid(e));
  if (entries.length === 0 || bad !== undefined) {
    const everyone = /^(true|\d+)$/i.test(raw.trim()) || /\/0$/.test(bad ?? '');
    const netmask = bad !== undefined && isIP(bad.split('/')[1] ?? '') !== 0;
    throw new TrustProxyError(
      `Expected \`TRUST_PROXY\` to be false or a comma-separated list of the proxies' IP addresses and CIDR ranges, got \`${raw}\`` +
        (everyone ? ' (trusting any peer would let a client that reaches the server directly choose the address it is rate-limited as)' : '') +
        (netmask ? ` (\`${bad}\` has a netmask: write the prefix length, as in \`10.0.0.0/8\`)` : ''),
    );
  }
  refuseWideTrust(entries);
  return Object.freeze(entries);
}

/**
 * Refuses valid TRUST_PROXY entries that together cover more addresses of a family than
 * TRUST_PROXY_MAX_ADDRESSES allows: `0.0.0.0/1,128.0.0.0/1` is `true` in two pieces. The
 * counts are summed, not merged (overlaps count twice, which only errs towards refusing).
 * IPv4-mapped ranges (inside `::ffff:0:0/96`, as `::ffff:10.0.0.0/104`) count against the
 * IPv4 bound, since proxy-addr matches IPv4 peers against them; an IPv6 range holding the
 * whole mapped block (`::/64`) counts every IPv4 address, since older proxy-addr releases
 * (jshttp's) matched IPv4 peers against any IPv6 range by their mapped form. Loopback
 * entries are not counted (see trustedAddresses).
 */
function refuseWideTrust(entries: readonly string[]): void {
  for (const family of ['IPv4', 'IPv6'] as const) {
    const counted = entries
      .map((entry) => ({ entry, addresses: trustedAddresses(entry)[family] }))
      .filter((c) => c.addresses > 0n)
      .sort((a, b) => (b.addresses > a.addresses ? 1 : b.addresses < a.addresses ? -1 : 0));
    const total = counted.reduce((sum, c) => sum + c.addresses, 0n);
    const bound = TRUST_PROXY_MAX_ADDRESSES[family];
    if (total <= bound.addresses) continue;
    const mapped = (entry: string) => (family === 'IPv4' && isIP(entry.split('/')[0]!) === 6 ? ' as IPv4-mapped addresses' : '');
    const shown = counted.slice(0, 8).map((c) => `\`${c.entry}\` (${formatAddressCount(c.addresses)}${mapped(c.entry)})`);
    if (counted.length > shown.length) shown.push(`and ${counted.length - shown.length} more`);
    throw new TrustProxyError(
      `Expected \`TRUST_PROXY\` to cover at most ${formatAddressCount(bound.addresses)} ${family} addresses (${bound.why}), ` +
        `got ${formatAddressCount(total)} from ${shown.join(', ')}: trusting that many peers would let a client that reaches ` +
        'the server directly choose the address it is rate-limited as; list the proxies, or the subnet they run in',
    );
  }
}

/** Largest number of addresses TRUST_PROXY may cover, per family, with the reason for the bound. */
const TRUST_PROXY_MAX_ADDRESSES = {
  IPv4: { addresses: 1n << 24n, why: "a /8's worth: 10.0.0.0/8 is the widest private block one cluster's pod network can use" },
  IPv6: { addresses: 1n << 96n, why: "a /32's worth: an RIR allocates a /32 to a whole organisation, and Kubernetes IPv6 pod ranges are /48 to /64" },
} as const;

/** Up to 2^32 in digits; IPv6-sized counts as powers of two, which is how prefixes read. */
function formatAddressCount(n: bigint): string {
  if (n <= 1n << 32n) return String(n);
  const exponent = n.toString(2).length - 1;
  return n === 1n << BigInt(exponent) ? `2^${exponent}` : `more than 2^${exponent}`;
}

/** `::ffff:0:0/96`, the IPv4-mapped block, as a 128-bit number. */
const IPV4_MAPPED_BLOCK = 0xffffn << 32n;

/**
 * The addresses a valid TRUST_PROXY entry lets through, as IPv4 and IPv6 counts. Loopback
 * entries (inside 127.0.0.0/8, `::1`) count nothing: such a peer is a process in the server's
 * own network namespace (Istio's sidecar connects from 127.0.0.6), which no client across the
 * network can pose as.
 */
function trustedAddresses(entry: string): { IPv4: bigint; IPv6: bigint } {
  const [address = '', prefix] = entry.split('/');
  const ipv4 = (value: bigint, bits: number) => ({ IPv4: bits >= 8 && value >> 24n === 127n ? 0n : 1n << BigInt(32 - bits), IPv6: 0n });
  if (isIP(address) === 4) {
    return ipv4(
      address.split('.').reduce((n, octet) => (n << 8n) | BigInt(octet), 0n),
      Number(prefix ?? 32),
    );
  }
  const bits = Number(prefix ?? 128);
  const value = ipv6ToBigInt(address);
  if (value === 1n && bits === 128) return { IPv4: 0n, IPv6: 0n };
  const mask = (n: number) => ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - n)) - 1n);
  if (bits >= 96 && (value & mask(96)) === IPV4_MAPPED_BLOCK) return ipv4(value & 0xffffffffn, bits - 96);
  const holdsMappedBlock = (value & mask(bits)) === (IPV4_MAPPED_BLOCK & mask(bits));
  return { IPv4: holdsMappedBlock ? 1n << 32n : 0n, IPv6: 1n << BigInt(128 - bits) };
}

/** A valid IPv6 address (`isIP` said 6; zone allowed, IPv4 tail allowed) as a 128-bit number. */
function ipv6ToBigInt(address: string): bigint {
  let text = address.split('%')[0]!;
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return all.reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}
