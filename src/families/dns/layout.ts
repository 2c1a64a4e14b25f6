/**
 * The DNS record layout, from the generated mirror of bpf/events.h only (so
 * src/ingest/layout.ts can list it without an import cycle).
 */
import { TF_DEFINES, TF_ENUMS, TF_STRUCTS } from '../../ingest/layout.generated.js';

/** TF_OP_DNS_RESPONSE. */
export const DNS_OP = TF_ENUMS.tf_op.TF_OP_DNS_RESPONSE;
/** TF_OP_DNS_TIMEOUT: built by the node agent (same struct). */
export const DNS_TIMEOUT_OP = TF_ENUMS.tf_op.TF_OP_DNS_TIMEOUT;
export const DNS_TIMEOUT_EVENT_TYPE = 'dns.timeout';
export const DNS_PROBE_ID = TF_ENUMS.tf_probe.TF_PROBE_DNS;
export const DNS_EVENT_TYPE = 'dns.response';
export const DNS_NAME_LEN = TF_DEFINES.TF_DNS_NAME_LEN;

/** struct tf_dns_event, as a RecordLayout of src/ingest/layout.ts. */
export const DNS_LAYOUT = {
  struct: 'tf_dns_event',
  op: DNS_OP,
  size: TF_STRUCTS.tf_dns_event.size,
  fields: TF_STRUCTS.tf_dns_event.fields,
} as const;

/** Kernel map key and value of tf_dns_pending (struct tf_dns_key, struct tf_dns_query). */
export const DNS_KEY_LAYOUT = {
  struct: 'tf_dns_key',
  op: 0,
  size: TF_STRUCTS.tf_dns_key.size,
  fields: TF_STRUCTS.tf_dns_key.fields,
} as const;
export const DNS_QUERY_LAYOUT = {
  struct: 'tf_dns_query',
  op: 0,
  size: TF_STRUCTS.tf_dns_query.size,
  fields: TF_STRUCTS.tf_dns_query.fields,
} as const;
