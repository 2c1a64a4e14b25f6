/** The feature stage's counters (GET /v1/status, /metrics, `tracefeed features` on exit). */
import type { AggregatorCounters } from './aggregator.js';

export interface FeatureStageStats extends AggregatorCounters {
  /** Records sent to the dead-letter topic, by reason. */
  deadLettered: Record<string, number>;
  featureRecordsSent: number;
  /** Records re-delivered after a rebalance and skipped because this process already holds them. */
  redelivered: number;
  anomaliesPublished: number;
  /** Of anomaliesPublished, those fired on a window still open. */
  anomaliesEarly: number;
  openWindows: number;
  /** Closed windows written in a transaction not yet committed (retried until it is). */
  unackedWindows: number;
  /** Transactions committed, and those aborted (their windows kept and retried). */
  transactionsCommitted: number;
  transactionsAborted: number;
  /** Partitions taken over, and given up (revoked, or fenced by a new owner). */
  partitionsAssigned: number;
  partitionsRevoked: number;
  /** Open and unacknowledged windows dropped with a partition given up (its new owner re-reads them). */
  windowsDroppedOnRevoke: number;
  /** Partitions owned now. */
  partitions: number[];
  committed: Record<string, string>;
  lastWindowEnd: string | null;
}

/** Ready once it is a member of its group (it may own no partition: more members than partitions). */
export type FeatureStageHealth = {
  ok: boolean;
  role: 'features';
  group_id: string;
  member: boolean;
  partitions: number[];
  reason?: string;
};
