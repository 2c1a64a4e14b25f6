#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// Builds native/build/tracefeed.node with g++ directly. node-gyp and cmake-js
// are avoided on purpose: they download Node headers, and this project builds
// offline from the node-api-headers and node-addon-api packages.
//
// Usage: node native/build.mjs [--force] [--debug]
// Incremental: an object is rebuilt when its source or any header is newer.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const srcDir = path.join(here, 'src');
const outDir = path.join(here, 'build');
const objDir = path.join(outDir, 'obj');
const target = path.join(outDir, 'tracefeed.node');

const args = new Set(process.argv.slice(2));
const force = args.has('--force');
const debug = args.has('--debug');
const CXX = process.env.CXX || 'g++';
const HINT =
  'run scripts/bootstrap.sh (or: apt-get install g++ libbpf-dev librdkafka-dev libelf-dev zlib1g-dev)';

function fail(msg) {
  console.error(`native/build.mjs: error: ${msg}`);
  process.exit(1);
}

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

// Preconditions, each with the fix in the message.
if (spawnSync(CXX, ['--version'], { stdio: 'ignore' }).status !== 0) {
  fail(`C++ compiler '${CXX}' not found; ${HINT}`);
}
const libbpfHeader = '/usr/include/bpf/libbpf.h';
if (!existsSync(libbpfHeader)) {
  fail(`libbpf headers not found (${libbpfHeader}): libbpf-dev is missing; ${HINT}`);
}
const rdkafkaHeader = '/usr/include/librdkafka/rdkafka.h';
if (!existsSync(rdkafkaHeader)) {
  fail(`librdkafka headers not found (${rdkafkaHeader}): librdkafka-dev is missing; ${HINT}`);
}
let addonInclude;
let napiInclude;
try {
  addonInclude = path.resolve(root, require('node-addon-api').include_dir);
  napiInclude = path.resolve(root, require('node-api-headers').include_dir);
} catch (err) {
  fail(`node-addon-api / node-api-headers not installed (${err.message}); run npm ci`);
}

const cxxflags = [
  '-std=c++17',
  debug ? '-O0' : '-O2',
  '-g',
  '-fPIC',
  '-fvisibility=hidden',
  '-Wall',
  '-Wextra',
  '-Wno-missing-field-initializers',
  '-pthread',
  '-DNAPI_VERSION=8',
  '-DNAPI_CPP_EXCEPTIONS',
  '-DNODE_ADDON_API_DISABLE_DEPRECATED',
  '-DBUILDING_NODE_EXTENSION',
  `-I${addonInclude}`,
  `-I${napiInclude}`,
  `-I${path.join(root, 'bpf')}`, // events.h: the record layout
  `-I${srcDir}`,
];
const ldflags = ['-shared', '-pthread'];
const libs = ['-lbpf', '-lrdkafka', '-lelf', '-lz', '-lpthread'];

const sources = readdirSync(srcDir)
  .filter((f) => f.endsWith('.cc'))
  .sort();
if (sources.length === 0) fail(`no sources in ${srcDir}`);

// Any header change rebuilds everything: simple and the tree is small.
const headers = [
  ...readdirSync(srcDir)
    .filter((f) => f.endsWith('.h'))
    .map((f) => path.join(srcDir, f)),
  path.join(root, 'bpf', 'events.h'),
];
const headerTime = Math.max(mtime(fileURLToPath(import.meta.url)), ...headers.map(mtime));

mkdirSync(objDir, { recursive: true });

function run(cmd, argv, what) {
  console.log(`  ${cmd} ${argv.join(' ')}`);
  try {
    execFileSync(cmd, argv, { stdio: 'inherit' });
  } catch {
    fail(`${what} failed (see the ${cmd} output above)`);
  }
}

const objects = [];
let rebuilt = 0;
for (const src of sources) {
  const srcPath = path.join(srcDir, src);
  const obj = path.join(objDir, src.replace(/\.cc$/, '.o'));
  objects.push(obj);
  const objTime = mtime(obj);
  if (!force && objTime > 0 && objTime >= mtime(srcPath) && objTime >= headerTime) continue;
  run(CXX, [...cxxflags, '-c', srcPath, '-o', obj], `compiling native/src/${src}`);
  rebuilt++;
}

const targetTime = mtime(target);
if (force || rebuilt > 0 || targetTime === 0 || objects.some((o) => mtime(o) > targetTime)) {
  run(CXX, [...ldflags, '-o', target, ...objects, ...libs], 'linking tracefeed.node');
  console.log(`native: built ${path.relative(root, target)}`);
} else {
  console.log(`native: ${path.relative(root, target)} is up to date`);
}
