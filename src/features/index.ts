/** Public surface of the feature stage. */
export {
  FeatureStage,
  type FeatureStageHealth,
  type FeatureStageStats,
  type WindowListener,
} from './feature-stage.js';
export {
  featureStageConfigSchema,
  type FeatureStageConfig,
  type FeatureStageConfigInput,
} from './config.js';
export {
  WindowAggregator,
  DEFAULT_AGGREGATOR_OPTIONS,
  type ClosedWindow,
  type AggregatorOptions,
} from './aggregator.js';
export { buildWindowBatch, featureSchema } from './arrow-batch.js';
export {
  AnomalyDetector,
  anomalyConfigSchema,
  metricRuleSchema,
  DEFAULT_METRICS,
  type AnomalyConfig,
  type AnomalyConfigInput,
  type ClosedWindowAnomalies,
} from './anomaly-detector.js';
export {
  anomalySchema,
  ANOMALY_SCHEMA_VERSION,
  ANOMALY_BASES,
  type Anomaly,
  type AnomalyBasis,
} from './anomaly.js';
export { selectRows, readArrowsFile, toIpcStream, type FeatureQuery } from './feature-query.js';
export { SUM_COLUMNS, QUANTILE_COLUMNS, FEATURE_SCHEMA_VERSION } from './columns.js';
