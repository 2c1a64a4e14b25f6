/**
 * kafkajs 2.2.4 (the last release) re-arms a 0 ms timer for ever once a
 * connection has no pending request: RequestQueue.scheduleCheckPendingRequests
 * schedules a check even when nothing waits, with a negative delay (kafkajs
 * issues 1556, 1604, 1704; unreleased fix in pull request 1667). Every
 * producer, consumer and admin connection then keeps a core busy at a few
 * per cent while idle. This replaces the method with one that schedules a
 * check only while requests are pending, exactly as the upstream fix does.
 */
import { createRequire } from 'node:module';

interface RequestQueueLike {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
}

const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

let patched = false;

export function patchKafkajs(): void {
  if (patched) return;
  patched = true;
  const require = createRequire(import.meta.url);
  const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as {
    prototype: RequestQueueLike & { scheduleCheckPendingRequests(): void };
  };
  RequestQueue.prototype.scheduleCheckPendingRequests = function (this: RequestQueueLike): void {
    if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
    const wait = this.throttledUntil - Date.now();
    this.throttleCheckTimeoutId = setTimeout(
      () => {
        this.throttleCheckTimeoutId = null;
        this.checkPendingRequests();
      },
      wait > 0 ? wait : CHECK_PENDING_REQUESTS_INTERVAL_MS,
    );
  };
}
