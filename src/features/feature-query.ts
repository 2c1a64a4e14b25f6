/**
 * Reading features back: row selection over Arrow batches (gathering the
 * typed arrays of each column, no row objects) for the HTTP API.
 */
import { readFileSync } from 'node:fs';
import {
  RecordBatch,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Struct,
  makeData,
  type Data,
  type DataType,
  type Schema,
  type Vector,
} from 'apache-arrow';

export interface FeatureQuery {
  /** Windows starting at or after this time (ms since epoch). */
  sinceMs?: number;
  /** Windows starting before this time (ms since epoch). */
  untilMs?: number;
  node?: string;
  workload?: string;
  probe?: string;
}

function gather(data: Data<DataType>, idx: Int32Array): Data<DataType> {
  const n = idx.length;
  const values = data.values as unknown as {
    constructor: new (n: number) => ArrayLike<unknown> & { [i: number]: unknown };
  } & ArrayLike<unknown>;
  const out = new values.constructor(n);
  for (let i = 0; i < n; i++) out[i] = values[idx[i] as number];
  let nullBitmap: Uint8Array | undefined;
  let nullCount = 0;
  if (data.nullCount > 0 && data.nullBitmap) {
    nullBitmap = new Uint8Array((n + 7) >> 3);
    for (let i = 0; i < n; i++) {
      const j = (idx[i] as number) + data.offset;
      if (((data.nullBitmap[j >> 3] as number) >> (j & 7)) & 1) nullBitmap[i >> 3]! |= 1 << (i & 7);
      else nullCount++;
    }
  }
  return makeData({
    type: data.type,
    length: n,
    data: out,
    nullBitmap: nullCount > 0 ? nullBitmap : undefined,
    nullCount,
    dictionary: (data as unknown as { dictionary?: Vector }).dictionary,
  } as never);
}

function stringAt(batch: RecordBatch, column: string, row: number): string | undefined {
  const v = batch.getChild(column)?.get(row) as unknown;
  return v === null || v === undefined ? undefined : String(v);
}

/** The rows of `batch` that match the query, as a new batch (undefined when none). */
export function selectRows(batch: RecordBatch, q: FeatureQuery): RecordBatch | undefined {
  const starts = batch.getChild('window_start')?.data[0]?.values as BigInt64Array | undefined;
  const keep: number[] = [];
  for (let r = 0; r < batch.numRows; r++) {
    const startMs = starts ? Number((starts[r] as bigint) / 1_000_000n) : 0;
    if (q.sinceMs !== undefined && startMs < q.sinceMs) continue;
    if (q.untilMs !== undefined && startMs >= q.untilMs) continue;
    if (q.node !== undefined && stringAt(batch, 'node', r) !== q.node) continue;
    if (q.workload !== undefined && stringAt(batch, 'workload', r) !== q.workload) continue;
    if (q.probe !== undefined && stringAt(batch, 'probe', r) !== q.probe) continue;
    keep.push(r);
  }
  if (keep.length === 0) return undefined;
  if (keep.length === batch.numRows) return batch;
  const idx = Int32Array.from(keep);
  const children = batch.schema.fields.map((f) =>
    gather(batch.getChild(f.name)!.data[0] as Data<DataType>, idx),
  );
  return new RecordBatch(
    batch.schema,
    makeData({
      type: new Struct(batch.schema.fields),
      length: keep.length,
      children,
      nullCount: 0,
    }),
  );
}

/** Batches of an .arrows file. */
export function readArrowsFile(path: string): RecordBatch[] {
  const reader = RecordBatchReader.from(readFileSync(path));
  return [...reader];
}

/** One IPC stream of the selected rows; an empty stream with the schema when nothing matches. */
export function toIpcStream(schema: Schema, batches: RecordBatch[]): Uint8Array {
  const writer = new RecordBatchStreamWriter();
  writer.reset(undefined, schema);
  for (const b of batches) writer.write(b);
  return writer.toUint8Array(true);
}
