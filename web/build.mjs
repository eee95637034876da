// Builds web/dist: the bundled pages (esbuild), the HTML and the favicon.
//   node build.mjs          -> dist/ (what the gateway serves)
//   node build.mjs --tests  -> dist-test/ (the pure modules, for `node --test`)
import { build } from 'esbuild';
import { cp, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));

if (process.argv.includes('--tests')) {
  const out = join(root, 'dist-test');
  await rm(out, { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: ['src/frames.ts', 'src/hijack.ts', 'src/i18n.ts'],
    outdir: out,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2020',
    logLevel: 'warning',
  });
  await cp(join(root, 'test'), out, { recursive: true });
} else {
  const out = join(root, 'dist');
  await rm(out, { recursive: true, force: true });
  await mkdir(join(out, 'assets'), { recursive: true });
  await build({
    absWorkingDir: root,
    // Fixed names: the HTML refers to /assets/index.js, /assets/player.js, /assets/style.css.
    entryPoints: { index: 'src/index.ts', player: 'src/player.ts', style: 'src/style.css' },
    outdir: join(out, 'assets'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
  });
  await cp(join(root, 'public'), out, { recursive: true });
  console.log(`built ${out}`);
}
