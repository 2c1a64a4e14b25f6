#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write(
    'tracefeed: not built yet (dist/ is missing); run `npm run build` or `bash scripts/bootstrap.sh`\n',
  );
  process.exit(1);
}
await import(main.href);
