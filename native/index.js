// SPDX-License-Identifier: Apache-2.0
//
// The one loader of the native addon (native/build/tracefeed.node), for the
// TypeScript sources (src/ingest/native.ts), the tests and the benches alike.
// Types: native/index.d.ts. Build it with `npm run build:native`.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const addonPath = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'build',
  'tracefeed.node',
);

export const BUILD_COMMAND = 'npm run build:native';

let cached;

/** Loads the addon once; a missing build is an error naming the file and the command. */
export function loadNative() {
  if (cached) return cached;
  if (!existsSync(addonPath)) {
    const err = new Error(
      `the native addon is not built: ${addonPath} is missing; run \`${BUILD_COMMAND}\` (needs g++, libbpf-dev and librdkafka-dev)`,
    );
    err.code = 'TRACEFEED_NATIVE_MISSING';
    err.path = addonPath;
    throw err;
  }
  cached = createRequire(import.meta.url)(addonPath);
  return cached;
}
