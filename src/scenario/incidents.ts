/**
 * The incident classes a scenario injects into its victim, one at a time.
 * Each class says how the victim behaves while all is well (so its series
 * have a baseline), how the fault starts and stops, and which feature columns
 * should show it.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { CgroupLimits, ScenarioCgroup } from './cgroup.js';
import type { LossyLink } from './netns.js';
import { victimNormalScript } from './workloads.js';

export const INCIDENT_NAMES = [
  'packet-loss',
  'refused-storm',
  'crash-loop',
  'cpu-hog',
  'sync-write',
  'memory-oom',
] as const;
export type IncidentName = (typeof INCIDENT_NAMES)[number];

export interface IncidentContext {
  victim: ScenarioCgroup;
  /** The veth link of the packet-loss class (created by the runner when `needsLink`). */
  link?: LossyLink;
  /** The sink's port on the link. */
  linkPort?: number;
  /** A free loopback port for the victim's own server. */
  port: number;
  /** Scratch directory on disk for file writes. */
  dir: string;
  /** Upper bound of every process's life, ms. */
  lifetimeMs: number;
}

export interface IncidentClass {
  name: IncidentName;
  title: string;
  /** Feature columns that carry the signal (today's and the shared cgroup ones). */
  signals: readonly string[];
  limits?: CgroupLimits;
  needsLink?: boolean;
  /** Starts the victim's normal behaviour. */
  normal(ctx: IncidentContext): void;
  /** Starts the fault; returns how to stop it. */
  inject(ctx: IncidentContext): () => void;
}

const killer =
  (...children: ChildProcess[]) =>
  (): void => {
    for (const c of children) c.kill('SIGKILL');
  };

const normal = (ctx: IncidentContext): void => {
  ctx.victim.node(victimNormalScript(ctx.port, ctx.dir, ctx.lifetimeMs));
};

const shLoop = (ctx: IncidentContext, body: string): ChildProcess =>
  ctx.victim.spawn([
    'timeout',
    '-s',
    'KILL',
    String(Math.ceil(ctx.lifetimeMs / 1000)),
    'sh',
    '-c',
    `while :; do ${body}; done`,
  ]);

export const INCIDENTS: Record<IncidentName, IncidentClass> = {
  'packet-loss': {
    name: 'packet-loss',
    title: 'packet loss (20 % of TCP dropped by nftables)',
    signals: ['tcp_retransmits'],
    needsLink: true,
    normal: (ctx) => {
      const link = ctx.link!;
      // One connection streaming, a short connection every 50 ms: tcp rows every window.
      const js = [
        `setTimeout(()=>process.exit(0),${ctx.lifetimeMs}).unref();`,
        `const net=require('net');const dst=[${ctx.linkPort},'${link.serverIp}'];`,
        `const s=net.connect(...dst);s.on('error',()=>{});const b=Buffer.alloc(16384,7);setInterval(()=>s.write(b),20);`,
        `setInterval(()=>{const c=net.connect(...dst,()=>c.end('x'));c.on('error',()=>{})},50);`,
      ].join('');
      ctx.victim.node(js, { netns: link.clientNs });
    },
    inject: (ctx) => {
      ctx.link!.setLoss(20);
      return () => ctx.link!.setLoss(0);
    },
  },
  'refused-storm': {
    name: 'refused-storm',
    title: 'connection-refused storm (100 connects/s to a closed port)',
    signals: ['tcp_connect_failures', 'tcp_resets', 'tcp_resets_received'],
    normal,
    inject: (ctx) => {
      const closed = 40_000 + (randomBytes(2).readUInt16LE(0) % 20_000);
      const js = `setTimeout(()=>process.exit(0),${ctx.lifetimeMs}).unref();const net=require('net');setInterval(()=>{net.connect(${closed},'127.0.0.1').on('error',()=>{})},10);`;
      return killer(ctx.victim.node(js));
    },
  },
  'crash-loop': {
    name: 'crash-loop',
    title: 'crash loop (a child exits 3, 20 times a second)',
    signals: ['failed_exits'],
    normal,
    inject: (ctx) => killer(shLoop(ctx, 'sh -c "exit 3"; sleep 0.05')),
  },
  'cpu-hog': {
    name: 'cpu-hog',
    title: 'CPU hog (busy loop under a 0.1-core quota)',
    signals: ['cpu_throttled_us', 'cpu_pressure_some_us'],
    limits: { cpu_quota_cores: 0.1 },
    normal,
    inject: (ctx) =>
      killer(
        ctx.victim.node(`setTimeout(()=>process.exit(0),${ctx.lifetimeMs}).unref();for(;;){}`),
      ),
  },
  'sync-write': {
    name: 'sync-write',
    title: 'synchronous-write storm (4 KiB O_SYNC writes)',
    signals: ['io_pressure_some_us'],
    normal,
    inject: (ctx) => {
      const js = [
        `setTimeout(()=>process.exit(0),${ctx.lifetimeMs}).unref();`,
        `const fs=require('fs');const f=${JSON.stringify(ctx.dir)}+'/sync-'+process.pid;`,
        `const k=fs.constants;const fd=fs.openSync(f,k.O_WRONLY|k.O_CREAT|k.O_SYNC);const b=Buffer.alloc(4096,1);let n=0;`,
        `process.on('exit',()=>{try{fs.unlinkSync(f)}catch{}});`,
        `const step=()=>{for(let i=0;i<64;i++){fs.writeSync(fd,b,0,b.length,(n++%1024)*4096)}setImmediate(step)};step();`,
      ].join('');
      return killer(ctx.victim.node(js));
    },
  },
  'memory-oom': {
    name: 'memory-oom',
    title: 'memory pressure ending in OOM kills (256 MiB asked under a 96 MiB limit)',
    signals: ['memory_oom_kills', 'memory_pressure_some_us'],
    limits: { memory_max_bytes: 96 * 1024 * 1024 },
    normal,
    inject: (ctx) =>
      killer(shLoop(ctx, `python3 -c "a=bytes(1)*(256<<20)" 2>/dev/null; sleep 0.5`)),
  },
};
