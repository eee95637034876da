// Browser half of `cargo xtask bench browser` (tests/src/bin/bench/browser.rs starts the
// node and the gateway, seeds the video and writes the file):
//
//   BASE_URL=http://127.0.0.1:PORT WORKER=<node id> FILE=/video/<task>/<file> BYTES=<its size> \
//     TASK=<task id> [ROUNDS=3] [MODES=binary,base64,relay,sink,chromium] OUT=result.json \
//     node web/e2e/bench.mjs
//
// 1. FILE fetched ROUNDS times in each mode of bench-page.ts (binary, base64, relay, sink; and
//    BYTES between two peer connections of the page, chromium), in a rotating order, on a
//    page of the gateway's origin.
// 2. The player on TASK (a 1080p video) with a buffer limit far ahead: seconds of video
//    buffered per second of wall time, from the first 4 s buffered to 60 s more.
// Writes OUT: { transfers: [...], player: { bufferedPerSecond, transport, ... } }.
import { build } from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './chromium.mjs';

const env = process.env;
const BASE_URL = (env.BASE_URL ?? '').replace(/\/+$/, '');
const ROUNDS = Number(env.ROUNDS || 3);
const MODES = (env.MODES || 'binary,base64,relay,sink,chromium').split(',');
/** Video seconds buffered before the clock starts (the first segment), and after it. */
const BUFFER_FROM_S = 4;
const BUFFER_SPAN_S = 60;

for (const name of ['BASE_URL', 'WORKER', 'FILE', 'BYTES', 'TASK', 'OUT']) {
  if (!env[name]) throw new Error(`${name} is not set`);
}

const here = dirname(fileURLToPath(import.meta.url));
const bundle = await build({
  absWorkingDir: join(here, '..'),
  entryPoints: ['e2e/bench-page.ts'],
  bundle: true,
  write: false,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  logLevel: 'warning',
});
const script = bundle.outputFiles[0].text;

const browser = await launch({ bypassCSP: true });
const result = { transfers: [], player: null, pageErrors: [] };
try {
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.on('pageerror', (e) => result.pageErrors.push(String(e?.stack ?? e)));
  page.on('console', (m) => {
    // The text page has no favicon; Chromium asks for one anyway.
    if (m.type() === 'error' && !m.location()?.url?.endsWith('/favicon.ico')) result.pageErrors.push(m.text());
  });
  // The benchmark runs in a page the gateway served (one without scripts of its own): the
  // signaling socket, the ICE servers and the relay are then same-origin, as for the player,
  // and Chromium's local network access checks see a loopback page reach loopback.
  await page.goto(`${BASE_URL}/api/status`);
  await page.addScriptTag({ content: script });

  for (let round = 0; round < ROUNDS; round++) {
    const order = MODES.map((_, i) => MODES[(i + round) % MODES.length]);
    for (const mode of order) {
      // The baseline takes the size to send in place of the worker.
      const who = mode === 'chromium' ? env.BYTES : env.WORKER;
      const t = await page.evaluate(([m, w, f]) => window.__bench.transfer(m, w, f), [mode, who, env.FILE]);
      console.error(`round ${round + 1}: ${mode} ${(t.bytes / 1e3 / t.ms).toFixed(1)} MB/s`);
      result.transfers.push({ round: round + 1, ...t });
    }
  }

  await page.goto(`${BASE_URL}/player?taskId=${encodeURIComponent(env.TASK)}&max_buffer_s=600`);
  result.player = await page.evaluate(
    ([from, span]) =>
      new Promise((resolve, reject) => {
        const video = document.querySelector('video');
        const end = () => (video.buffered.length ? video.buffered.end(video.buffered.length - 1) : 0);
        let start = null;
        const giveUp = performance.now() + 120_000;
        const poll = () => {
          const now = performance.now();
          const e = end();
          if (start === null && e >= from) start = { t: now, e };
          const target = start && Math.min(start.e + span, (video.duration || Infinity) - 1);
          if (start && e >= target) {
            resolve({
              bufferedPerSecond: (e - start.e) / ((now - start.t) / 1000),
              bufferedSeconds: e - start.e,
              wallSeconds: (now - start.t) / 1000,
              transport: window.__player.transport,
              protocol: window.__player.protocol,
            });
          } else if (now > giveUp) {
            reject(new Error(`only ${e.toFixed(1)} s buffered after 120 s (${JSON.stringify(window.__player)})`));
          } else setTimeout(poll, 50);
        };
        poll();
      }),
    [BUFFER_FROM_S, BUFFER_SPAN_S],
  );
  console.error(`player: ${result.player.bufferedPerSecond.toFixed(1)} s of video per second over ${result.player.transport}`);
} finally {
  await writeFile(env.OUT, JSON.stringify(result));
  await browser.close();
}
