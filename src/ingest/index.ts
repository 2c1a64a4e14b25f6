/** Public surface of the node agent and of the event frame format. */
/** The wire format the node writes (src/wire): frames, layouts, decoders, schemas. */
export * from '../wire/index.js';
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
export { CgroupResolver, cgroup2Root } from './cgroup-resolver.js';
export { startControlApi, DEFAULT_API_PORT } from './control-api.js';
export { NODE_CAPABILITIES, NODE_CAPABILITY_REASONS } from './capabilities.js';
