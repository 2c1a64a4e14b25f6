import { it } from 'vitest';
import { tableFromIPC, RecordBatch } from 'apache-arrow';
import {
  buildWindowBatch,
  featureSchema,
  toIpcStream,
  WindowAggregator,
} from '../../src/features/index.js';
it('x', () => {
  const schema = featureSchema(1000);
  const t = tableFromIPC(toIpcStream(schema, []));
  console.log(t.numRows, t.schema.fields.map((f) => f.name + ':' + f.type.toString()).join(','));
  console.log(typeof buildWindowBatch, typeof WindowAggregator, typeof RecordBatch);
});
