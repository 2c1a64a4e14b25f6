/** Public surface of the agent. */
export {
  TracefeedAgent,
  NO_MODEL_NOTICE,
  type AskResult,
  type AskOptions,
  type AgentMode,
  type ToolCallRecord,
  type Proposal,
  type TracefeedAgentOptions,
} from './agent.js';
export {
  agentConfigSchema,
  parseAgentConfig,
  resolveModelEndpoint,
  DEFAULT_MODEL,
  type AgentConfig,
  type AgentConfigInput,
  type ModelEndpoint,
} from './config.js';
export { AgentError } from './errors.js';
export { AgentMetrics, type Usage } from './metrics.js';
export {
  AnomalyStore,
  anomalyRef,
  readRecentAnomalies,
  type AnomalyFilter,
} from './anomaly-store.js';
export { ProcessIndex, type ProcessSeen, type ProcessIndexOptions } from './process-index.js';
export {
  FeedbackServiceGateway,
  connectFeedbackGateway,
  summarizeDecisions,
  policySummary,
  type FeedbackGateway,
  type GatewayResult,
  type RecentFeedback,
  type PolicySummary,
  type Verdict,
} from './gateway.js';
export {
  stageFeatureSource,
  httpFeatureSource,
  agentProbeSource,
  httpProbeSource,
  rowsFromIpc,
  type FeatureSource,
  type ProbeSource,
  type ProbeView,
  type FeatureRow,
} from './sources.js';
export {
  ALL_TOOLS,
  type AgentDeps,
  type AgentTool,
  type Citation,
  type ToolResult,
} from './tools.js';
export { explainAnomaly, type Explanation, type Evidence } from './explain.js';
export { parseQuestion, answerDeterministically, type ParsedQuestion } from './deterministic.js';
export {
  AnalysisWorker,
  analysisSchema,
  ANALYSES_TOPIC,
  type Analysis,
  type AnalysisWorkerOptions,
  type AnalysisWorkerStats,
} from './analysis.js';
export { startAgentApi, askRequestSchema, DEFAULT_AGENT_API_PORT } from './api.js';
export { SYSTEM_PROMPT } from './prompt.js';
export { fenceToolData, safeJson } from './untrusted.js';
