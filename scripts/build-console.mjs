// Bundles the console page (src/console/web) into dist/console/web: one ES
// module with uPlot and Arrow JS, its stylesheet, and the HTML. Run by `npm run build`.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'console', 'web');
const out = join(root, 'dist', 'console', 'web');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(src, 'app.ts') },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: true,
  outdir: out,
  logLevel: 'warning',
  legalComments: 'linked',
});
copyFileSync(join(src, 'index.html'), join(out, 'index.html'));
console.log(`console page bundled into ${out}`);
