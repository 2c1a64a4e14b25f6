/**
 * cgroup id -> cgroup path and container id. The id the kernel reports
 * (bpf_get_current_cgroup_id, the socket's cgroup) is the inode number of the
 * cgroup's directory in the cgroup v2 file system: walk it, cache, and walk
 * again on a miss (at most once per `minRefreshMs`, default 200 ms).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseCgroupPath, type CgroupInfo } from '../wire/cgroup-path.js';

export { parseCgroupPath, type CgroupInfo };

/** Finds the cgroup v2 mount: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones. */
export function cgroup2Root(mountsText = readFileSync('/proc/mounts', 'utf8')): string | undefined {
  for (const line of mountsText.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2' && dir) return dir;
  }
  return undefined;
}

/** Parses a container id and pod uid out of a cgroup path. */
/**
 * Every cgroup under `root`, depth first: its path relative to the root ("/" for
 * the root itself), its absolute path and its id (the directory's inode). A
 * cgroup removed while walking is skipped. `from` (relative to the root) walks
 * only that subtree, paths still relative to the root.
 */
export function* walkCgroupTree(
  root: string,
  from = '/',
): Generator<{ rel: string; abs: string; ino: bigint }> {
  const stack = [from];
  while (stack.length > 0) {
    const rel = stack.pop() as string;
    const abs = rel === '/' ? root : join(root, rel);
    let ino: bigint;
    try {
      ino = statSync(abs, { bigint: true }).ino;
    } catch {
      continue; // removed while walking
    }
    yield { rel, abs, ino };
    let entries;
    try {
      entries = readdirSync(abs, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries)
      if (e.isDirectory()) stack.push(rel === '/' ? `/${e.name}` : `${rel}/${e.name}`);
  }
}

export class CgroupResolver {
  private readonly cache = new Map<bigint, CgroupInfo>();
  private lastWalk = 0;
  misses = 0;
  walks = 0;

  constructor(
    private readonly root: string | undefined = cgroup2Root(),
    private readonly minRefreshMs = 200,
  ) {
    if (this.root) this.walk();
  }

  /** The cgroup for an id, or undefined if it is unknown (gone, or not yet walked). */
  resolve(id: bigint): CgroupInfo | undefined {
    const hit = this.cache.get(id);
    if (hit) return hit;
    this.misses++;
    if (this.root && Date.now() - this.lastWalk >= this.minRefreshMs) {
      this.walk();
      return this.cache.get(id);
    }
    return undefined;
  }

  /** Inode id of a cgroup path (relative to the root), for filters by workload. */
  idOf(path: string): bigint | undefined {
    if (!this.root) return undefined;
    try {
      return BigInt(statSync(join(this.root, path), { bigint: true }).ino);
    } catch {
      return undefined;
    }
  }

  get size(): number {
    return this.cache.size;
  }

  private walk(): void {
    const root = this.root;
    if (!root) return;
    this.lastWalk = Date.now();
    this.walks++;
    for (const { rel, ino } of walkCgroupTree(root))
      if (!this.cache.has(ino)) this.cache.set(ino, parseCgroupPath(rel));
  }
}
