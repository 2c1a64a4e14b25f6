/** Scenario suite: real workloads, injected incidents, the adaptive loop measured. */
export { ScenarioCgroup, type CgroupLimits } from './cgroup.js';
export { LossyLink } from './netns.js';
export { INCIDENTS, INCIDENT_NAMES, type IncidentClass, type IncidentName } from './incidents.js';
export {
  ScenarioSession,
  FULL_RATE,
  scenarioThresholds,
  type BystanderCheck,
  type ChangeRecord,
  type IncidentResult,
  type SessionOptions,
  type SessionSummary,
} from './session.js';
export {
  runScenario,
  resolveIncidents,
  type ScenarioReport,
  type ScenarioRunOptions,
} from './runner.js';
export { writeReport, markdownReport } from './report.js';
