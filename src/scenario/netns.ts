/**
 * Two network namespaces joined by a veth pair, and packet loss made with
 * nftables inside the server's namespace: the packet-loss incident's link.
 * Addresses are private to these namespaces; destroy() removes both (and the
 * nftables table with them).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const sh = (...argv: string[]): Buffer => execFileSync(argv[0]!, argv.slice(1), { stdio: 'pipe' });

export class LossyLink {
  readonly tag = randomBytes(3).toString('hex');
  readonly serverNs = `tf-s-${this.tag}`;
  readonly clientNs = `tf-c-${this.tag}`;
  private readonly x = 1 + (randomBytes(1)[0]! % 250);
  readonly serverIp = `10.202.${this.x}.1`;
  readonly clientIp = `10.202.${this.x}.2`;
  private lossy = false;
  private sink: ChildProcess | undefined;

  create(): this {
    sh('ip', 'netns', 'add', this.serverNs);
    sh('ip', 'netns', 'add', this.clientNs);
    const a = `tfs${this.tag}`;
    const b = `tfc${this.tag}`;
    sh('ip', 'link', 'add', a, 'netns', this.serverNs, 'type', 'veth', 'peer', 'name', b);
    sh('ip', 'link', 'set', b, 'netns', this.clientNs);
    sh('ip', '-n', this.serverNs, 'addr', 'add', `${this.serverIp}/30`, 'dev', a);
    sh('ip', '-n', this.clientNs, 'addr', 'add', `${this.clientIp}/30`, 'dev', b);
    for (const [ns, dev] of [
      [this.serverNs, a],
      [this.clientNs, b],
    ] as const) {
      sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
      sh('ip', '-n', ns, 'link', 'set', dev, 'up');
    }
    return this;
  }

  /** Drops `percent` of TCP packets entering the server's namespace (0 removes the rule). */
  setLoss(percent: number): void {
    if (this.lossy) {
      sh('ip', 'netns', 'exec', this.serverNs, 'nft', 'delete', 'table', 'inet', 'tfloss');
      this.lossy = false;
    }
    if (percent <= 0) return;
    execFileSync('ip', ['netns', 'exec', this.serverNs, 'nft', '-f', '-'], {
      input: `table inet tfloss {\n  chain in {\n    type filter hook input priority 0;\n    meta l4proto tcp numgen random mod 100 < ${percent} drop\n  }\n}\n`,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.lossy = true;
  }

  /** A TCP sink in the server namespace that reads and discards; resolves once it listens. */
  startSink(port: number, lifetimeMs: number): Promise<void> {
    const js = `setTimeout(()=>process.exit(0),${lifetimeMs}).unref();require('net').createServer((s)=>{s.on('data',()=>{});s.on('error',()=>{})}).listen(${port},'${this.serverIp}',()=>console.log('ready'))`;
    const child = spawn('ip', ['netns', 'exec', this.serverNs, process.execPath, '-e', js], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.sink = child;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the sink did not start within 10 s')), 10_000);
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(t);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`the sink exited with ${code} before it listened`));
      });
    });
  }

  destroy(): void {
    this.sink?.kill('SIGKILL');
    if (this.lossy) {
      try {
        this.setLoss(0);
      } catch {
        /* the namespace is going anyway */
      }
    }
    for (const ns of [this.serverNs, this.clientNs]) {
      try {
        sh('ip', 'netns', 'del', ns);
      } catch {
        /* not created */
      }
    }
  }
}
