/**
 * One root error class for the whole project (kafkajs `src/errors.js` is the
 * model): `retriable` says whether trying again can help, `cause` keeps the
 * underlying error, and each area has subclasses that carry context fields.
 */
export interface TracefeedErrorOptions {
  /** Whether the same operation may succeed if retried. Default: false. */
  retriable?: boolean;
  /** The underlying error. */
  cause?: unknown;
  /** What the user can do about it, printed under the message by the CLI. */
  hint?: string;
}

export class TracefeedError extends Error {
  readonly retriable: boolean;
  readonly hint: string | undefined;

  constructor(message: string, options: TracefeedErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retriable = options.retriable ?? false;
    this.hint = options.hint;
  }
}

/** A configuration value or command-line option is invalid. */
export class ConfigError extends TracefeedError {
  constructor(
    message: string,
    readonly path: string,
    options: TracefeedErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** The host lacks something tracefeed needs (root, BTF, tracefs, bpffs, a tool). */
export class EnvironmentError extends TracefeedError {
  constructor(
    message: string,
    readonly requirement: string,
    options: TracefeedErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** A libbpf step failed: open, load, attach, detach, map, ring, close. */
export class BpfError extends TracefeedError {
  constructor(
    message: string,
    readonly step: string,
    readonly errno: number,
    readonly code: string,
    readonly object: string | undefined,
    options: TracefeedErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** Bytes that are not a valid tracefeed frame or record. */
export class DecodeError extends TracefeedError {
  constructor(
    message: string,
    readonly reason: DecodeErrorReason,
    readonly offset: number,
    options: TracefeedErrorOptions = {},
  ) {
    super(message, options);
  }
}

export type DecodeErrorReason =
  | 'bad-magic'
  | 'unsupported-version'
  | 'truncated'
  | 'bad-header'
  | 'bad-record-size'
  | 'count-mismatch'
  | 'unknown-op';

/** Kafka or Redis could not be reached or refused a request. */
export class TransportError extends TracefeedError {
  constructor(
    message: string,
    readonly service: 'kafka' | 'redis' | 'http',
    options: TracefeedErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** Errors worth retrying; never programming errors such as TypeError. */
export function isRetriable(err: unknown): boolean {
  return err instanceof TracefeedError && err.retriable;
}
