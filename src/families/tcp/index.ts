/**
 * The tcp family: connect, accept and close with bytes and duration; failed
 * connects, retransmits and resets (bpf/tcp.bpf.c, one struct tf_tcp_event for
 * every op). On in steady state.
 */
import { Op, Probe, TCP_LAYOUT, fieldOffset } from '../../wire/layout.js';
import type { FieldReader } from '../../wire/record-reader.js';
import { defineFamily, percentiles, log2Slot, u64, type FamilyOp } from '../family.js';

const AF_INET6 = 10;

const TCP_STATES = [
  '',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
];

function tcpAttributes(r: FieldReader): Record<string, string | number> {
  const family = r.u16('family');
  return {
    'process.pid': r.u32('pid'),
    'process.executable.name': r.cstr('comm'),
    'network.transport': 'tcp',
    'network.type': family === AF_INET6 ? 'ipv6' : 'ipv4',
    'network.local.address': r.address('saddr', family),
    'network.local.port': r.u16('sport'),
    'network.peer.address': r.address('daddr', family),
    'network.peer.port': r.u16('dport'),
    'tcp.state.old': TCP_STATES[r.u8('oldstate')] ?? String(r.u8('oldstate')),
    'tcp.state.new': TCP_STATES[r.u8('newstate')] ?? String(r.u8('newstate')),
    'tcp.duration_ns': r.u64('duration_ns'),
    'tcp.bytes_sent': r.u64('bytes_sent'),
    'tcp.bytes_received': r.u64('bytes_received'),
    'cgroup.id': r.id('cgroup_id'),
  };
}

/** op -> event type and the sum column it counts. */
const TCP_OPS = [
  [Op.TCP_CONNECT, 'tcp.connect', 'tcp_connects'],
  [Op.TCP_ACCEPT, 'tcp.accept', 'tcp_accepts'],
  [Op.TCP_CLOSE, 'tcp.close', 'tcp_closes'],
  [Op.TCP_CONNECT_FAIL, 'tcp.connect_fail', 'tcp_connect_failures'],
  [Op.TCP_RETRANSMIT, 'tcp.retransmit', 'tcp_retransmits'],
  [Op.TCP_RESET_SENT, 'tcp.reset_sent', 'tcp_resets_sent'],
  [Op.TCP_RESET_RECV, 'tcp.reset_received', 'tcp_resets_received'],
] as const;

const TCP = {
  duration: fieldOffset(TCP_LAYOUT, 'duration_ns'),
  sent: fieldOffset(TCP_LAYOUT, 'bytes_sent'),
  received: fieldOffset(TCP_LAYOUT, 'bytes_received'),
};

export const TCP_FAMILY = defineFamily({
  name: 'tcp',
  probeId: Probe.TCP,
  object: 'tcp',
  ops: TCP_OPS.map(([op, type]): FamilyOp => ({
    op,
    type,
    layout: { ...TCP_LAYOUT, op },
    attributes: tcpAttributes,
  })),
  columns: {
    sums: [
      'tcp_connects',
      'tcp_accepts',
      'tcp_closes',
      'tcp_connect_failures',
      'tcp_retransmits',
      'tcp_resets_sent',
      'tcp_resets_received',
      'tcp_bytes_sent',
      'tcp_bytes_received',
    ],
    histograms: ['tcp_duration'],
    quantiles: percentiles('tcp_duration', 'tcp_duration'),
    derived: { tcp_resets: ['tcp_resets_sent', 'tcp_resets_received'] },
  },
  aggregate: (ix) => {
    const count = new Int32Array(256);
    for (const [op, , col] of TCP_OPS) count[op] = ix.sum(col);
    const sent = ix.sum('tcp_bytes_sent');
    const received = ix.sum('tcp_bytes_received');
    const duration = ix.hist('tcp_duration');
    return (op, dv, off, weight, sums, b, hists, hb) => {
      sums[b + count[op]!]! += weight;
      if (op !== Op.TCP_CLOSE) return;
      sums[b + sent]! += weight * u64(dv, off + TCP.sent);
      sums[b + received]! += weight * u64(dv, off + TCP.received);
      hists[hb + duration + log2Slot(u64(dv, off + TCP.duration))]! += weight;
    };
  },
  anomalyMetrics: [
    // Packet loss. A healthy new workload retransmits rarely; 20 in a window is a lossy path.
    { metric: 'tcp_retransmits', min_delta: 5, prior_min: 20 },
    // Reset storms (sent or received): 20 resets in a window is far from a normal start.
    { metric: 'tcp_resets', min_delta: 5, prior_min: 20 },
    // Connection-refused storm: a starting client may retry a few times, not 20 per window.
    { metric: 'tcp_connect_failures', min_delta: 5, prior_min: 20 },
    { metric: 'events_per_second', min_delta: 100 },
  ],
  rules: [
    // Packet loss: every tcp event of the workload (retransmits with their peers, closes with bytes).
    {
      name: 'tcp-retransmits',
      metric: 'tcp_retransmits',
      action: 'tighten',
      probe: 'tcp',
      focus: 'workload',
      ttl_seconds: 300,
    },
    // Connection-refused storm: every connect of the workload, with the peer that refuses.
    {
      name: 'tcp-connect-failures',
      metric: 'tcp_connect_failures',
      action: 'tighten',
      probe: 'tcp',
      focus: 'workload',
      ttl_seconds: 300,
    },
    // Reset storms: on the workload only, never node-wide (a tenant can reset cheaply).
    {
      name: 'tcp-resets',
      metric: 'tcp_resets',
      action: 'tighten',
      probe: 'tcp',
      focus: 'workload',
      ttl_seconds: 300,
    },
  ],
  description: 'TCP connect, accept, close with bytes and duration; retransmits and resets',
  agent: {
    countMetric: 'tcp_connects',
    metricPatterns: [
      [/retransmi/, 'tcp_retransmits'],
      [/\bresets?\b|\brst\b/, 'tcp_resets'],
      [
        /connect\w*\s+(fail|error|refus|timeout)|(fail|refus)\w*\s+(tcp\s+)?connect|connection failures?/,
        'tcp_connect_failures',
      ],
      [
        /(bytes?|traffic|throughput)\s+(receiv|download)|receiv\w*\s+(the\s+most\s+)?(bytes|traffic)|\binbound\b|\bbytes_received\b/,
        'tcp_bytes_received',
      ],
      [/\bbytes?\b|traffic|throughput|\bsent\b|\bsend/, 'tcp_bytes_sent'],
      [/\baccept/, 'tcp_accepts'],
      [/\bconnect/, 'tcp_connects'],
    ],
    correlated: [
      'tcp_connects',
      'tcp_connect_failures',
      'tcp_retransmits',
      'tcp_resets',
      'tcp_bytes_sent',
      'tcp_bytes_received',
    ],
    likelyCause(metric, up) {
      switch (metric) {
        case 'tcp_retransmits':
          if (up.has('tcp_connect_failures') || up.has('tcp_resets'))
            return 'a peer that is unreachable or refusing connections: retransmits rose together with failed connects or resets';
          if (up.has('tcp_bytes_sent'))
            return 'packet loss or congestion on a busy path: retransmits rose with the bytes sent';
          return 'packet loss on the path to a peer, or a slow or overloaded peer: retransmits rose without more traffic';
        case 'tcp_resets':
          return 'connections refused or aborted: a peer restarting, a closed port, or a proxy or timeout cutting connections';
        case 'tcp_connect_failures':
          return 'a dependency that is down or unreachable: connects fail (refused, timed out or unreachable)';
        default:
          return undefined;
      }
    },
  },
  defaultEnabled: true,
  summaries: [],
});
