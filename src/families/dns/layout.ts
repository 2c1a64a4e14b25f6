/** The DNS records and map structs, from the generated mirror of bpf/events.h. */
import { TF_DEFINES } from '../../wire/layout.generated.js';
import { Op, Probe, layoutOf, type RecordLayout } from '../../wire/layout.js';

/** TF_OP_DNS_RESPONSE. */
export const DNS_OP = Op.DNS_RESPONSE;
/** TF_OP_DNS_TIMEOUT: built by the node agent (same struct). */
export const DNS_TIMEOUT_OP = Op.DNS_TIMEOUT;
/** TF_OP_DNS_LOOKUPS: per-cgroup lookups started, flushed by the node agent from tf_dns_lookups. */
export const DNS_LOOKUPS_OP = Op.DNS_LOOKUPS;
export const DNS_PROBE_ID = Probe.DNS;
export const DNS_NAME_LEN = TF_DEFINES.TF_DNS_NAME_LEN;

/** struct tf_dns_event. */
export const DNS_LAYOUT: RecordLayout = layoutOf('tf_dns_event', DNS_OP);

/** Kernel map key and value of tf_dns_pending (struct tf_dns_key, struct tf_dns_query). */
export const DNS_KEY_LAYOUT: RecordLayout = layoutOf('tf_dns_key');
export const DNS_QUERY_LAYOUT: RecordLayout = layoutOf('tf_dns_query');

/** struct tf_dns_lookups (summary record of tf_dns_lookups: cgroup v2 id -> u64). */
export const DNS_LOOKUPS_LAYOUT: RecordLayout = layoutOf('tf_dns_lookups', DNS_LOOKUPS_OP);
