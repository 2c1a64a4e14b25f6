// SPDX-License-Identifier: Apache-2.0
//
// ESM entry of the native addon: loads native/build/tracefeed.node.
// Build it with `node native/build.mjs` (needs g++ and libbpf-dev).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const addonPath = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'build',
  'tracefeed.node',
);

function load() {
  if (!existsSync(addonPath)) {
    throw new Error(
      `tracefeed native addon not built (${addonPath} missing): run \`node native/build.mjs\``,
    );
  }
  return require(addonPath);
}

const addon = load();

export const BpfObject = addon.BpfObject;
export const setLogger = addon.setLogger;
export const libbpfVersion = addon.libbpfVersion;
export default addon;
