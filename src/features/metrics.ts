/** Prometheus metrics of the feature stage, read from its counters at scrape time. */
import { Gauge, Registry } from 'prom-client';
import { mirrorCounter } from '../common/metrics.js';
import type { FeatureStageStats } from './feature-stage.js';

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
      'Nodes whose saved closed-up-to time was in the future at load (clamped to the wall clock).',
      (s) => s.stateClamped,
    ],
    [
      'tracefeed_features_replayed_events_total',
      'Events of windows written before a restart (skipped).',
      (s) => s.alreadyEmitted,
    ],
    ['tracefeed_features_windows_total', 'Windows written.', (s) => s.windowsClosed],
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
  return registry;
}
