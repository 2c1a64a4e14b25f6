/** Public surface of the feedback loop. */
export {
  feedbackRequestSchema,
  nodeSelectorSchema,
  feedbackActionSchema,
  feedbackOriginSchema,
  feedbackParamsSchema,
  parseFeedbackRequest,
  deriveRequestId,
  FEEDBACK_ACTIONS,
  type FeedbackRequest,
  type FeedbackRequestInput,
  type FeedbackAction,
  type FeedbackOrigin,
  type FeedbackParams,
  type NodeSelector,
} from './request.js';
export {
  thresholdsSchema,
  parseThresholds,
  loadThresholds,
  thresholdsJsonSchema,
  boundsOf,
  budgetOf,
  ThresholdsWatcher,
  DEFAULT_THRESHOLDS,
  type Thresholds,
  type ThresholdsInput,
  type ThresholdsStatus,
  type ThresholdsWatcherOptions,
  type Rule,
} from './thresholds.js';
export {
  decide,
  decideAll,
  targetNodes,
  BUDGET_WORKLOAD,
  type Decision,
  type Outcome,
  type PolicyContext,
} from './policy-engine.js';
export { budgetCheck, type BudgetVerdict } from './budget.js';
export { requestsFromAnomaly, ruleMatches, ruleName } from './rules.js';
export {
  AuditTrail,
  readAudit,
  defaultAuditPath,
  AUDIT_STATES,
  type AuditRecord,
  type AuditState,
  type AuditTrailOptions,
} from './audit.js';
export { FeedbackService, type SubmitResult, type RequestView } from './service.js';
export {
  FeedbackController,
  type FeedbackControllerOptions,
  type ControllerStats,
} from './controller.js';
export {
  NodeFeedbackWorker,
  revertPatch,
  type NodeFeedbackWorkerOptions,
  type ProbeTarget,
  type ApplyResult,
  type RevertResult,
} from './node-worker.js';
export type { NodeReport, ProbeReport } from './node-report.js';
export type { NodeStatus, AppliedRecord } from './store.js';
export {
  QUEUE_PREFIX,
  revertJobId,
  type FeedbackJob,
  type ApplyJob,
  type RevertJob,
} from './job.js';
export { redisUrlFrom, DEFAULT_REDIS_URL } from './redis.js';
export {
  JobSigner,
  JobVerifier,
  loadOrCreateSigner,
  loadVerifier,
  installationVerifier,
  signingKeyPath,
  verifyKeyPath,
  canonicalJson,
} from './job-signing.js';
