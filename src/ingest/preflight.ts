/**
 * Checks and prepares the host before probes load: root, kernel BTF, tracefs
 * (libbpf finds tracepoint ids there), bpffs. Mounts what is missing and says
 * clearly what cannot be fixed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { EnvironmentError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { CAPABILITY_BITS, NODE_CAPABILITIES, NODE_CAPABILITY_REASONS } from './capabilities.js';

export interface PreflightReport {
  root: boolean;
  btf: boolean;
  tracefs: string;
  bpffs: string;
  mounted: string[];
}

function mounts(): Array<{ dir: string; type: string }> {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [, dir = '', type = ''] = l.split(' ');
      return { dir, type };
    });
}

function isMounted(dir: string, type: string): boolean {
  return mounts().some((m) => m.dir === dir && m.type === type);
}

function mount(type: string, dir: string): void {
  try {
    execFileSync('mount', ['-t', type, type, dir], { stdio: 'pipe' });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err);
    throw new EnvironmentError(`cannot mount ${type} on ${dir}: ${stderr}`, type, {
      cause: err,
      hint: `mount it by hand (mount -t ${type} ${type} ${dir}) or run in a container with ${dir} mounted from the host`,
    });
  }
}

/**
 * The oldest kernel the probes load on: the tcp probe reads sockets through
 * the bpf_rdonly_cast kfunc (6.2); the rest needs less.
 */
export const MIN_KERNEL = { major: 6, minor: 2 } as const;

/** Throws EnvironmentError when a kernel release string is older than MIN_KERNEL. */
export function checkKernelRelease(rel: string): void {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  if (!m) throw new EnvironmentError(`cannot read the kernel version from "${rel}"`, 'kernel');
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major < MIN_KERNEL.major || (major === MIN_KERNEL.major && minor < MIN_KERNEL.minor)) {
    throw new EnvironmentError(
      `kernel ${rel} is older than ${MIN_KERNEL.major}.${MIN_KERNEL.minor}, which the tcp probe needs (it reads sockets through the bpf_rdonly_cast kfunc)`,
      'kernel',
      { hint: `run on Linux ${MIN_KERNEL.major}.${MIN_KERNEL.minor} or later` },
    );
  }
}

/** Refuses to start without every capability in NODE_CAPABILITIES, naming the missing ones. */
export function checkCapabilities(procStatus: string): void {
  const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(procStatus)?.[1];
  if (eff === undefined) return; // not Linux's /proc: the loads below will say what fails
  const mask = BigInt(`0x${eff}`);
  const missing = NODE_CAPABILITIES.filter(
    (c) => (mask & (1n << BigInt(CAPABILITY_BITS[c] ?? 0))) === 0n,
  );
  if (missing.length > 0)
    throw new EnvironmentError(
      `the node agent needs ${missing.join(', ')} (${missing.map((c) => NODE_CAPABILITY_REASONS[c]).join('; ')}); the process lacks them`,
      'capabilities',
      { hint: `grant ${NODE_CAPABILITIES.join(', ')} (see docs/security.md, "Least privilege")` },
    );
}

export function preflight(log?: Logger): PreflightReport {
  const mounted: string[] = [];
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) {
    throw new EnvironmentError(
      `loading eBPF programs needs root (CAP_BPF and CAP_PERFMON); running as uid ${uid}`,
      'root',
      { hint: 'run as root, e.g. sudo npx tracefeed up' },
    );
  }
  checkCapabilities(readFileSync('/proc/self/status', 'utf8'));
  checkKernelRelease(release());
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    throw new EnvironmentError(
      'kernel BTF is missing: /sys/kernel/btf/vmlinux does not exist',
      'btf',
      {
        hint: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution kernel since 2020 has it)',
      },
    );
  }
  let tracefs = '/sys/kernel/tracing';
  if (!existsSync(`${tracefs}/events`)) {
    if (
      isMounted('/sys/kernel/debug', 'debugfs') &&
      existsSync('/sys/kernel/debug/tracing/events')
    ) {
      tracefs = '/sys/kernel/debug/tracing';
    } else {
      mount('tracefs', tracefs);
      mounted.push(tracefs);
      if (!existsSync(`${tracefs}/events`)) {
        throw new EnvironmentError(
          `tracefs mounted on ${tracefs} but has no events/ directory`,
          'tracefs',
          {
            hint: 'the kernel needs CONFIG_FTRACE and tracepoint events',
          },
        );
      }
    }
  }
  const bpffs = '/sys/fs/bpf';
  if (!isMounted(bpffs, 'bpf')) {
    mount('bpf', bpffs);
    mounted.push(bpffs);
  }
  if (mounted.length > 0) log?.info({ mounted }, 'mounted kernel filesystems');
  return { root: true, btf: true, tracefs, bpffs, mounted };
}
