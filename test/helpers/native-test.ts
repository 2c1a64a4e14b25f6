/** Helpers shared by the test/native suites (real kernel, real cgroups). */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** A NUL-terminated string of at most `len` bytes at `start`. */
export function cString(buf: Buffer, start: number, len: number): string {
  const slice = buf.subarray(start, start + len);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

/** Polls `pred` every 20 ms for up to `ms`; returns its last value. */
export async function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return pred();
}

/** libbpf finds tracepoint ids in tracefs: mount it when it is missing. */
export function ensureTracefs(): void {
  if (existsSync('/sys/kernel/tracing/events') || existsSync('/sys/kernel/debug/tracing/events'))
    return;
  execFileSync('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing'], { stdio: 'ignore' });
}

export function u64Key(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

/** Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup or /sys/fs/cgroup/unified). */
export function cgroup2Mount(): string {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2') return f[1]!;
  }
  throw new Error('no cgroup2 mount in /proc/mounts');
}

/** cgroup v2 id == inode number of the cgroup's directory. */
export function cgroupId(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}

/** The cgroup id of this test process. */
export function ownCgroupId(mount: string): bigint {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (!line) throw new Error('no cgroup v2 line in /proc/self/cgroup');
  return cgroupId(path.join(mount, line.slice(3)));
}

/** Removes a test cgroup; an exited task can keep it busy for a moment. */
export async function removeCgroup(dir: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  rmdirSync(dir);
}
