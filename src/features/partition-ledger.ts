/**
 * The feature stage's consumer and offset ledger (docs/exactly-once.md): a member of
 * the consumer group on the events topic that owns some of its partitions. Each owned
 * partition has its own transactional producer (`<prefix>-<group>-<topic>-<partition>`);
 * one transaction carries the partition's pending outputs (output-sinks.ts) and its
 * consumer offset, with the event time up to which each node's windows are written as
 * the offset's metadata. The committed offset never passes the first record of a window
 * still open. A new owner of a partition fences the old one (same transactional id),
 * then resumes from the offset and metadata committed.
 *
 * What a record means is the stage's: the ledger hands each record of an owned
 * partition to `hooks.record`, in offset order and once, and asks the stage to restore
 * or drop a partition's windows when it takes it over or gives it up.
 */
import type {
  Admin,
  Consumer,
  IHeaders,
  Kafka,
  PartitionOffset,
  Producer,
  Transaction,
} from 'kafkajs';
import type { Logger } from '../common/logger.js';
import type { FeatureStageConfig } from './config.js';
import { emptyOutputs, type OutputSinks, type PendingOutputs } from './output-sinks.js';

/** What this instance holds for one input partition it owns. */
export interface OwnedPartition {
  partition: number;
  producer: Producer;
  /** Next offset to read (everything below it was ingested, or is covered by the committed offset). */
  consumed: number;
  /** Offset committed (-1: none). */
  committed: number;
  /**
   * The last batch reached the partition's high watermark, and no rebalance since: only
   * then may its nodes' windows close by the wall clock.
   */
  caughtUp: boolean;
  /** Outputs written in a transaction not committed yet. */
  out: PendingOutputs;
}

/** A record of the events topic as the ledger hands it on. */
export interface InputRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
}

export interface LedgerHooks {
  /** A record of an owned partition not ingested before (in offset order). */
  record(part: OwnedPartition, offset: number, record: InputRecord): void;
  /** After each batch, in the same queue (closes windows and commits). */
  afterBatch(): Promise<void>;
  /** A partition taken over: its nodes' windows are written up to these event times (ms). */
  restore(partition: number, closedUpTo: Record<string, number>): void;
  /** A partition given up: forget its open windows; returns how many. */
  drop(partition: number): number;
  /** The nodes' closed-up-to times of a partition, at most `limit` nodes (latest heard first). */
  closedUpTo(partition: number, limit: number): Record<string, number>;
}

/** Offset metadata: per node, the event time up to which windows of the partition are written. */
interface OffsetMetadata {
  v: 1;
  closed_up_to_ms: Record<string, number>;
}

/** Brokers keep at most 4096 bytes of offset metadata by default. */
const MAX_METADATA_BYTES = 3800;

/** Errors after which a transactional producer is fenced for good: another owner took the id. */
const FENCED = new Set([
  'INVALID_PRODUCER_EPOCH',
  'PRODUCER_FENCED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
]);

function isFenced(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && FENCED.has(type)) return true;
    if (e instanceof Error && /fenced|INVALID_PRODUCER_EPOCH/i.test(e.message)) return true;
  }
  return false;
}

type Committed = Map<number, { offset: number; metadata: Record<string, number> | undefined }>;

export interface PartitionLedgerOptions {
  kafka: Kafka;
  config: FeatureStageConfig;
  sinks: OutputSinks;
  hooks: LedgerHooks;
  log: Logger;
}

export class PartitionLedger {
  private consumer: Consumer | undefined;
  private admin: Admin | undefined;
  private chain: Promise<void> = Promise.resolve();
  private readonly owned = new Map<number, OwnedPartition>();
  /** Partitions paused after being fenced, until the next assignment. */
  private readonly paused = new Set<number>();
  private memberId: string | undefined;
  /** An assignment whose take-over failed in part (retried by the tick). */
  private takeoverPending: { assigned: number[]; memberId: string } | undefined;
  /** Records re-delivered after a rebalance and skipped (already held, or covered by the committed offset). */
  redelivered = 0;
  transactionsCommitted = 0;
  transactionsAborted = 0;
  partitionsAssigned = 0;
  partitionsRevoked = 0;
  windowsDroppedOnRevoke = 0;

  constructor(private readonly opts: PartitionLedgerOptions) {}

  /** The transactional id of an input partition's producer. */
  transactionalId(partition: number): string {
    const c = this.opts.config;
    return `${c.transactional_id_prefix}-${c.group_id}-${c.topics.events}-${partition}`;
  }

  /** A member of its group (it may own no partition: more members than partitions). */
  get member(): boolean {
    return this.memberId !== undefined && this.consumer !== undefined;
  }

  /** The partition if this member owns it. */
  get(partition: number): OwnedPartition | undefined {
    return this.owned.get(partition);
  }

  /** The partitions owned now, in the order they were taken over. */
  ownedPartitions(): OwnedPartition[] {
    return [...this.owned.values()];
  }

  /** Partitions owned now, in order. */
  partitions(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /** Committed offsets of the partitions owned, and their closed windows not committed yet. */
  ledger(): { committed: Record<string, string>; unacked: number } {
    const committed: Record<string, string> = {};
    let unacked = 0;
    for (const [p, part] of this.owned) {
      if (part.committed >= 0) committed[String(p)] = String(part.committed);
      unacked += part.out.unacked.length;
    }
    return { committed, unacked };
  }

  async start(): Promise<void> {
    const { kafka, config: c, hooks } = this.opts;
    this.admin = kafka.admin();
    await this.admin.connect();
    this.consumer = kafka.consumer({
      groupId: c.group_id,
      maxWaitTimeInMs: 250,
      sessionTimeout: c.session_timeout_ms,
      heartbeatInterval: Math.min(3000, Math.floor(c.session_timeout_ms / 3)),
      readUncommitted: false,
    });
    const consumer = this.consumer;
    // Every join (the first, and each rebalance) states the partitions this member owns now:
    // the hand-over runs in the same queue as the batches, before any batch of the new generation.
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const assigned = e.payload.memberAssignment[c.topics.events] ?? [];
      const memberId = e.payload.memberId;
      void this.serial(() => this.handover(assigned, memberId)).catch((err: unknown) =>
        this.opts.log.error(
          { err },
          'feature stage partition hand-over failed: retried in a second',
        ),
      );
    });
    // While the group rebalances nothing is fetched: no partition counts as read to its end.
    consumer.on(consumer.events.REBALANCING, () => {
      for (const part of this.owned.values()) part.caughtUp = false;
    });
    await consumer.connect();
    await consumer.subscribe({ topic: c.topics.events, fromBeginning: c.from_beginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        await this.serial(async () => {
          const part = this.owned.get(batch.partition);
          if (!part) return; // not (or no longer) ours: the owner reads it
          for (const m of batch.messages) {
            if (!isRunning() || isStale()) {
              part.caughtUp = false;
              break;
            }
            const offset = Number(m.offset);
            // After a rebalance the group re-delivers from the committed offset; what this
            // process already holds, or a previous owner already committed, is not added again.
            if (offset < part.consumed) {
              this.redelivered++;
              resolveOffset(m.offset);
              continue;
            }
            hooks.record(part, offset, { key: m.key, value: m.value, headers: m.headers ?? {} });
            part.consumed = offset + 1;
            resolveOffset(m.offset);
          }
          // Read to the end of the partition: a quiet node there is quiet indeed.
          part.caughtUp = Number(batch.lastOffset()) + 1 >= Number(batch.highWatermark);
          await hooks.afterBatch();
          await heartbeat();
        });
      },
    });
  }

  /** Runs `fn` after everything queued before it: windows, commits and hand-overs never interleave. */
  serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Retries an assignment whose take-over failed in part, unless a later one replaced it. */
  retryTakeOver(): void {
    const retry = this.takeoverPending;
    // Only while no later assignment replaced it (checked when its turn comes).
    if (retry)
      void this.serial(async () => {
        if (this.takeoverPending === retry && retry.memberId === this.memberId)
          await this.handover(retry.assigned, retry.memberId);
      }).catch((err: unknown) => this.opts.log.warn({ err }, 'partition take-over retry failed'));
  }

  /**
   * Takes the partitions of a new assignment: gives up those no longer assigned (their open
   * and unacknowledged windows are dropped: the new owner re-reads them from the committed
   * offset, which is at or before their first record), and takes over the new ones: first
   * fence any previous owner (initialising the partition's transactional id aborts its open
   * transaction and refuses its later ones), then resume from what is committed now.
   */
  private async handover(assigned: number[], memberId: string): Promise<void> {
    this.takeoverPending = undefined;
    try {
      await this.takeOver(assigned, memberId);
    } catch (err) {
      // Retried by the tick unless a later assignment comes first.
      this.takeoverPending = { assigned, memberId };
      throw err;
    }
  }

  private async takeOver(assigned: number[], memberId: string): Promise<void> {
    const { kafka, config, hooks, log } = this.opts;
    // A new member id: this member was dropped from the group (its session expired), so
    // whatever it held may have been owned by another since: nothing is kept.
    const rejoined = this.memberId !== undefined && memberId !== this.memberId;
    this.memberId = memberId;
    const keep = new Set(rejoined ? [] : assigned);
    for (const p of [...this.owned.keys()]) if (!keep.has(p)) await this.giveUp(p, 'revoked');
    if (this.paused.size > 0) {
      this.consumer?.resume([{ topic: config.topics.events, partitions: [...this.paused] }]);
      this.paused.clear();
    }
    const fresh = assigned.filter((p) => !this.owned.has(p));
    if (fresh.length === 0) return;
    const producers: Array<{ partition: number; producer: Producer }> = [];
    const failed: number[] = [];
    for (const partition of fresh) {
      const producer = kafka.producer({
        transactionalId: this.transactionalId(partition),
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        transactionTimeout: Math.max(10_000, config.session_timeout_ms),
      });
      try {
        await producer.connect();
        const t = await producer.transaction(); // InitProducerId: the previous owner is fenced
        await t.abort();
        producers.push({ partition, producer });
      } catch (err) {
        failed.push(partition);
        log.warn(
          { partition, err: (err as Error).message },
          'partition take-over failed: retried in a second',
        );
        await producer.disconnect().catch(() => undefined);
      }
    }
    if (failed.length > 0) this.takeoverPending = { assigned, memberId };
    let committed: Committed;
    try {
      committed = await this.fetchCommitted();
    } catch (err) {
      for (const { producer } of producers) await producer.disconnect().catch(() => undefined);
      throw err;
    }
    for (const { partition, producer } of producers) {
      const at = committed.get(partition);
      const offset = at?.offset ?? -1;
      if (at?.metadata) hooks.restore(partition, at.metadata);
      this.owned.set(partition, {
        partition,
        producer,
        consumed: offset,
        committed: offset,
        caughtUp: false,
        out: emptyOutputs(),
      });
      this.partitionsAssigned++;
      log.info(
        { partition, committed: offset, nodes: Object.keys(at?.metadata ?? {}).length },
        'partition taken over',
      );
    }
  }

  /** The group's committed offset and window metadata per partition of the events topic. */
  private async fetchCommitted(): Promise<Committed> {
    const c = this.opts.config;
    const res = await this.admin!.fetchOffsets({ groupId: c.group_id, topics: [c.topics.events] });
    const out: Committed = new Map();
    for (const t of res)
      for (const p of t.partitions) {
        let metadata: Record<string, number> | undefined;
        if (p.metadata) {
          try {
            const m = JSON.parse(p.metadata) as Partial<OffsetMetadata>;
            if (m.v === 1 && m.closed_up_to_ms && typeof m.closed_up_to_ms === 'object')
              metadata = m.closed_up_to_ms;
          } catch {
            this.opts.log.warn(
              { partition: p.partition, metadata: p.metadata.slice(0, 80) },
              "committed offset metadata is not the feature stage's: ignored",
            );
          }
        }
        out.set(p.partition, { offset: Number(p.offset), metadata });
      }
    return out;
  }

  /** Forgets a partition: its windows are re-read by whoever owns it next. */
  private async giveUp(partition: number, why: 'revoked' | 'fenced'): Promise<void> {
    const part = this.owned.get(partition);
    if (!part) return;
    this.owned.delete(partition);
    const dropped = this.opts.hooks.drop(partition) + part.out.unacked.length;
    this.windowsDroppedOnRevoke += dropped;
    this.partitionsRevoked++;
    this.opts.log.info({ partition, why, windows_dropped: dropped }, 'partition given up');
    await part.producer.disconnect().catch(() => undefined);
  }

  /**
   * One transaction for one partition: its pending outputs, and the offset up to which
   * everything is written (never past `openFrom`, the first record of a window still open),
   * with the nodes' closed-up-to times as its metadata. On failure the transaction is
   * aborted and everything stays for the next attempt; when fenced, the partition is given up.
   */
  async commit(part: OwnedPartition, openFrom: number | undefined): Promise<void> {
    const { config: c, sinks, log } = this.opts;
    const safe = openFrom === undefined ? part.consumed : Math.min(openFrom, part.consumed);
    const advance = safe > part.committed;
    const o = sinks.outgoing(part.out);
    if (o.sends.length === 0 && !advance) return;
    let txn: Transaction | undefined;
    try {
      txn = await part.producer.transaction();
      for (const s of o.sends) await txn.send({ topic: s.topic, acks: -1, messages: s.messages });
      if (advance) {
        // kafkajs sends each partition's `metadata` (TxnOffsetCommit); its types omit it.
        const offset: PartitionOffset & { metadata: string } = {
          partition: part.partition,
          offset: String(safe),
          metadata: this.metadata(part.partition),
        };
        await txn.sendOffsets({
          consumerGroupId: c.group_id,
          topics: [{ topic: c.topics.events, partitions: [offset] }],
        });
      }
      await txn.commit();
    } catch (err) {
      this.transactionsAborted++;
      if (txn?.isActive()) await txn.abort().catch(() => undefined);
      if (isFenced(err)) {
        log.warn(
          { partition: part.partition, err: (err as Error).message },
          'fenced: another member owns this partition now',
        );
        await this.giveUp(part.partition, 'fenced');
        // Still assigned here by a generation this member has not seen end: read nothing of
        // it until the next assignment says who owns it.
        this.consumer?.pause([{ topic: c.topics.events, partitions: [part.partition] }]);
        this.paused.add(part.partition);
        return;
      }
      log.warn(
        { partition: part.partition, windows: o.windows.length, err: (err as Error).message },
        'feature transaction aborted: kept for the next attempt',
      );
      return;
    }
    this.transactionsCommitted++;
    if (advance) part.committed = safe;
    sinks.committed(part.out, o);
  }

  /** The offset metadata of a partition: the nodes' closed-up-to times, within the broker's limit. */
  private metadata(partition: number): string {
    let limit = Infinity;
    for (;;) {
      const m: OffsetMetadata = {
        v: 1,
        closed_up_to_ms: this.opts.hooks.closedUpTo(partition, limit),
      };
      const text = JSON.stringify(m);
      const n = Object.keys(m.closed_up_to_ms).length;
      if (Buffer.byteLength(text) <= MAX_METADATA_BYTES || n === 0) return text;
      // Nodes heard from longest ago go first; their replays, if any, count as late.
      limit = n - 1;
    }
  }

  /**
   * Leaves the group once everything queued is done, and closes the partitions' producers
   * (their open windows are not written: the offsets are not committed past them).
   */
  async stopConsuming(): Promise<void> {
    await this.chain;
    await this.consumer?.disconnect();
    await this.serial(async () => {
      for (const part of this.owned.values())
        await part.producer.disconnect().catch(() => undefined);
    });
  }

  /** Forgets the partitions and disconnects the admin client (after stopConsuming). */
  async close(): Promise<void> {
    this.owned.clear();
    await this.admin?.disconnect();
    this.consumer = undefined;
    this.admin = undefined;
  }
}
