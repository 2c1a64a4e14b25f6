/**
 * The programs a scenario runs, as short node scripts: three bystanders that
 * keep working through every incident (a service with clients, a batch job, a
 * cron-like exec source) and the victim's normal behaviour. Every script
 * stops by itself after `lifetimeMs`, so nothing outlives a crashed run.
 */
import { ScenarioCgroup } from './cgroup.js';

export interface Workload {
  name: string;
  cgroup: ScenarioCgroup;
}

const exitAfter = (ms: number): string => `setTimeout(()=>process.exit(0),${ms}).unref();`;

/** A loopback TCP service answering clients that connect at a steady rate (10/s). */
export function serviceScript(port: number, lifetimeMs: number): string {
  return [
    exitAfter(lifetimeMs),
    `const net=require('net');`,
    `net.createServer((s)=>{s.on('data',(d)=>s.end(d));s.on('error',()=>{})}).listen(${port},'127.0.0.1',()=>{`,
    `setInterval(()=>{const c=net.connect(${port},'127.0.0.1',()=>c.write('ping'));c.on('data',()=>c.end());c.on('error',()=>{})},100)});`,
  ].join('');
}

/** A batch job: writes, reads back and hashes 256 KiB five times a second. */
export function batchScript(dir: string, lifetimeMs: number): string {
  return [
    exitAfter(lifetimeMs),
    `const fs=require('fs'),c=require('crypto');const f=${JSON.stringify(dir)}+'/batch-'+process.pid;`,
    `const b=c.randomBytes(262144);`,
    `setInterval(()=>{fs.writeFileSync(f,b);const r=fs.readFileSync(f);c.createHash('sha256').update(r).digest();},200);`,
    `process.on('exit',()=>{try{fs.unlinkSync(f)}catch{}});`,
  ].join('');
}

/** A cron-like source: a short process every 300 ms. */
export function cronScript(lifetimeMs: number): string {
  return [
    exitAfter(lifetimeMs),
    `const {spawn}=require('child_process');`,
    `setInterval(()=>{spawn('/bin/true',{stdio:'ignore'}).on('error',()=>{})},300);`,
  ].join('');
}

/**
 * The victim's normal behaviour before its incident: a little of everything
 * the incident will distort (a successful loopback connection and a clean
 * child exit every 200 ms, a small buffered write), so each incident metric
 * has a series with a baseline.
 */
export function victimNormalScript(port: number, dir: string, lifetimeMs: number): string {
  return [
    exitAfter(lifetimeMs),
    `const net=require('net'),fs=require('fs'),{spawn}=require('child_process');`,
    `const f=${JSON.stringify(dir)}+'/victim-'+process.pid;`,
    `net.createServer((s)=>{s.on('data',()=>s.end());s.on('error',()=>{})}).listen(${port},'127.0.0.1',()=>{`,
    `setInterval(()=>{const c=net.connect(${port},'127.0.0.1',()=>c.end('x'));c.on('error',()=>{});`,
    `spawn('/bin/true',{stdio:'ignore'}).on('error',()=>{});fs.writeFileSync(f,'x'.repeat(4096))},200)});`,
    `process.on('exit',()=>{try{fs.unlinkSync(f)}catch{}});`,
  ].join('');
}
