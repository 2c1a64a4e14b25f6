/**
 * Queries that got no response: every summary interval the node agent scans
 * the dns probe's tf_dns_pending map and, for each query older than the
 * timeout, deletes it and writes one TF_OP_DNS_TIMEOUT record (struct
 * tf_dns_event: the query's task, cgroup, name and type; latency_ns its age;
 * rcode, flags and answers 0). A response that arrives after that is counted
 * as unmatched by the kernel (dns_unmatched_responses).
 */
import { HEADER_LAYOUT, fieldOffset, type RecordLayout } from '../../wire/layout.js';
import type { NativeBpfObject } from '../../ingest/native.js';
import { writeRecordHeader } from '../../wire/record-header.js';
import { DNS_KEY_LAYOUT, DNS_LAYOUT, DNS_QUERY_LAYOUT, DNS_TIMEOUT_OP } from './layout.js';

/** A query unanswered this long is timed out (glibc's resolver gives up after 5 s per try). */
export const DNS_TIMEOUT_NS = 5_000_000_000n;

const at = (l: RecordLayout, name: string) => fieldOffset(l, name);
const K = DNS_KEY_LAYOUT;
const Q = DNS_QUERY_LAYOUT;
const E = DNS_LAYOUT;
const bytes = (l: RecordLayout, name: string) => l.fields.find((f) => f.name === name)!.size;

/**
 * Collects the timed-out queries of `obj` (a loaded dns.bpf.o) as
 * TF_OP_DNS_TIMEOUT records stamped `ktime` (CLOCK_MONOTONIC now).
 */
export function collectDnsTimeouts(
  obj: NativeBpfObject,
  ktime: bigint,
  timeoutNs: bigint = DNS_TIMEOUT_NS,
): { records: Buffer; count: number } {
  const dump = obj.mapDump('tf_dns_pending');
  const out: Buffer[] = [];
  for (let i = 0; i < dump.count; i++) {
    const key = dump.keys.subarray(i * K.size, (i + 1) * K.size);
    const q = dump.values.subarray(i * Q.size, (i + 1) * Q.size);
    const start = q.readBigUInt64LE(at(Q, 'start_ns'));
    if (ktime - start < timeoutNs) continue;
    // Gone already: its response came (the kernel emitted it) or LRU eviction took it.
    if (!obj.mapDelete('tf_dns_pending', key)) continue;
    const r = Buffer.alloc(E.size);
    writeRecordHeader(r, 0, DNS_TIMEOUT_OP, E.size, ktime, q.readUInt32LE(at(Q, 'generation')));
    r.writeUInt8(q.readUInt8(at(Q, 'hdr_flags')), at(HEADER_LAYOUT, 'flags'));
    r.writeUInt32LE(q.readUInt32LE(at(Q, 'weight')) || 1, at(HEADER_LAYOUT, 'sample_weight'));
    r.writeUInt32LE(q.readUInt32LE(at(Q, 'pid')), at(E, 'pid'));
    r.writeUInt16LE(q.readUInt16LE(at(Q, 'family')), at(E, 'family'));
    r.writeUInt16LE(q.readUInt16LE(at(Q, 'sport')), at(E, 'sport'));
    r.writeUInt16LE(key.readUInt16LE(at(K, 'server_port')), at(E, 'dport'));
    r.writeUInt16LE(key.readUInt16LE(at(K, 'id')), at(E, 'id'));
    r.writeUInt16LE(q.readUInt16LE(at(Q, 'qtype')), at(E, 'qtype'));
    r.writeUInt8(q.readUInt8(at(Q, 'name_len')), at(E, 'name_len'));
    r.writeUInt8(q.readUInt8(at(Q, 'transport')), at(E, 'transport'));
    r.writeBigUInt64LE(q.readBigUInt64LE(at(Q, 'cgroup_id')), at(E, 'cgroup_id'));
    r.writeBigUInt64LE(ktime - start, at(E, 'latency_ns'));
    q.copy(r, at(E, 'saddr'), at(Q, 'saddr'), at(Q, 'saddr') + 16);
    key.copy(r, at(E, 'daddr'), at(K, 'server'), at(K, 'server') + 16);
    q.copy(r, at(E, 'comm'), at(Q, 'comm'), at(Q, 'comm') + bytes(Q, 'comm'));
    q.copy(r, at(E, 'name'), at(Q, 'name'), at(Q, 'name') + bytes(Q, 'name'));
    out.push(r);
  }
  return { records: Buffer.concat(out), count: out.length };
}
