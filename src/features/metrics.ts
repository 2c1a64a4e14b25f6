/** Prometheus metrics of the feature stage, read from its counters at scrape time. */
import { Gauge, Registry } from 'prom-client';
import { mirrorCounter } from '../common/metrics.js';
import type { FeatureStageStats } from './stage-stats.js';

export function featureMetrics(stats: () => FeatureStageStats): Registry {
  const registry = new Registry();
  const counters: Array<[string, string, (s: FeatureStageStats) => number]> = [
    ['tracefeed_features_frames_total', 'Frames decoded.', (s) => s.frames],
    ['tracefeed_features_events_total', 'Records aggregated into windows.', (s) => s.events],
    [
      'tracefeed_features_late_events_total',
      'Events for a window already written (not added).',
      (s) => s.late,
    ],
    [
      'tracefeed_features_out_of_range_events_total',
      'Events too far in the past of the wall clock (not added).',
      (s) => s.outOfRange,
    ],
    [
      'tracefeed_features_future_dated_events_total',
      'Events later than the wall clock plus max_future_skew_seconds (not added, frame copied to the DLQ).',
      (s) => s.futureDated,
    ],
    [
      'tracefeed_features_state_clamped_total',
      'Nodes whose committed closed-up-to time was in the future at take-over (clamped to the wall clock).',
      (s) => s.stateClamped,
    ],
    [
      'tracefeed_features_replayed_events_total',
      'Events of windows already committed, re-read after a take-over or restart (skipped).',
      (s) => s.alreadyEmitted,
    ],
    ['tracefeed_features_windows_total', 'Windows closed.', (s) => s.windowsClosed],
    [
      'tracefeed_features_records_total',
      'Feature records (one per window) committed to the features topic.',
      (s) => s.featureRecordsSent,
    ],
    [
      'tracefeed_features_transactions_total',
      'Transactions committed (windows, anomalies, dead letters and offsets of one partition).',
      (s) => s.transactionsCommitted,
    ],
    [
      'tracefeed_features_transactions_aborted_total',
      'Transactions aborted (their windows kept and retried, or dropped when fenced).',
      (s) => s.transactionsAborted,
    ],
    [
      'tracefeed_features_partitions_assigned_total',
      'Input partitions taken over.',
      (s) => s.partitionsAssigned,
    ],
    [
      'tracefeed_features_partitions_revoked_total',
      'Input partitions given up (revoked, or fenced by a new owner).',
      (s) => s.partitionsRevoked,
    ],
    [
      'tracefeed_features_windows_dropped_on_revoke_total',
      'Open or unacknowledged windows dropped with a partition given up (its new owner re-reads them).',
      (s) => s.windowsDroppedOnRevoke,
    ],
    [
      'tracefeed_features_redelivered_records_total',
      'Records re-delivered after a rebalance and skipped (held already, or committed by a previous owner).',
      (s) => s.redelivered,
    ],
    ['tracefeed_features_rows_total', 'Feature rows written.', (s) => s.rowsEmitted],
    ['tracefeed_anomalies_total', 'Anomalies published.', (s) => s.anomaliesPublished],
    [
      'tracefeed_anomalies_early_total',
      'Anomalies published while their window was still open.',
      (s) => s.anomaliesEarly,
    ],
  ];
  for (const [name, help, read] of counters)
    mirrorCounter(registry, name, help, [], () => [[{}, read(stats())]]);
  mirrorCounter(
    registry,
    'tracefeed_features_dead_lettered_total',
    'Records sent to tracefeed.events.dlq.v1, by reason.',
    ['reason'],
    () => Object.entries(stats().deadLettered).map(([reason, v]) => [{ reason }, v]),
  );
  new Gauge({
    name: 'tracefeed_features_open_windows',
    help: 'Windows still open.',
    registers: [registry],
    collect() {
      this.set(stats().openWindows);
    },
  });
  new Gauge({
    name: 'tracefeed_features_unacked_windows',
    help: 'Closed windows whose transaction has not committed yet.',
    registers: [registry],
    collect() {
      this.set(stats().unackedWindows);
    },
  });
  new Gauge({
    name: 'tracefeed_features_partitions',
    help: 'Input partitions owned by this member.',
    registers: [registry],
    collect() {
      this.set(stats().partitions.length);
    },
  });
  return registry;
}
