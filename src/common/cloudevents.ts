/**
 * CloudEvents 1.0 in Kafka binary mode: the event's attributes travel as `ce_*`
 * record headers and its data is the record value. Every producer of a tracefeed
 * topic builds its headers here; the native frame sink (C++) writes the events
 * topic's with the constants of native/src/cloudevents.h, which a test checks
 * against this table (test/common/cloudevents.test.ts).
 */
import { Topics } from './kafka.js';

/** The CloudEvents spec version every record declares. */
export const CE_SPEC_VERSION = '1.0';

/** Header names of the attributes (Kafka protocol binding, binary content mode). */
export const CE_HEADERS = {
  specversion: 'ce_specversion',
  id: 'ce_id',
  source: 'ce_source',
  type: 'ce_type',
  time: 'ce_time',
  contentType: 'content-type',
} as const;

/** What each topic carries: the topic, its `ce_type` and its data's content type. */
export const CLOUD_EVENTS = {
  events: {
    topic: Topics.events,
    type: 'io.tracefeed.events.v1',
    contentType: 'application/vnd.tracefeed.frame.v1',
  },
  features: {
    topic: Topics.features,
    type: 'io.tracefeed.features.v1',
    contentType: 'application/vnd.apache.arrow.stream',
  },
  anomalies: {
    topic: Topics.anomalies,
    type: 'io.tracefeed.anomalies.v1',
    contentType: 'application/json',
  },
  feedback: {
    topic: Topics.feedback,
    type: 'io.tracefeed.feedback.v1',
    contentType: 'application/json',
  },
  analyses: {
    topic: Topics.analyses,
    type: 'io.tracefeed.analyses.v1',
    contentType: 'application/json',
  },
} as const;

export type CloudEventKind = keyof typeof CLOUD_EVENTS;

/** `ce_source` of what a node observed (events, features, anomalies, analyses). */
export function nodeSource(node: string): string {
  return `/node/${node}`;
}

/** `ce_source` of a feedback audit record: who acted. */
export function feedbackSource(actor: string): string {
  return `/feedback/${actor}`;
}

export interface CloudEventAttributes {
  /** Which table entry: gives `ce_type` and the content type. */
  kind: CloudEventKind;
  /** `ce_id`: unique per source (a re-sent record keeps its id). */
  id: string;
  /** `ce_source`: nodeSource() or feedbackSource(). */
  source: string;
  /** `ce_time`, RFC 3339; left out when not given. */
  time?: string;
  /** Overrides the table's content type. */
  contentType?: string;
}

/** The `ce_*` and `content-type` headers of one record (add the record's own headers to them). */
export function cloudEventHeaders(a: CloudEventAttributes): Record<string, string> {
  const h: Record<string, string> = {
    [CE_HEADERS.specversion]: CE_SPEC_VERSION,
    [CE_HEADERS.id]: a.id,
    [CE_HEADERS.source]: a.source,
    [CE_HEADERS.type]: CLOUD_EVENTS[a.kind].type,
  };
  if (a.time !== undefined) h[CE_HEADERS.time] = a.time;
  h[CE_HEADERS.contentType] = a.contentType ?? CLOUD_EVENTS[a.kind].contentType;
  return h;
}
