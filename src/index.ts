/** tracefeed's public API. */
export * from './ingest/index.js';
export * from './common/errors.js';
export { Topics } from './common/kafka.js';
