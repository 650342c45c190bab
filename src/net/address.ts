/**
 * Which IP addresses a stranger's URL may make us connect to.
 *
 * Only globally routable unicast addresses are "public". Everything else (loopback, private
 * networks, link-local, CGNAT, multicast, documentation and other special-purpose ranges, and the
 * cloud metadata endpoints) is refused unless an operator allowlists it. IPv6 forms that embed an
 * IPv4 address (v4-mapped, NAT64, 6to4) are judged by the IPv4 address inside, so
 * `::ffff:127.0.0.1` or `64:ff9b::a00:5` cannot smuggle a private target past the check.
 *
 * Parsing is our own (16-byte arrays) rather than node:net BlockList, because we need the class of
 * an address for the error message, not just a yes/no, and the embedded-IPv4 rules.
 */
import { isIP } from 'node:net';

export type AddressKind =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'cgnat'
  | 'multicast'
  | 'reserved'
  | 'metadata';

/** An address as bytes: 4 for IPv4, 16 for IPv6. */
type Bytes = Uint8Array;

interface Range {
  net: Bytes;
  prefix: number;
}

interface Rule extends Range {
  kind: AddressKind;
}

/** Parses a textual IPv4 or IPv6 address (no zone id) into bytes; undefined if it is not one. */
export function parseAddress(text: string): Bytes | undefined {
  const ip = stripBrackets(text);
  const family = isIP(ip);
  if (family === 4) return parseV4(ip);
  if (family === 6) return parseV6(ip);
  return undefined;
}

function stripBrackets(text: string): string {
  return text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
}

function parseV4(ip: string): Bytes {
  return Uint8Array.from(ip.split('.').map(Number));
}

function parseV6(ip: string): Bytes | undefined {
  // A zone id (fe80::1%eth0) names an interface on this host: never a public target.
  if (ip.includes('%')) return undefined;
  let text = ip;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    // Rewrite a trailing dotted quad (::ffff:1.2.3.4) as two hex groups so one parser serves all.
    const [a, b, c, d] = parseV4(tail);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const fill = rest === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...new Array<number>(Math.max(fill, 0)).fill(0), ...right];
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

function range(cidr: string): Range {
  const [ip, bits] = cidr.split('/');
  const net = parseAddress(ip);
  if (!net) throw new Error(`bad built-in range ${cidr}`);
  return { net, prefix: bits === undefined ? net.length * 8 : Number(bits) };
}

function inRange(addr: Bytes, r: Range): boolean {
  if (addr.length !== r.net.length) return false;
  const full = r.prefix >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== r.net[i]) return false;
  const rem = r.prefix & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (addr[full] & mask) === (r.net[full] & mask);
}

function rules(table: [string, AddressKind][]): Rule[] {
  return table.map(([cidr, kind]) => ({ ...range(cidr), kind }));
}

// First match wins, so the specific metadata addresses come before their enclosing ranges.
// Sources: IANA IPv4/IPv6 Special-Purpose Address Registries; AWS, GCP, Azure, Alibaba, Oracle docs.
const V4_RULES = rules([
  ['169.254.169.254/32', 'metadata'], // AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean …
  ['169.254.170.2/32', 'metadata'], // AWS ECS task metadata
  ['169.254.170.23/32', 'metadata'], // AWS EKS pod identity
  ['100.100.100.200/32', 'metadata'], // Alibaba Cloud
  ['192.0.0.192/32', 'metadata'], // Oracle Cloud (classic)
  ['0.0.0.0/8', 'unspecified'], // "this network": connecting to 0.0.0.0 reaches this host
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'], // IETF protocol assignments
  ['192.0.2.0/24', 'reserved'], // documentation
  ['192.31.196.0/24', 'reserved'], // AS112
  ['192.52.193.0/24', 'reserved'], // AMT
  ['192.88.99.0/24', 'reserved'], // 6to4 relay anycast
  ['192.168.0.0/16', 'private'],
  ['192.175.48.0/24', 'reserved'], // AS112 direct delegation
  ['198.18.0.0/15', 'reserved'], // benchmarking
  ['198.51.100.0/24', 'reserved'], // documentation
  ['203.0.113.0/24', 'reserved'], // documentation
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'], // incl. 255.255.255.255 broadcast
]);

const V6_RULES = rules([
  ['fd00:ec2::254/128', 'metadata'], // AWS IMDS over IPv6
  ['fd00:ec2::23/128', 'metadata'], // AWS EKS pod identity over IPv6
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/96', 'reserved'], // deprecated IPv4-compatible addresses
  ['64:ff9b:1::/48', 'private'], // local-use NAT64
  ['100::/64', 'reserved'], // discard-only
  ['2001::/23', 'reserved'], // IETF protocol assignments (Teredo, ORCHID, benchmarking …)
  ['2001:db8::/32', 'reserved'], // documentation
  ['3fff::/20', 'reserved'], // documentation
  ['5f00::/16', 'reserved'], // SRv6 SIDs
  ['fc00::/7', 'private'], // unique local
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
]);

const GLOBAL_UNICAST_V6 = range('2000::/3');
// IPv6 forms whose last (or, for 6to4, bytes 2..5) 32 bits are an IPv4 address we must judge instead.
const V4_MAPPED = range('::ffff:0:0/96');
const V4_TRANSLATED = range('::ffff:0:0:0/96');
const NAT64 = range('64:ff9b::/96');
const SIX_TO_FOUR = range('2002::/16');

/** The IPv4 address an IPv6 address stands for, if it is one of the embedding forms. */
function embeddedV4(addr: Bytes): Bytes | undefined {
  if (addr.length !== 16) return undefined;
  if (inRange(addr, V4_MAPPED) || inRange(addr, V4_TRANSLATED) || inRange(addr, NAT64)) return addr.slice(12, 16);
  if (inRange(addr, SIX_TO_FOUR)) return addr.slice(2, 6);
  return undefined;
}

/** The address to judge: the embedded IPv4 for mapped/NAT64/6to4 forms, else the address itself. */
function effective(addr: Bytes): Bytes {
  return embeddedV4(addr) ?? addr;
}

/** Classifies an IP address. Anything that does not parse is 'reserved' (never public). */
export function classifyAddress(ip: string): AddressKind {
  const parsed = parseAddress(ip);
  if (!parsed) return 'reserved';
  const addr = effective(parsed);
  const table = addr.length === 4 ? V4_RULES : V6_RULES;
  for (const rule of table) if (inRange(addr, rule)) return rule.kind;
  if (addr.length === 16 && !inRange(addr, GLOBAL_UNICAST_V6)) return 'reserved';
  return 'public';
}

/** "a private address", for error messages. */
export function describeKind(kind: AddressKind): string {
  switch (kind) {
    case 'public':
      return 'a public address';
    case 'unspecified':
      return 'an unspecified address';
    case 'loopback':
      return 'a loopback address';
    case 'private':
      return 'a private address';
    case 'link-local':
      return 'a link-local address';
    case 'cgnat':
      return 'a carrier-grade NAT (shared) address';
    case 'multicast':
      return 'a multicast address';
    case 'reserved':
      return 'a reserved, non-routable address';
    case 'metadata':
      return 'a cloud metadata address';
  }
}

/**
 * Operator exceptions: CIDRs or bare IPs ("10.0.0.0/8", "::1") and hostnames ("minio.internal",
 * "*.corp.example" for any subdomain). A hostname entry lets that host resolve to non-public
 * addresses, except the metadata and unspecified ones, which only a CIDR entry covering them allows:
 * trusting a name should not also hand out cloud credentials.
 */
export class AllowList {
  private readonly ranges: Range[] = [];
  private readonly hosts = new Set<string>();
  private readonly suffixes: string[] = [];

  constructor(entries: readonly string[] = []) {
    for (const raw of entries) {
      const entry = raw.trim().toLowerCase();
      if (entry === '') continue;
      const [ip, bits, extra] = entry.split('/');
      const addr = parseAddress(ip);
      if (addr) {
        const max = addr.length * 8;
        const prefix = bits === undefined ? max : Number(bits);
        if (extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > max || bits === '') {
          throw new Error(`fetch allowlist entry "${raw}" has a bad prefix length (0–${max})`);
        }
        this.ranges.push({ net: addr, prefix });
      } else if (bits === undefined && /^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/.test(entry)) {
        const host = trimDot(entry);
        if (host.startsWith('*.')) this.suffixes.push(host.slice(1));
        else this.hosts.add(host);
      } else {
        throw new Error(`fetch allowlist entry "${raw}" is neither an IP/CIDR nor a hostname`);
      }
    }
  }

  get isEmpty(): boolean {
    return this.ranges.length === 0 && this.hosts.size === 0 && this.suffixes.length === 0;
  }

  /** Whether connecting to `ip`, reached through the URL host `host`, is allowed. */
  permits(host: string, ip: string): boolean {
    const kind = classifyAddress(ip);
    if (kind === 'public') return true;
    const parsed = parseAddress(ip);
    if (parsed && this.coversAddress(parsed)) return true;
    if (kind === 'metadata' || kind === 'unspecified') return false;
    return this.coversHost(host);
  }

  private coversAddress(addr: Bytes): boolean {
    const v4 = embeddedV4(addr);
    return this.ranges.some((r) => inRange(addr, r) || (v4 !== undefined && inRange(v4, r)));
  }

  private coversHost(host: string): boolean {
    const h = trimDot(stripBrackets(host).toLowerCase());
    return this.hosts.has(h) || this.suffixes.some((s) => h.endsWith(s));
  }
}

function trimDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/** Reads the comma- or space-separated LIKENESS_FETCH_ALLOW setting. */
export function fetchAllowFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.LIKENESS_FETCH_ALLOW ?? '').split(/[\s,]+/).filter((s) => s !== '');
}
