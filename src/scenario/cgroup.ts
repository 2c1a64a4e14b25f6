/**
 * A scenario workload's cgroup: a directory in the cgroup v2 hierarchy (its
 * identity: the workload path that features and anomalies name) and, for
 * limits, the same name under the cgroup v1 `cpu` and `memory` controllers
 * when the v2 hierarchy has no controllers (the hybrid layout of these hosts).
 * Processes are moved into every directory before they exec, so a limit and
 * the identity always cover the same processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cgroup2Root } from '../ingest/cgroup-resolver.js';
import { TracefeedError } from '../common/errors.js';

const V1_ROOT = '/sys/fs/cgroup';

export interface CgroupLimits {
  /** CPU quota as a fraction of one core (0.1 = 10 ms per 100 ms period). */
  cpu_quota_cores?: number;
  /** Memory limit in bytes; swap is limited to the same total (no swap use). */
  memory_max_bytes?: number;
}

export class ScenarioCgroup {
  /** Path relative to the cgroup v2 root: the workload name in feature rows and anomalies. */
  readonly path: string;
  readonly abs: string;
  readonly id: bigint;
  private readonly dirs: string[];
  private readonly children = new Set<ChildProcess>();
  /** Limit writes held until applyLimits(). */
  private readonly limitWrites: Array<[file: string, value: string]> = [];

  constructor(prefix: string, limits: CgroupLimits = {}) {
    const root = cgroup2Root();
    if (!root) throw new TracefeedError('no cgroup v2 mount in /proc/mounts');
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    this.path = `/${name}`;
    this.abs = join(root, name);
    mkdirSync(this.abs);
    this.id = BigInt(statSync(this.abs, { bigint: true }).ino);
    this.dirs = [this.abs];
    try {
      if (limits.cpu_quota_cores !== undefined) this.limitCpu(root, name, limits.cpu_quota_cores);
      if (limits.memory_max_bytes !== undefined)
        this.limitMemory(root, name, limits.memory_max_bytes);
    } catch (err) {
      this.remove();
      throw err;
    }
  }

  private limitCpu(root: string, name: string, cores: number): void {
    const periodUs = 100_000;
    const quotaUs = Math.max(1000, Math.round(cores * periodUs));
    if (existsSync(join(this.abs, 'cpu.max'))) {
      this.limitWrites.push([join(this.abs, 'cpu.max'), `${quotaUs} ${periodUs}`]);
      return;
    }
    const dir = join(V1_ROOT, 'cpu', name);
    if (!existsSync(join(V1_ROOT, 'cpu', 'cpu.cfs_quota_us')))
      throw new TracefeedError(
        `no cpu controller for ${root}${this.path} (neither cpu.max nor v1 cpu)`,
      );
    mkdirSync(dir);
    this.dirs.push(dir);
    writeFileSync(join(dir, 'cpu.cfs_period_us'), String(periodUs));
    this.limitWrites.push([join(dir, 'cpu.cfs_quota_us'), String(quotaUs)]);
  }

  private limitMemory(root: string, name: string, bytes: number): void {
    if (existsSync(join(this.abs, 'memory.max'))) {
      if (existsSync(join(this.abs, 'memory.swap.max')))
        this.limitWrites.push([join(this.abs, 'memory.swap.max'), '0']);
      this.limitWrites.push([join(this.abs, 'memory.max'), String(bytes)]);
      return;
    }
    const dir = join(V1_ROOT, 'memory', name);
    if (!existsSync(join(V1_ROOT, 'memory', 'memory.limit_in_bytes')))
      throw new TracefeedError(
        `no memory controller for ${root}${this.path} (neither memory.max nor v1 memory)`,
      );
    mkdirSync(dir);
    this.dirs.push(dir);
    this.limitWrites.push([join(dir, 'memory.limit_in_bytes'), String(bytes)]);
    if (existsSync(join(dir, 'memory.memsw.limit_in_bytes')))
      this.limitWrites.push([join(dir, 'memory.memsw.limit_in_bytes'), String(bytes)]);
  }

  /**
   * Puts the limits given at creation in force. They wait until the fault starts:
   * a victim's own start-up under a tight quota is real CPU pressure, and would be
   * caught as such before any incident.
   */
  applyLimits(): void {
    for (const [file, value] of this.limitWrites.splice(0)) writeFileSync(file, value);
  }

  /** Starts `argv` inside the cgroup(s): a shell moves itself in, then execs the program. */
  spawn(argv: string[], opts: { netns?: string } = {}): ChildProcess {
    const moves = this.dirs.map((d) => `echo $$ > ${d}/cgroup.procs`).join(' && ');
    const full = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv;
    const child = spawn('sh', ['-c', `${moves} && exec "$@"`, 'sh', ...full], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.resume();
    child.stderr?.resume();
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    child.on('error', () => this.children.delete(child));
    return child;
  }

  /** Runs a node script inside the cgroup. */
  node(script: string, opts: { netns?: string } = {}): ChildProcess {
    return this.spawn([process.execPath, '-e', script], opts);
  }

  /** Kills every process in the cgroup (cgroup.kill, else SIGKILL per pid). */
  kill(): void {
    for (const c of this.children) c.kill('SIGKILL');
    const killFile = join(this.abs, 'cgroup.kill');
    try {
      if (existsSync(killFile)) writeFileSync(killFile, '1');
      else
        for (const pid of this.pids())
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
    } catch {
      /* already removed */
    }
  }

  pids(): number[] {
    try {
      return readFileSync(join(this.abs, 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  }

  /** Kills what runs inside and removes every directory; safe to call twice. */
  remove(): void {
    this.kill();
    for (const dir of [...this.dirs].reverse()) {
      for (let i = 0; i < 100; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          const until = Date.now() + 20;
          while (Date.now() < until) {
            /* wait for the last process to leave */
          }
        }
      }
    }
  }
}
