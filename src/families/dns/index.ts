/**
 * The DNS family in one place: its record layout, how a record reads, what
 * it adds to a feature row, its default anomaly metrics and rules and how it
 * is described to the agent. The kernel side is bpf/dns.bpf.c; docs/dns.md
 * says what it sees and what it cannot.
 */
import type { FieldReader } from '../../wire/record-reader.js';
import { fieldOffset } from '../../wire/layout.js';
import { defineFamily, percentiles, log2Slot, u64 } from '../family.js';
import {
  DNS_KEY_LAYOUT,
  DNS_LAYOUT,
  DNS_LOOKUPS_LAYOUT,
  DNS_LOOKUPS_OP,
  DNS_OP,
  DNS_PROBE_ID,
  DNS_QUERY_LAYOUT,
  DNS_TIMEOUT_OP,
} from './layout.js';
import { collectDnsTimeouts } from './timeouts.js';

export {
  DNS_LAYOUT,
  DNS_LOOKUPS_LAYOUT,
  DNS_LOOKUPS_OP,
  DNS_NAME_LEN,
  DNS_OP,
  DNS_PROBE_ID,
  DNS_TIMEOUT_OP,
} from './layout.js';
export { DNS_TIMEOUT_NS, collectDnsTimeouts } from './timeouts.js';

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

const OFF = {
  rcode: fieldOffset(DNS_LAYOUT, 'rcode'),
  latency: fieldOffset(DNS_LAYOUT, 'latency_ns'),
  lookups: fieldOffset(DNS_LOOKUPS_LAYOUT, 'count'),
};

/** The lookup counter's programs (cgroup/connect and cgroup/sendmsg): attached whenever dns is loaded. */
export const DNS_LOOKUP_PROGRAMS = [
  'tf_dns_connect4',
  'tf_dns_connect6',
  'tf_dns_sendmsg4',
  'tf_dns_sendmsg6',
] as const;

export const DNS_FAMILY = defineFamily({
  name: 'dns',
  probeId: DNS_PROBE_ID,
  object: 'dns',
  ops: [
    { op: DNS_OP, type: 'dns.response', layout: DNS_LAYOUT, attributes: dnsAttributes },
    {
      op: DNS_TIMEOUT_OP,
      type: 'dns.timeout',
      layout: { ...DNS_LAYOUT, op: DNS_TIMEOUT_OP },
      attributes: (r) => ({ ...dnsAttributes(r), 'dns.response_code': 'TIMEOUT' }),
    },
    {
      op: DNS_LOOKUPS_OP,
      type: 'dns.lookups',
      layout: DNS_LOOKUPS_LAYOUT,
      attributes: (r) => ({
        'cgroup.id': r.id('cgroup_id'),
        'summary.interval_ns': r.u64('interval_ns'),
        'dns.lookups': r.u64('count'),
      }),
    },
  ],
  layouts: [DNS_KEY_LAYOUT, DNS_QUERY_LAYOUT],
  columns: {
    sums: [
      'dns_queries',
      'dns_failures',
      'dns_nxdomain',
      'dns_servfail',
      'dns_timeouts',
      'dns_latency_total_ns',
      'dns_lookups',
    ],
    histograms: ['dns_latency'],
    quantiles: percentiles('dns', 'dns_latency'),
  },
  aggregate: (ix) => {
    const lookups = ix.sum('dns_lookups');
    const queries = ix.sum('dns_queries');
    const failures = ix.sum('dns_failures');
    const nxdomain = ix.sum('dns_nxdomain');
    const servfail = ix.sum('dns_servfail');
    const timeouts = ix.sum('dns_timeouts');
    const latencyTotal = ix.sum('dns_latency_total_ns');
    const h = ix.hist('dns_latency');
    return (op, dv, off, weight, sums, b, hists, hb) => {
      if (op === DNS_LOOKUPS_OP) {
        // An exact count from the kernel map, not a sampled record.
        sums[b + lookups]! += u64(dv, off + OFF.lookups);
        return;
      }
      sums[b + queries]! += weight;
      if (op === DNS_TIMEOUT_OP) {
        // A query with no answer: counted, kept out of the latency (its age is the timeout).
        sums[b + timeouts]! += weight;
        return;
      }
      const rcode = dv.getUint8(off + OFF.rcode);
      const latency = u64(dv, off + OFF.latency);
      if (rcode !== RCODE.NOERROR) sums[b + failures]! += weight;
      if (rcode === RCODE.NXDOMAIN) sums[b + nxdomain]! += weight;
      if (rcode === RCODE.SERVFAIL) sums[b + servfail]! += weight;
      sums[b + latencyTotal]! += weight * latency;
      hists[hb + h + log2Slot(latency)]! += weight;
    };
  },
  /*
   * Failure storms: a client retrying a missing name a few times is normal, 20
   * failed answers in a window is a storm. Slow resolution: a p99 50 ms over the
   * baseline (a cache miss to a far resolver is tens of ms).
   */
  anomalyMetrics: [
    /*
     * Lookups started (always counted): a workload resolving far more names than it did,
     * or than its peers (a retry loop on a failing name, a search-domain walk, a lost
     * cache). 200 in a 10 s window for a workload with no baseline yet.
     */
    { metric: 'dns_lookups', min_delta: 50, prior_min: 200 },
    { metric: 'dns_failures', min_delta: 5, prior_min: 20 },
    { metric: 'dns_p99_ns', min_delta: 50_000_000, prior_min: 500_000_000 },
    // Queries nobody answers: a few are packet loss, ten in a window is a resolver gone.
    { metric: 'dns_timeouts', min_delta: 3, prior_min: 10 },
  ],
  /*
   * dns is off in steady state but for its lookup counter: a lookup storm turns the
   * per-packet programs on for that workload (a focus: every query and response of
   * it, with name, rcode and latency) for the TTL. With dns on, a failure storm
   * (NXDOMAIN, SERVFAIL, any non-zero rcode) or slow resolution raises the
   * workload's records to full detail (no sampling, no duration floor).
   */
  rules: [
    {
      name: 'dns-lookups',
      metric: 'dns_lookups',
      action: 'enable',
      probe: 'dns',
      focus: 'workload',
      ttl_seconds: 300,
    },
    {
      name: 'dns-failures',
      metric: 'dns_failures',
      action: 'tighten',
      probe: 'dns',
      focus: 'workload',
      ttl_seconds: 300,
    },
    {
      name: 'dns-slow',
      metric: ['dns_p99_ns', 'dns_timeouts'],
      action: 'tighten',
      probe: 'dns',
      focus: 'workload',
      ttl_seconds: 300,
    },
  ],
  description:
    'DNS over UDP and TCP port 53: lookups per workload always (connects and sends to port 53); while on, each response matched to its query, with name, type, rcode, latency, server and the querying workload',
  agent: {
    metricPatterns: [
      [
        /\bnxdomain\b|\bservfail\b|dns\w*\s+(fail|error)|(fail|error)\w*\s+(dns|lookup|resolv)|name\s+resolution\s+fail/,
        'dns_failures',
      ],
      [
        /(slow|latency|p99)\w*\s+(dns|lookup|resolv)|(dns|lookup|resolv)\w*\s+(slow|latency|p99|time)/,
        'dns_p99_ns',
      ],
      [/\bdns\b|lookups?\b|resolv/, 'dns_lookups'],
    ],
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
        case 'dns_lookups':
          return 'the workload resolves far more names than before (a cache lost or disabled, a retry loop, or new fan-out)';
        default:
          return undefined;
      }
    },
  },
  /*
   * Off by default: the per-packet programs run on every packet of every socket
   * (bench/dns-cost.mjs), so they run only where the loop or an operator asks.
   * The lookup counter is the steady-state signal (alwaysAttached).
   */
  defaultEnabled: false,
  summaries: [
    {
      map: 'tf_dns_lookups',
      layout: DNS_LOOKUPS_LAYOUT,
      key: null,
      value: null,
      fields: { cgroup_id: 'key', interval_ns: 'interval', count: 'value' },
    },
  ],
  /** Every program attaches to the cgroup v2 root: every workload's sockets. */
  attachToCgroupRoot: true,
  alwaysAttached: DNS_LOOKUP_PROGRAMS,
  steadyStateMetrics: ['dns_lookups'],
  /** Every summary interval: queries unanswered for 5 s become TF_OP_DNS_TIMEOUT records. */
  flush: (obj, ktime) => collectDnsTimeouts(obj, ktime),
  /** bpf/events.h TF_DNS_* slots of tf_dns_counts (slot 0 counts stored queries, not a loss). */
  lossCounters: {
    map: 'tf_dns_counts',
    names: ['', 'dns_unmatched_responses', 'dns_malformed', 'dns_query_replaced'],
  },
});
