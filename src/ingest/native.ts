/**
 * Typed access to the libbpf addon (native/). Errors thrown by the addon carry
 * `step`, `errno` and `code`; they are rethrown here as BpfError.
 */
import { existsSync } from 'node:fs';
import {
  BUILD_COMMAND,
  loadNative as loadAddon,
  type BpfObject,
  type BpfObjectOptions,
  type FrameSink,
  type NativeAddon,
} from '../../native/index.js';
import { BpfError, EnvironmentError } from '../common/errors.js';

export type {
  BpfObjectOptions,
  FrameSinkEvent,
  FrameSinkOptions,
  FrameSinkStats,
  MapInfo,
  NativeAddon,
  ProgramInfo,
  RingOptions,
  RingStats,
} from '../../native/index.js';
/** The addon's types are native/index.d.ts; these names are the ones src uses. */
export type NativeBpfObject = BpfObject;
export type NativeFrameSink = FrameSink;
export type OpenOptions = BpfObjectOptions;

/** The addon (native/index.js loads it); not built is an EnvironmentError naming the file. */
export function loadNative(): NativeAddon {
  try {
    return loadAddon();
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'TRACEFEED_NATIVE_MISSING') throw err;
    throw new EnvironmentError((err as Error).message, 'native-addon', {
      cause: err,
      hint: `run \`${BUILD_COMMAND}\` or \`npm run build\` (scripts/bootstrap.sh installs libbpf-dev and builds it)`,
    });
  }
}

/** Turns an addon error into BpfError; other errors pass through. */
export function toBpfError(err: unknown): unknown {
  if (err instanceof Error && typeof (err as { step?: unknown }).step === 'string') {
    const e = err as Error & { step: string; errno?: number; code?: string; object?: string };
    return new BpfError(e.message, e.step, e.errno ?? 0, e.code ?? 'UNKNOWN', e.object, {
      cause: err,
      retriable: e.code === 'EAGAIN' || e.code === 'EBUSY',
      hint:
        e.code === 'EPERM'
          ? 'the kernel refused: run as root, and check kernel.unprivileged_bpf_disabled / lockdown'
          : undefined,
    });
  }
  return err;
}

/** Opens an object file; addon errors become BpfError. */
export function openObject(path: string, opts?: OpenOptions): NativeBpfObject {
  if (!existsSync(path)) {
    throw new EnvironmentError(`BPF object ${path} is missing`, 'bpf-object', {
      hint: 'run `npm run build:bpf` (needs clang and bpftool: scripts/bootstrap.sh installs them)',
    });
  }
  const native = loadNative();
  try {
    return new native.BpfObject(path, opts);
  } catch (err) {
    throw toBpfError(err);
  }
}
