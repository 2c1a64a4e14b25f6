/** Public surface of the node agent and of the event frame format. */
export {
  FRAME_MAGIC,
  FRAME_VERSION,
  decodeFrame,
  decodeFrameHeader,
  encodeFrame,
  walkRecords,
  type Frame,
  type FrameHeader,
  type EncodeFrameInput,
} from '../wire/frame.js';
export {
  decodeEvents,
  decodeFrameEvents,
  decodeRecord,
  type TracefeedEvent,
} from '../wire/event-decoder.js';
export * as layout from '../wire/layout.js';
export {
  NodeAgent,
  DEFAULT_AGENT_OPTIONS,
  type NodeAgentOptions,
  type AgentStats,
  type ProbeStats,
} from './node-agent.js';
export type { PublisherStats } from './node-agent.js';
export { preflight, type PreflightReport } from './preflight.js';
export {
  FAMILIES,
  PROBE_FAMILIES,
  RECORD_SIZE_BY_OP,
  familySpec,
  sourceOf,
  type ProbeFamily,
} from '../families/registry.js';
export type { Family } from '../families/family.js';
export type { ProbeState } from './probe-controller.js';
export {
  probeSettingsSchema,
  probePatchSchema,
  applyPatch,
  defaultSettings,
  type ProbeSettings,
  type ProbePatch,
} from '../wire/probe-settings.js';
export {
  CgroupResolver,
  parseCgroupPath,
  cgroup2Root,
  type CgroupInfo,
} from './cgroup-resolver.js';
export { histogramQuantile } from '../wire/histogram.js';
export { startControlApi, DEFAULT_API_PORT } from './control-api.js';
export { formatAddress } from '../wire/event-decoder.js';
export { NODE_CAPABILITIES, NODE_CAPABILITY_REASONS } from './capabilities.js';
