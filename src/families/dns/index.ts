/**
 * The DNS family in one place: its record layout, how a record reads, what
 * it adds to a feature row, its default anomaly metrics and how it is
 * described to the agent. The kernel side is bpf/dns.bpf.c; docs/dns.md
 * says what it sees and what it cannot.
 *
 * Registered in the shared lists (one line each): src/ingest/layout.ts
 * (OP_TYPE, PROBE_OF_OP, PROBE_NAMES, SOURCE_NAMES, RECORD_LAYOUTS),
 * src/ingest/families.ts, src/features (columns, aggregator,
 * anomaly-detector), src/ingest/event-decoder.ts.
 */
import type { NativeBpfObject } from '../../ingest/native.js';
import { fieldOffset } from '../../ingest/layout.js';
import { DNS_LAYOUT, DNS_PROBE_ID, DNS_TIMEOUT_OP } from './layout.js';
import { collectDnsTimeouts } from './timeouts.js';

export {
  DNS_EVENT_TYPE,
  DNS_LAYOUT,
  DNS_NAME_LEN,
  DNS_OP,
  DNS_PROBE_ID,
  DNS_TIMEOUT_OP,
} from './layout.js';
export { DNS_TIMEOUT_NS, collectDnsTimeouts } from './timeouts.js';

/** The family as the node agent loads it (bpf/.output/dns.bpf.o). */
export const DNS_FAMILY = {
  name: 'dns' as const,
  probeId: DNS_PROBE_ID,
  summaries: [],
  /** Both programs attach to the cgroup v2 root: every workload's sockets. */
  attachToCgroupRoot: true,
  /** Every summary interval: queries unanswered for 5 s become TF_OP_DNS_TIMEOUT records. */
  flush: (obj: NativeBpfObject, ktime: bigint) => collectDnsTimeouts(obj, ktime),
  /** bpf/events.h TF_DNS_* slots of tf_dns_counts (slot 0 counts stored queries, not a loss). */
  lossCounters: {
    map: 'tf_dns_counts',
    names: ['', 'dns_unmatched_responses', 'dns_malformed', 'dns_query_replaced'],
  },
  /* On by default: its records are the steady-state signal the dns rules watch. */
  defaultEnabled: true,
  description:
    'DNS over UDP and TCP port 53: each response matched to its query, with name, type, rcode, latency, server and the querying workload',
};

/** Response codes (RFC 1035, 6895) by number, as attributes name them. */
export const RCODE_NAMES: readonly string[] = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'YXDOMAIN',
  'YXRRSET',
  'NXRRSET',
  'NOTAUTH',
  'NOTZONE',
];
export const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 } as const;

/** Common query types by number. */
const QTYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [1, 'A'],
  [2, 'NS'],
  [5, 'CNAME'],
  [6, 'SOA'],
  [12, 'PTR'],
  [15, 'MX'],
  [16, 'TXT'],
  [28, 'AAAA'],
  [33, 'SRV'],
  [64, 'SVCB'],
  [65, 'HTTPS'],
  [255, 'ANY'],
]);

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}
export function qtypeName(qtype: number): string {
  return QTYPE_NAMES.get(qtype) ?? `TYPE${qtype}`;
}

/** What the decoders need to read a record by field name. */
export interface FieldReader {
  u8(name: string): number;
  u16(name: string): number;
  u32(name: string): number;
  u64(name: string): number;
  id(name: string): string;
  cstr(name: string): string;
  address(name: string, family: number): string;
}

const AF_INET6 = 10;
const IPPROTO_TCP = 6;

/** OpenTelemetry-style attributes of one TF_OP_DNS_RESPONSE record. */
export function dnsAttributes(r: FieldReader): Record<string, string | number> {
  const family = r.u16('family');
  const rcode = r.u8('rcode');
  const qtype = r.u16('qtype');
  return {
    'process.pid': r.u32('pid'),
    'process.executable.name': r.cstr('comm'),
    'cgroup.id': r.id('cgroup_id'),
    'network.transport': r.u8('transport') === IPPROTO_TCP ? 'tcp' : 'udp',
    'network.type': family === AF_INET6 ? 'ipv6' : 'ipv4',
    'network.local.address': r.address('saddr', family),
    'network.local.port': r.u16('sport'),
    'server.address': r.address('daddr', family),
    'server.port': r.u16('dport'),
    'dns.question.name': r.cstr('name'),
    'dns.question.type': qtypeName(qtype),
    'dns.question.type_code': qtype,
    'dns.id': r.u16('id'),
    'dns.flags': r.u16('dns_flags'),
    'dns.response_code': rcodeName(rcode),
    'dns.rcode': rcode,
    'dns.answer_count': r.u16('ancount'),
    'dns.latency_ns': r.u64('latency_ns'),
  };
}

/** Sum columns the family adds to rows of source `dns`. */
export const DNS_SUM_COLUMNS = [
  'dns_queries',
  'dns_failures',
  'dns_nxdomain',
  'dns_servfail',
  'dns_timeouts',
  'dns_latency_total_ns',
] as const;
/** Its latency histogram and the quantiles derived from it. */
export const DNS_HISTOGRAM = 'dns_latency' as const;
export const DNS_QUANTILES = [
  { name: 'dns_p50_ns', hist: DNS_HISTOGRAM, q: 0.5 },
  { name: 'dns_p95_ns', hist: DNS_HISTOGRAM, q: 0.95 },
  { name: 'dns_p99_ns', hist: DNS_HISTOGRAM, q: 0.99 },
] as const;

const OFF = {
  rcode: fieldOffset(DNS_LAYOUT, 'rcode'),
  latency: fieldOffset(DNS_LAYOUT, 'latency_ns'),
};

/**
 * Adds one record to a row: `sum(column, value)` for sum columns and
 * `hist(latencyNs)` for the latency histogram; `weight` is the sample weight.
 */
export function dnsAggregate(
  op: number,
  dv: DataView,
  off: number,
  weight: number,
  sum: (column: (typeof DNS_SUM_COLUMNS)[number], value: number) => void,
  hist: (valueNs: number) => void,
): void {
  if (op === DNS_TIMEOUT_OP) {
    // A query with no answer: counted, kept out of the latency (its age is the timeout).
    sum('dns_queries', weight);
    sum('dns_timeouts', weight);
    return;
  }
  const rcode = dv.getUint8(off + OFF.rcode);
  const latency =
    dv.getUint32(off + OFF.latency, true) + dv.getUint32(off + OFF.latency + 4, true) * 4294967296;
  sum('dns_queries', weight);
  if (rcode !== RCODE.NOERROR) sum('dns_failures', weight);
  if (rcode === RCODE.NXDOMAIN) sum('dns_nxdomain', weight);
  if (rcode === RCODE.SERVFAIL) sum('dns_servfail', weight);
  sum('dns_latency_total_ns', weight * latency);
  hist(latency);
}

/**
 * Default anomaly metrics (src/features/anomaly-detector.ts DEFAULT_METRICS).
 * Failure storms: a client retrying a missing name a few times is normal, 20
 * failed answers in a window is a storm. Slow resolution: a p99 50 ms over the
 * baseline (a cache miss to a far resolver is tens of ms).
 */
export const DNS_ANOMALY_METRICS = [
  { metric: 'dns_failures', probe: 'dns', min_delta: 5, prior_min: 20 },
  { metric: 'dns_p99_ns', probe: 'dns', min_delta: 50_000_000, prior_min: 500_000_000 },
  // Queries nobody answers: a few are packet loss, ten in a window is a resolver gone.
  { metric: 'dns_timeouts', probe: 'dns', min_delta: 3, prior_min: 10 },
] as const;

/**
 * Default feedback rules (src/feedback/thresholds.ts DEFAULT_RULES, and
 * config/thresholds.yaml): a failure storm (NXDOMAIN, SERVFAIL, any non-zero
 * rcode) or slow resolution raises the workload's dns records to full detail
 * (no sampling, no duration floor) for the TTL. dns is on in steady state: its
 * own rows are the trigger.
 */
export const DNS_RULES = [
  {
    name: 'dns-failures',
    metric: 'dns_failures',
    source: 'dns',
    action: 'tighten',
    probe: 'dns',
    focus: 'workload',
    ttl_seconds: 300,
  },
  {
    name: 'dns-slow',
    metric: ['dns_p99_ns', 'dns_timeouts'] as string[],
    source: 'dns',
    action: 'tighten',
    probe: 'dns',
    focus: 'workload',
    ttl_seconds: 300,
  },
] as const;

/** How the agent speaks of the family (src/agent: prompt, question keywords, likely causes). */
export const DNS_AGENT = {
  /** Question keywords -> metric, most specific first (src/agent/deterministic.ts). */
  metricPatterns: [
    [
      /\bnxdomain\b|\bservfail\b|dns\w*\s+(fail|error)|(fail|error)\w*\s+(dns|lookup|resolv)|name\s+resolution\s+fail/,
      'dns_failures',
    ],
    [
      /(slow|latency|p99)\w*\s+(dns|lookup|resolv)|(dns|lookup|resolv)\w*\s+(slow|latency|p99|time)/,
      'dns_p99_ns',
    ],
    [/\bdns\b|lookups?\b|resolv/, 'dns_queries'],
  ] as Array<[RegExp, string]>,
  /** Metrics compared against the windows before an anomaly (src/agent/explain.ts). */
  correlated: ['dns_failures', 'dns_p99_ns'],
  /** The likely cause of an anomaly on a dns metric, or undefined for another metric. */
  likelyCause(metric: string, up: ReadonlySet<string>): string | undefined {
    switch (metric) {
      case 'dns_failures':
      case 'dns_nxdomain':
      case 'dns_servfail':
        return up.has('dns_nxdomain') || metric === 'dns_nxdomain'
          ? 'name lookups failing with NXDOMAIN: a wrong or removed host name (configuration, a deleted service) or a search-domain walk'
          : 'name lookups failing: the resolver answers SERVFAIL or refuses (an upstream resolver down, a DNSSEC failure, or a policy)';
      case 'dns_p99_ns':
        return 'slow name resolution: the resolver or its upstream is slow or losing packets (client retries add seconds)';
      case 'dns_queries':
        return 'the workload resolves far more names than before (a cache lost or disabled, a retry loop, or new fan-out)';
      default:
        return undefined;
    }
  },
};
