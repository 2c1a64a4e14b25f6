/**
 * The node agent: loads the probe families, drains their ring buffers in
 * batches, frames many events into one Kafka record and publishes them.
 */
import { hostname } from 'node:os';
import type { Logger } from '../common/logger.js';
import { Topics } from '../common/kafka.js';
import { bpfObjectPath } from '../common/paths.js';
import { encodeFrame, walkRecords } from './frame.js';
import { DROP_REASON_MAX, DROP_REASON_NAMES, PROBE_OF_OP, Probe } from './layout.js';
import { loadNative, openObject, toBpfError, type NativeBpfObject } from './native.js';
import { FramePublisher, type PublisherStats } from './publisher.js';
import { preflight } from './preflight.js';

export interface NodeAgentOptions {
  /** Node name put in every frame and used as the Kafka key. Default: os.hostname(). */
  nodeName: string;
  /** Kafka bootstrap brokers. */
  brokers: string[];
  /** Events topic. Default `tracefeed.events.v1`. */
  topic: string;
  /** Largest frame (one Kafka record), bytes. Default 512 KiB. */
  frameMaxBytes: number;
  /** Longest events wait to be framed, ms. Default 200. */
  lingerMs: number;
  /** Bytes of frames buffered while Kafka is unreachable; past it frames are dropped and counted. Default 64 MiB. */
  bufferMaxBytes: number;
  /** Ring buffer size per probe family, bytes (power of two). Default 1 MiB. */
  ringBytes: number;
  /** Kernel wakes the drain thread only once this many bytes wait. Default 64 KiB. */
  wakeupBytes: number;
  log: Logger;
}

export const DEFAULT_AGENT_OPTIONS = {
  nodeName: hostname(),
  topic: Topics.events,
  frameMaxBytes: 512 * 1024,
  lingerMs: 200,
  bufferMaxBytes: 64 * 1024 * 1024,
  ringBytes: 1024 * 1024,
  wakeupBytes: 64 * 1024,
} as const;

/** Probe families and the programs each attaches. */
const FAMILIES: ReadonlyArray<{ family: string; probeId: number; programs: string[] }> = [
  { family: 'process', probeId: Probe.PROCESS, programs: ['handle_exec', 'handle_exit'] },
];

export interface ProbeStats {
  probe: string;
  attached: boolean;
  programIds: number[];
  /** Events received from the kernel into user space. */
  events: number;
  /** Events the kernel did not emit, by reason (ringbuf_full, filtered, sampled_out). */
  kernelDrops: Record<string, number>;
}

export interface AgentStats {
  node: string;
  startedAt: string;
  uptimeMs: number;
  probes: ProbeStats[];
  eventsByType: Record<string, number>;
  framesBuilt: number;
  /** Records rejected before framing (malformed from the ring or the walk). */
  malformed: number;
  publisher: PublisherStats;
}

interface LoadedFamily {
  family: string;
  probeId: number;
  programs: string[];
  obj: NativeBpfObject;
}

export class NodeAgent {
  private readonly families: LoadedFamily[] = [];
  private readonly publisher: FramePublisher;
  private readonly bootTimeNs: bigint;
  private readonly startedAt = Date.now();
  private sequence = 0n;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pendingEvents = 0;
  private timer: NodeJS.Timeout | undefined;
  private framesBuilt = 0;
  private malformed = 0;
  private readonly eventsByOp = new Map<number, number>();
  private readonly eventsByProbe = new Map<string, number>();
  private stopped = false;

  constructor(private readonly opts: NodeAgentOptions) {
    this.publisher = new FramePublisher({
      brokers: opts.brokers,
      clientId: `tracefeed-agent-${opts.nodeName}`,
      topic: opts.topic,
      bufferMaxBytes: opts.bufferMaxBytes,
      sendMaxBytes: 4 * 1024 * 1024,
      retryInitialMs: 200,
      log: opts.log,
    });
    // CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall clock: Node's hrtime is the same clock.
    this.bootTimeNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  }

  /** Loads and attaches every probe family and starts publishing. */
  start(): void {
    preflight(this.opts.log);
    const native = loadNative();
    native.setLogger((level, message) => {
      const line = message.trimEnd();
      if (level === 'warn') this.opts.log.warn({ libbpf: true }, line);
      else this.opts.log.debug({ libbpf: true }, line);
    });
    this.publisher.start();
    try {
      for (const f of FAMILIES) {
        const obj = openObject(bpfObjectPath(f.family), {
          ringbufBytes: { rb: this.opts.ringBytes },
          consts: { wakeup_bytes: BigInt(this.opts.wakeupBytes) },
        });
        this.families.push({ ...f, obj });
        obj.load();
        for (const p of f.programs) obj.attach(p);
        obj.startRing(
          'rb',
          {
            batchBytes: Math.min(256 * 1024, this.opts.frameMaxBytes),
            flushMs: 100,
            maxPendingBatches: 16,
          },
          (batch, n) => this.onBatch(batch, n),
        );
        this.opts.log.info({ probe: f.family, programs: f.programs }, 'probe attached');
      }
    } catch (err) {
      this.closeFamilies();
      throw toBpfError(err);
    }
    this.timer = setInterval(() => this.flush(), this.opts.lingerMs);
  }

  private onBatch(batch: Buffer, n: number): void {
    if (this.stopped) return;
    let counted = 0;
    try {
      walkRecords(batch, (op) => {
        counted++;
        this.eventsByOp.set(op, (this.eventsByOp.get(op) ?? 0) + 1);
        const probe = PROBE_OF_OP.get(op) ?? 'unknown';
        this.eventsByProbe.set(probe, (this.eventsByProbe.get(probe) ?? 0) + 1);
      });
    } catch (err) {
      // The addon validates every sample, so this is a bug; count and drop the batch.
      this.malformed += n;
      this.opts.log.error(
        { err: (err as Error).message },
        'malformed batch from ring buffer dropped',
      );
      return;
    }
    if (this.pendingBytes + batch.byteLength > this.opts.frameMaxBytes) this.flush();
    this.pending.push(batch);
    this.pendingBytes += batch.byteLength;
    this.pendingEvents += counted;
    if (this.pendingBytes >= this.opts.frameMaxBytes) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const seq = this.sequence++;
    const value = encodeFrame({
      node: this.opts.nodeName,
      bootTimeNs: this.bootTimeNs,
      sequence: seq,
      chunks: this.pending,
      eventCount: this.pendingEvents,
    });
    const now = Date.now();
    this.publisher.enqueue({
      key: this.opts.nodeName,
      value,
      events: this.pendingEvents,
      queuedAt: now,
      headers: {
        ce_specversion: '1.0',
        ce_id: `${this.opts.nodeName}:${this.startedAt}:${seq}`,
        ce_source: `/node/${this.opts.nodeName}`,
        ce_type: 'io.tracefeed.events.v1',
        ce_time: new Date(now).toISOString(),
        'content-type': 'application/vnd.tracefeed.frame.v1',
        tracefeed_event_count: String(this.pendingEvents),
      },
    });
    this.framesBuilt++;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingEvents = 0;
  }

  stats(): AgentStats {
    const probes: ProbeStats[] = this.families.map((f) => {
      const drops: Record<string, number> = {};
      let counters: bigint[] = [];
      try {
        counters = f.obj.sumPercpuCounters('tf_drops');
      } catch {
        counters = [];
      }
      for (let r = 0; r < DROP_REASON_MAX - 1; r++) {
        drops[DROP_REASON_NAMES[r] ?? String(r)] = Number(
          counters[f.probeId * DROP_REASON_MAX + r] ?? 0n,
        );
      }
      let programs: Array<{ id: number; attached: boolean }> = [];
      try {
        programs = f.obj.programs();
      } catch {
        programs = [];
      }
      return {
        probe: f.family,
        attached: programs.length > 0 && programs.every((p) => p.attached),
        programIds: programs.map((p) => p.id),
        events: this.eventsByProbe.get(f.family) ?? 0,
        kernelDrops: drops,
      };
    });
    const eventsByType: Record<string, number> = {};
    for (const [op, n] of this.eventsByOp) {
      eventsByType[op === 1 ? 'process.exec' : op === 2 ? 'process.exit' : `op.${op}`] = n;
    }
    return {
      node: this.opts.nodeName,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeMs: Date.now() - this.startedAt,
      probes,
      eventsByType,
      framesBuilt: this.framesBuilt,
      malformed: this.malformed,
      publisher: this.publisher.stats(),
    };
  }

  /** Detaches probes, flushes what is buffered (bounded by `flushTimeoutMs`) and returns the final stats. */
  async stop(flushTimeoutMs = 5000): Promise<AgentStats> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const f of this.families) {
      try {
        f.obj.stopRing();
      } catch (err) {
        this.opts.log.warn(
          { err: (err as Error).message, probe: f.family },
          'stopping ring failed',
        );
      }
    }
    this.flush();
    const final = this.stats();
    this.stopped = true;
    this.closeFamilies();
    await this.publisher.stop(flushTimeoutMs);
    return { ...final, publisher: this.publisher.stats() };
  }

  private closeFamilies(): void {
    for (const f of this.families.splice(0)) {
      try {
        f.obj.close();
      } catch (err) {
        this.opts.log.warn(
          { err: (err as Error).message, probe: f.family },
          'closing probe failed',
        );
      }
    }
  }
}
