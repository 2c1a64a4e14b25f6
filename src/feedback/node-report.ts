/** What a node worker reports about its probes, periodically, in Redis. */
import type { ProbeName } from '../wire/layout.js';
import type { ProbeSettings } from '../wire/probe-settings.js';

export interface ProbeReport {
  probe: ProbeName;
  enabled: boolean;
  attached: boolean;
  generation: number;
  settings: ProbeSettings;
  /** Events received per second over the last second. */
  events_per_second: number;
}

export interface NodeReport {
  node: string;
  /** ISO time of the report. */
  at: string;
  probes: ProbeReport[];
  /** Sum of the probes' events/s. */
  events_per_second: number;
  /** Frame bytes sent per second (0 when unknown). */
  bytes_per_second: number;
}
