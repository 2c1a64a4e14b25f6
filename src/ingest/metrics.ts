/**
 * Prometheus metrics of the node agent, read from its stats at scrape time.
 * Names follow tracefeed_<what>_<unit>, counters end in _total.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { mirrorCounter } from '../common/metrics.js';
import type { NodeAgent } from './node-agent.js';

export function agentMetrics(agent: NodeAgent): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tracefeed_process_' });
  const probes = () => agent.probes();

  mirrorCounter(
    registry,
    'tracefeed_events_total',
    'Events received from the kernel, by probe.',
    ['probe'],
    () => probes().map((p) => [{ probe: p.probe }, p.events]),
  );
  mirrorCounter(
    registry,
    'tracefeed_kernel_events_total',
    'Events the kernel emitted into ring buffers, by probe.',
    ['probe'],
    () => probes().map((p) => [{ probe: p.probe }, p.emitted]),
  );
  mirrorCounter(
    registry,
    'tracefeed_events_dropped_total',
    'Events not delivered, by probe and reason (ringbuf_full, filtered, sampled_out, map_full, and for tcp socket_evicted, socket_claim_lost in the kernel; buffer_full in the agent).',
    ['probe', 'reason'],
    () => {
      const out: Array<[Record<string, string>, number]> = [];
      for (const p of probes())
        for (const [reason, n] of Object.entries(p.drops))
          out.push([{ probe: p.probe, reason }, n]);
      out.push([{ probe: 'all', reason: 'buffer_full' }, agent.stats().publisher.eventsDropped]);
      return out;
    },
  );
  mirrorCounter(
    registry,
    'tracefeed_probe_map_update_failures_total',
    'Map writes that failed while applying probe settings (each rolled the settings back), by probe and map.',
    ['probe', 'map'],
    () =>
      probes().flatMap((p) =>
        Object.entries(p.map_update_failures).map(([map, n]): [Record<string, string>, number] => [
          { probe: p.probe, map },
          n,
        ]),
      ),
  );
  mirrorCounter(
    registry,
    'tracefeed_kafka_records_sent_total',
    'Frames (Kafka records) acknowledged by the broker.',
    [],
    () => [[{}, agent.stats().publisher.framesSent]],
  );
  mirrorCounter(
    registry,
    'tracefeed_kafka_events_sent_total',
    'Events inside acknowledged frames.',
    [],
    () => [[{}, agent.stats().publisher.eventsSent]],
  );
  mirrorCounter(
    registry,
    'tracefeed_kafka_bytes_sent_total',
    'Bytes of acknowledged frames.',
    [],
    () => [[{}, agent.stats().publisher.bytesSent]],
  );
  mirrorCounter(
    registry,
    'tracefeed_kafka_send_errors_total',
    'Failed produce attempts.',
    [],
    () => [[{}, agent.stats().publisher.sendErrors]],
  );

  mirrorCounter(
    registry,
    'tracefeed_overload_changes_total',
    'Overload sampling steps the node took itself, by probe and direction (up, down).',
    ['probe', 'direction'],
    () =>
      agent
        .stats()
        .overloadChanges.map((c) => [{ probe: c.probe, direction: c.direction }, c.count]),
  );
  mirrorCounter(
    registry,
    'tracefeed_cgroup_stats_records_total',
    'TF_OP_CGROUP_STATS records built from the cgroup files.',
    [],
    () => [[{}, agent.stats().cgroupStats?.records ?? 0]],
  );
  mirrorCounter(
    registry,
    'tracefeed_cgroup_stats_read_failures_total',
    'cgroup file reads that failed (files that do not exist are not failures).',
    [],
    () => [[{}, agent.stats().cgroupStats?.readFailures ?? 0]],
  );

  new Gauge({
    name: 'tracefeed_buffered_bytes',
    help: 'Bytes of frames waiting for Kafka.',
    registers: [registry],
    collect() {
      this.set(agent.stats().publisher.bufferedBytes);
    },
  });
  new Gauge({
    name: 'tracefeed_kafka_lag_seconds',
    help: 'Age of the oldest frame not yet acknowledged.',
    registers: [registry],
    collect() {
      this.set(agent.stats().publisher.lagMs / 1000);
    },
  });
  new Gauge({
    name: 'tracefeed_probe_enabled',
    help: '1 when the probe is enabled and attached.',
    labelNames: ['probe'],
    registers: [registry],
    collect() {
      for (const p of probes()) this.set({ probe: p.probe }, p.enabled && p.attached ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tracefeed_probe_generation',
    help: 'Filter generation of the probe (advances on every change).',
    labelNames: ['probe'],
    registers: [registry],
    collect() {
      for (const p of probes()) this.set({ probe: p.probe }, p.generation);
    },
  });
  new Gauge({
    name: 'tracefeed_probe_sample_n',
    help: 'The probe keeps 1 in N events.',
    labelNames: ['probe'],
    registers: [registry],
    collect() {
      for (const p of probes()) this.set({ probe: p.probe }, p.effective_sample_n);
    },
  });
  new Gauge({
    name: 'tracefeed_probe_overload_n',
    help: 'Factor the node applied to sample_n itself under overload (1 = none).',
    labelNames: ['probe'],
    registers: [registry],
    collect() {
      for (const p of probes()) this.set({ probe: p.probe }, p.overload_n);
    },
  });
  return registry;
}
