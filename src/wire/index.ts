/**
 * The wire: what the node and the cluster side share and nothing else. The
 * frame format, the record layouts generated from the BPF objects' BTF, the
 * decoders, histogram maths, cgroup path parsing and the probe-settings
 * schema. The cluster side (features, agent, controller) imports from here,
 * never the node runtime in src/ingest (lint enforces it: type imports only).
 */
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
} from './frame.js';
export { writeRecordHeader } from './record-header.js';
export {
  decodeEvents,
  decodeFrameEvents,
  decodeRecord,
  formatAddress,
  type TracefeedEvent,
} from './event-decoder.js';
export { RecordReader, readCString, type FieldReader } from './record-reader.js';
export * as layout from './layout.js';
export { histogramQuantile, quantileAt, slotLow } from './histogram.js';
export { parseCgroupPath, type CgroupInfo } from './cgroup-path.js';
export {
  probeSettingsSchema,
  probePatchSchema,
  probeNameSchema,
  applyPatch,
  defaultSettings,
  normalizePathPrefix,
  type ProbeSettings,
  type ProbePatch,
} from './probe-settings.js';
