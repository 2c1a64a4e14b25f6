/**
 * The DNS record layout, from the generated mirror of bpf/events.h only (so
 * src/ingest/layout.ts can list it without an import cycle).
 */
import { TF_DEFINES, TF_ENUMS, TF_STRUCTS } from '../../ingest/layout.generated.js';

/** TF_OP_DNS_RESPONSE. */
export const DNS_OP = TF_ENUMS.tf_op.TF_OP_DNS_RESPONSE;
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
