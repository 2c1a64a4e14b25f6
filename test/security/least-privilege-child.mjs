// The node agent as least-privilege.root.kafka.e2e.test.ts runs it under capsh: start,
// one probe setting change, real events, then one JSON line on stdout with what it saw.
// Arguments: <compiled src dir> <node name> <brokers> [kernel]. With `kernel`, no agent and no
// preflight: each probe family is loaded and attached straight through libbpf, to see what the
// kernel itself refuses.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const [build, node, brokers, mode] = process.argv.slice(2);
const { NodeAgent, DEFAULT_AGENT_OPTIONS } = await import(`${build}/ingest/index.js`);
const { createLogger } = await import(`${build}/common/logger.js`);

const status = readFileSync('/proc/self/status', 'utf8');
const out = { capEff: /CapEff:\s*([0-9a-f]+)/.exec(status)?.[1], uid: process.getuid(), ok: false };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A refused connect to a port nobody listens on (a tcp.connect_fail in the kernel). */
const refused = (port) =>
  new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => resolve());
    s.on('connect', () => (s.destroy(), resolve()));
  });

if (mode === 'kernel') {
  const { PROBE_FAMILIES } = await import(`${build}/ingest/index.js`);
  const { openObject } = await import(`${build}/ingest/native.js`);
  const { bpfObjectPath } = await import(`${build}/common/paths.js`);
  const { cgroup2Root } = await import(`${build}/ingest/cgroup-resolver.js`);
  out.families = {};
  for (const spec of PROBE_FAMILIES) {
    let obj;
    try {
      obj = openObject(bpfObjectPath(spec.object), { ringbufBytes: { rb: 1 << 16 } });
      obj.load();
      for (const p of obj.programs()) {
        try {
          if (spec.attachToCgroupRoot) obj.attach(p.name, cgroup2Root());
          else obj.attach(p.name);
        } catch (err) {
          if (!spec.optionalPrograms?.includes(p.name)) throw err;
        }
      }
      out.families[spec.name] = 'ok';
    } catch (err) {
      out.families[spec.name] = err instanceof Error ? err.message : String(err);
    } finally {
      obj?.close();
    }
  }
  out.ok = Object.values(out.families).every((v) => v === 'ok');
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

let agent;
try {
  agent = new NodeAgent({
    ...DEFAULT_AGENT_OPTIONS,
    nodeName: node,
    brokers: brokers.split(','),
    lingerMs: 50,
    summaryIntervalMs: 1000,
    log: createLogger('least-privilege', 'warn'),
  });
  agent.start();
  out.generation = agent.setProbe('tcp', {
    enabled: true,
    filters: { port: { deny: [9] } },
  }).generation;
  const events = () => Object.fromEntries(agent.probes().map((p) => [p.probe, p.events]));
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    execFileSync('/bin/true');
    await refused(1);
    const e = events();
    if (e.process > 0 && e.tcp > 0 && agent.stats().publisher.framesSent > 0) break;
    await sleep(200);
  }
  out.probes = agent.probes().map((p) => ({
    probe: p.probe,
    attached: p.attached,
    enabled: p.enabled,
    events: p.events,
    generation: p.generation,
  }));
  out.framesSent = agent.stats().publisher.framesSent;
  out.ok = true;
} catch (err) {
  out.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
} finally {
  if (agent) await agent.stop(3000).catch((err) => (out.stopError = String(err)));
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);
