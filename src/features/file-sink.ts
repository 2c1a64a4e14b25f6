/**
 * Rotating Arrow IPC stream files (`.arrows`). Each file holds the batches of
 * one rotation period and is rewritten atomically (temp file, fsync, rename)
 * on every window, so a reader never sees half a file and a crash loses
 * nothing already reported written. Old files go when the retention bounds
 * (bytes, age) are passed.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { RecordBatchStreamWriter, type RecordBatch } from 'apache-arrow';

export interface FileSinkOptions {
  /** Directory of the .arrows files. */
  dir: string;
  /** A new file starts after this long, ms. Default 300000 (5 min). */
  rotateMs: number;
  /** Oldest files are deleted past this many bytes in total. Default 1 GiB. */
  retentionBytes: number;
  /** Files older than this are deleted, ms. Default 7 days. */
  retentionMs: number;
}

export const FILE_PREFIX = 'features-';

export class ArrowFileSink {
  private current: { path: string; openedAt: number; batches: RecordBatch[] } | undefined;
  filesWritten = 0;
  filesDeleted = 0;

  constructor(private readonly opts: FileSinkOptions) {
    mkdirSync(opts.dir, { recursive: true });
  }

  /** Appends the batches of one window and makes them durable. */
  write(batches: RecordBatch[], nowMs = Date.now()): string {
    if (!this.current || nowMs - this.current.openedAt >= this.opts.rotateMs) {
      const stamp = new Date(nowMs)
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z');
      this.current = {
        path: join(this.opts.dir, `${FILE_PREFIX}${stamp}-${process.pid}.arrows`),
        openedAt: nowMs,
        batches: [],
      };
    }
    this.current.batches.push(...batches);
    const bytes = RecordBatchStreamWriter.writeAll(this.current.batches).toUint8Array(true);
    const tmp = `${this.current.path}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.current.path);
    this.filesWritten++;
    this.enforceRetention(nowMs);
    return this.current.path;
  }

  /** Files in the directory, oldest first. */
  files(): Array<{ path: string; bytes: number; mtimeMs: number }> {
    return readdirSync(this.opts.dir)
      .filter((f) => f.startsWith(FILE_PREFIX) && f.endsWith('.arrows'))
      .map((f) => {
        const p = join(this.opts.dir, f);
        const st = statSync(p);
        return { path: p, bytes: st.size, mtimeMs: st.mtimeMs };
      })
      .sort((a, b) => a.path.localeCompare(b.path));
  }

  private enforceRetention(nowMs: number): void {
    const files = this.files();
    let total = files.reduce((a, f) => a + f.bytes, 0);
    for (const f of files) {
      if (f.path === this.current?.path) continue;
      if (total > this.opts.retentionBytes || nowMs - f.mtimeMs > this.opts.retentionMs) {
        unlinkSync(f.path);
        total -= f.bytes;
        this.filesDeleted++;
      }
    }
  }
}
