// Browser end-to-end check of the web UI against a running stack, driven by a Rust test:
//
//   BASE_URL=http://127.0.0.1:PORT MAGNET='magnet:?…' MODE=p2p|relay|xss|admin|progressive OUT_DIR=dir \
//     [CHROMIUM=/usr/bin/chromium] [TIMEOUT_MS=180000] [USERNAME=… PASSWORD=…] node web/e2e/run.mjs
//
// p2p/relay: submit the magnet, watch the task's progress bar until it is ready, play it and
// wait until the video has played past 2 s over the expected transport. xss: submit a torrent
// named `<img src=x onerror=alert(1)>` and check that the name shows as text. admin (with
// USERNAME and PASSWORD of an admin; no MAGNET): add a user with the admin table's form, see
// it listed, and log in as that user. progressive: press Play as soon as the task is playable,
// note the download progress when the video plays, then seek to 80 % of the duration and time
// until playback moves past the target again. original (MAGNET is the id of a ready task on
// an original worker node): the node card says "original worker", the task row's Play opens
// the player, which plays over P2P with the original protocol. torrent (MAGNET is the path of
// a .torrent file): drop the file on the index page, then as p2p. episodes (EPISODE names a
// file of a season pack, e.g. S01E03): submit, open the task's episode list, play EPISODE,
// then press Next in the player and play the episode after it; both past 2 s over P2P.
// recover: submit, open the player once ready (hls.js buffering at most 20 s ahead), play
// over P2P, write OUT_DIR/p2p-playing and wait while the test drops P2P (it kills the node's
// streamer and starts it again): the relay takes the requests made meanwhile (if the buffer
// needs any: `bytesRelayWhileLost`), P2P must come back and carry the next ones, and the video
// never stall for 2 s.
// PLAYER_PARAMS (e.g. `ice_policy=relay`) are added to the player's URL in p2p mode, and
// EXPECT_TRANSPORT overrides the transport p2p mode expects (a TURN test that must fall back).
// Writes OUT_DIR/result.json (also printed as one line) and screenshots; exits 0 iff ok.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { launch } from './chromium.mjs';

const env = process.env;
const BASE_URL = (env.BASE_URL ?? '').replace(/\/+$/, '');
const MAGNET = env.MAGNET ?? '';
const MODE = env.MODE ?? 'p2p';
const OUT_DIR = env.OUT_DIR ?? 'e2e-out';
const TIMEOUT_MS = Number(env.TIMEOUT_MS || 180_000);
const XSS_NAME = '<img src=x onerror=alert(1)>';

const result = {
  ok: false,
  mode: MODE,
  transport: null,
  protocol: null,
  currentTime: 0,
  progressSeen: [],
  consoleErrors: [],
  expectedErrors: [],
  pageErrors: [],
  dialogs: [],
  fallbackReason: null,
  reachedReady: false,
  addedUser: false,
  taskId: null,
  progressAtPlaying: null,
  progressAtSeek: null,
  seekTarget: null,
  seekResumeMs: null,
  seekPlusOneMs: null,
  episodesPlayed: [],
  switches: [],
  candidateType: null,
  maxStallMs: null,
  bytesRelayWhileLost: 0,
  bytesP2pAfterBack: 0,
  error: null,
};

/** Until USERNAME has logged in (always true without USERNAME). */
let loggedIn = !(env.USERNAME && env.PASSWORD);
const deadline = Date.now() + TIMEOUT_MS;
/** What is left of the overall budget, for one wait. */
const remaining = () => Math.max(1_000, deadline - Date.now());

function fail(message) {
  throw new Error(message);
}

async function main() {
  if (!BASE_URL) fail('BASE_URL is not set');
  if (!MAGNET && MODE !== 'admin') fail('MAGNET is not set');
  if (!['p2p', 'relay', 'xss', 'admin', 'progressive', 'original', 'torrent', 'episodes', 'recover'].includes(MODE))
    fail(`MODE must be p2p, relay, xss, admin, progressive, original, torrent, episodes or recover, not ${MODE}`);
  await mkdir(OUT_DIR, { recursive: true });

  // For MODE=relay, no UDP candidates at all, so WebRTC really fails and the player must
  // fall back.
  const browser = await launch({ noUdp: MODE === 'relay' });
  const context = browser.context;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(30_000);
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const loc = m.location();
      const text = `${m.text()}${loc?.url ? ` (${loc.url}:${loc.lineNumber})` : ''}`;
      // Logged out, the API answers 401 (GET /api/auth/me first): expected until logged in.
      if (!loggedIn && /status of 401/.test(text) && /\/api\//.test(loc?.url ?? '')) result.expectedErrors.push(text);
      else result.consoleErrors.push(text);
    });
    page.on('pageerror', (e) => result.pageErrors.push(String(e?.stack ?? e)));
    page.on('dialog', (d) => {
      result.dialogs.push(`${d.type()}: ${d.message()}`);
      d.dismiss().catch(() => {});
    });

    await page.goto(`${BASE_URL}/`, { waitUntil: 'load' });
    if (env.USERNAME && env.PASSWORD) await logIn(page, env.USERNAME, env.PASSWORD);

    if (MODE === 'admin') {
      await addUser(page);
      return;
    }
    if (MODE === 'original') {
      await playFromOriginalWorker(page, MAGNET);
      return;
    }
    const row = MODE === 'torrent' ? await dropTorrent(page, MAGNET) : await submit(page);
    if (MODE === 'xss') await checkXss(page, row);
    else if (MODE === 'episodes') await playEpisodes(page, row, env.EPISODE ?? '');
    else if (MODE === 'recover') await recoverFromLostPeer(page, row);
    else if (MODE === 'progressive') await playWhileDownloading(page, row);
    else await playThrough(page, row);
  } finally {
    await browser.close();
  }
}

async function logIn(page, username, password) {
  // index.ts marks <body data-account="off|out|in"> once it knows; log in only when "out".
  await page.locator('body[data-account]').waitFor({ state: 'attached', timeout: remaining() });
  if ((await page.locator('body').getAttribute('data-account')) !== 'out') {
    loggedIn = true;
    return;
  }
  await page.locator('#login-username').fill(username, { timeout: remaining() });
  await page.locator('#login-password').fill(password);
  await page.locator('#login').click();
  await page.locator('#account', { hasText: username }).waitFor({ timeout: 30_000 });
  loggedIn = true;
}

/** Submits MAGNET; returns the locator of its task row. */
async function submit(page) {
  await page.locator('#magnet').fill(MAGNET, { timeout: remaining() });
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/tasks/submit'), { timeout: remaining() });
  await page.locator('#submit').click();
  const response = await answer;
  const body = await response.json().catch(() => null);
  if (!response.ok() || !body?.success) fail(`submit failed: ${response.status()} ${body?.error ?? ''}`);
  const id = body?.data?.id;
  result.taskId = id ?? null;
  const row = id ? page.locator(`[data-task-id="${id}"]`) : page.locator('[data-task-id]').first();
  await row.waitFor({ timeout: remaining() });
  return row;
}

async function playThrough(page, row) {
  // Sample the progress bar in the page every 100 ms, keeping the distinct values.
  await row.evaluate((el) => {
    const seen = (window.__progressSeen = []);
    const sample = () => {
      const bar = el.querySelector('progress.task-progress');
      if (bar && !seen.includes(bar.value)) seen.push(bar.value);
    };
    sample();
    window.__progressTimer = setInterval(sample, 100);
  });
  try {
    await page.waitForFunction(
      (el) => ['ready', 'error'].includes(el.getAttribute('data-status')),
      await row.elementHandle(),
      { timeout: remaining(), polling: 100 },
    );
  } finally {
    result.progressSeen = await page.evaluate(() => {
      clearInterval(window.__progressTimer);
      return window.__progressSeen ?? [];
    });
  }
  const status = await row.getAttribute('data-status');
  if (status === 'error') {
    const text = (await row.locator('.task-error').textContent().catch(() => '')) || '(no error text)';
    fail(`the task failed: ${text}`);
  }
  result.reachedReady = true;
  await page.screenshot({ path: join(OUT_DIR, 'index.png'), fullPage: true });

  await playPastTwoSeconds(page, row);
}

/** Drops the .torrent file at `path` on the index page, as a user drags it from their files;
 * returns the locator of its task row. */
async function dropTorrent(page, path) {
  const bytes = await readFile(path);
  await page.locator('#torrent-file').waitFor({ state: 'attached', timeout: remaining() });
  const dataTransfer = await page.evaluateHandle(
    ({ b64, name }) => {
      const bin = atob(b64);
      const data = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) data[i] = bin.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([data], name, { type: 'application/x-bittorrent' }));
      return dt;
    },
    { b64: bytes.toString('base64'), name: basename(path) },
  );
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/tasks/submit'), { timeout: remaining() });
  await page.dispatchEvent('body', 'dragover', { dataTransfer });
  await page.dispatchEvent('body', 'drop', { dataTransfer });
  const response = await answer;
  const body = await response.json().catch(() => null);
  if (!response.ok() || !body?.success) fail(`submit of the dropped file failed: ${response.status()} ${body?.error ?? ''}`);
  result.taskId = body?.data?.id ?? null;
  const row = page.locator(`[data-task-id="${result.taskId}"]`);
  await row.waitFor({ timeout: remaining() });
  return row;
}

/** The task's download progress (0–100) and status, as the API gives them. */
async function taskNow(page) {
  const r = await page.request.get(`${BASE_URL}/api/tasks/${encodeURIComponent(result.taskId)}`);
  const body = await r.json().catch(() => null);
  if (!r.ok() || !body?.success) fail(`GET task: ${r.status()} ${body?.error ?? ''}`);
  return body.data;
}

async function playWhileDownloading(page, row) {
  // Play appears as soon as the task is playable, long before it is ready.
  await row.locator('a.play').waitFor({ timeout: remaining() });
  await Promise.all([page.waitForURL(/\/player\?/, { timeout: remaining() }), row.locator('a.play').click()]);
  try {
    await page.waitForFunction(
      () => {
        const v = document.querySelector('#video');
        return v && !v.paused && v.currentTime > 0.5;
      },
      null,
      { timeout: remaining(), polling: 50 },
    );
    const playing = await taskNow(page);
    result.progressAtPlaying = playing.progress;
    result.statusAtPlaying = playing.status;
    await page.screenshot({ path: join(OUT_DIR, 'playing.png'), fullPage: true }).catch(() => {});

    const duration = await page.evaluate(() => document.querySelector('#video').duration);
    if (!(duration > 10)) fail(`the video's duration is ${duration}: the playlist should be whole from the start`);
    const target = duration * 0.8;
    result.seekTarget = target;
    result.progressAtSeek = (await taskNow(page)).progress;
    const started = Date.now();
    await page.evaluate((t) => {
      document.querySelector('#video').currentTime = t;
    }, target);
    await page.waitForFunction((t) => document.querySelector('#video').currentTime > t + 0.1, target, {
      timeout: 60_000,
      polling: 20,
    });
    result.seekResumeMs = Date.now() - started;
    await page.waitForFunction((t) => document.querySelector('#video').currentTime > t + 1, target, {
      timeout: 30_000,
      polling: 20,
    });
    result.seekPlusOneMs = Date.now() - started;
  } finally {
    await readPlayer(page);
    await page.screenshot({ path: join(OUT_DIR, 'player.png'), fullPage: true }).catch(() => {});
  }
}

/** A ready task of an original worker node, listed on the index, plays from that node. */
async function playFromOriginalWorker(page, taskId) {
  result.taskId = taskId;
  await page.locator('.node', { hasText: 'original worker' }).waitFor({ timeout: remaining() });
  const row = page.locator(`[data-task-id="${taskId}"]`);
  await row.locator('a.play').waitFor({ timeout: remaining() });
  result.reachedReady = true;
  await page.screenshot({ path: join(OUT_DIR, 'index.png'), fullPage: true });
  await playPastTwoSeconds(page, row);
}

/** Opens the row's player and waits until the video has played past 2 s. */
async function playPastTwoSeconds(page, row) {
  await Promise.all([page.waitForURL(/\/player\?/, { timeout: remaining() }), row.locator('a.play').click()]);
  if (env.PLAYER_PARAMS) await page.goto(`${page.url()}&${env.PLAYER_PARAMS}`);
  try {
    await page.waitForFunction(() => document.querySelector('#video')?.currentTime > 2, null, {
      timeout: remaining(),
      polling: 250,
    });
  } finally {
    await readPlayer(page);
    await page.screenshot({ path: join(OUT_DIR, 'player.png'), fullPage: true }).catch(() => {});
  }
}

/** Plays over P2P, signals the test to drop P2P, and watches the player through it. */
async function recoverFromLostPeer(page, row) {
  await page.waitForFunction(
    (el) => ['ready', 'error'].includes(el.getAttribute('data-status')),
    await row.elementHandle(),
    { timeout: remaining(), polling: 100 },
  );
  result.reachedReady = (await row.getAttribute('data-status')) === 'ready';
  await page.goto(`${BASE_URL}/player?taskId=${encodeURIComponent(result.taskId)}&max_buffer_s=20`);
  // Playing over P2P with 10 s buffered ahead: more than it takes to notice the loss (about
  // 5 s + 2 s), so a stall would be the player's fault, not a buffer the test drained.
  await page.waitForFunction(
    () => {
      const v = document.querySelector('#video');
      if (window.__player?.transport !== 'p2p' || !v || v.currentTime <= 2 || v.buffered.length === 0) return false;
      return v.buffered.end(v.buffered.length - 1) - v.currentTime >= 10;
    },
    null,
    { timeout: remaining(), polling: 100 },
  );
  await writeFile(join(OUT_DIR, 'p2p-playing'), '');
  // Sample until P2P is back and the video has played on over it.
  let last = null;
  let stallSince = null;
  let maxStall = 0;
  let lostAt = null;
  let backAt = null;
  try {
    for (;;) {
      if (Date.now() > deadline) fail(`P2P did not come back: ${JSON.stringify(result.switches)}`);
      const s = await page.evaluate(() => {
        const v = document.querySelector('#video');
        return {
          t: performance.now(),
          at: v?.currentTime ?? 0,
          paused: v?.paused ?? true,
          ended: v?.ended ?? false,
          transport: window.__player?.transport,
          switches: window.__player?.switches ?? [],
          bytesBy: window.__player?.bytesBy ?? { p2p: 0, relay: 0 },
        };
      });
      result.switches = s.switches;
      if (last && !s.ended && !s.paused && s.at <= last.at) stallSince ??= last.t;
      else stallSince = null;
      if (stallSince !== null) maxStall = Math.max(maxStall, s.t - stallSince);
      if (!lostAt && s.transport === 'relay') lostAt = { ...s };
      if (lostAt && !backAt && s.transport === 'p2p') backAt = { ...s };
      // Relay requests made while P2P was lost may complete after it is back.
      if (lostAt) result.bytesRelayWhileLost = s.bytesBy.relay - lostAt.bytesBy.relay;
      if (backAt) result.bytesP2pAfterBack = s.bytesBy.p2p - backAt.bytesBy.p2p;
      if (backAt && (s.at > backAt.at + 4 || s.ended) && result.bytesP2pAfterBack > 0) break;
      last = s;
      await page.waitForTimeout(200);
    }
  } finally {
    result.maxStallMs = Math.round(maxStall);
    await readPlayer(page);
    await page.screenshot({ path: join(OUT_DIR, 'player-recovered.png'), fullPage: true }).catch(() => {});
  }
}

/** The episode list of the task's row: play EPISODE, then the next one from the player. */
async function playEpisodes(page, row, episode) {
  const list = row.locator('details.episodes');
  await list.waitFor({ state: 'visible', timeout: remaining() });
  await list.locator('summary').click();
  const item = list.locator('li.episode', { hasText: episode });
  await item.waitFor({ timeout: remaining() });
  await page.screenshot({ path: join(OUT_DIR, 'episodes.png'), fullPage: true });
  for (const [step, go] of [
    ['chosen', () => item.locator('a.play-episode').click()],
    ['next', () => page.locator('#next').click()],
  ]) {
    await Promise.all([page.waitForURL(/\/player\?.*file=/, { timeout: remaining() }), go()]);
    try {
      await page.waitForFunction(() => document.querySelector('#video')?.currentTime > 2, null, {
        timeout: remaining(),
        polling: 250,
      });
    } finally {
      await readPlayer(page);
      await page.screenshot({ path: join(OUT_DIR, `player-${step}.png`), fullPage: true }).catch(() => {});
    }
    const shown = (await page.locator('#episode').textContent()) ?? '';
    result.episodesPlayed.push(shown);
    if (result.transport !== 'p2p') fail(`episode ${shown} played over ${result.transport}`);
  }
}

async function readPlayer(page) {
  const p = await page
    .evaluate(() => ({ player: window.__player ?? null, currentTime: document.querySelector('#video')?.currentTime ?? 0 }))
    .catch(() => null);
  if (!p) return;
  result.currentTime = p.currentTime;
  result.transport = p.player?.transport ?? null;
  result.protocol = p.player?.protocol ?? null;
  result.fallbackReason = p.player?.fallbackReason ?? null;
  result.candidateType = p.player?.candidateType ?? null;
  result.bytes = p.player?.bytes ?? 0;
}

async function checkXss(page, row) {
  // The name arrives with the torrent's metadata; until then the row shows the magnet.
  await row.locator('.task-name[data-source="torrent"]').waitFor({ timeout: remaining() });
  const text = (await row.textContent()) ?? '';
  const images = await page.evaluate(() => document.querySelectorAll('img[src="x"]').length);
  await page.screenshot({ path: join(OUT_DIR, 'xss.png'), fullPage: true });
  if (!text.includes(XSS_NAME)) fail(`the row does not show the name literally: ${JSON.stringify(text)}`);
  if (images !== 0) fail(`${images} <img src="x"> element(s) were injected`);
}

/** The admin table's form adds a user (any name of 3+ characters), who can then log in. */
async function addUser(page) {
  const name = 'Zoë Viewer';
  await page.locator('#admin-section').waitFor({ state: 'visible', timeout: remaining() });
  await page.locator('#add-username').fill(name);
  await page.locator('#add-password').fill('viewer-password');
  await page.locator('#add-user').click();
  await page.locator('#add-user-status', { hasText: `Added ${name}` }).waitFor({ timeout: 30_000 });
  await page.locator('#users tr', { hasText: name }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(OUT_DIR, 'admin.png'), fullPage: true });
  const login = await page.request.post(`${BASE_URL}/api/auth/login`, {
    data: { username: ' zoë viewer ', password: 'viewer-password' },
  });
  if (login.status() !== 200) fail(`the added user cannot log in: ${login.status()}`);
  result.addedUser = true;
}

function verdict() {
  const problems = [];
  if (result.error) problems.push(result.error);
  if (result.consoleErrors.length) problems.push(`${result.consoleErrors.length} console error(s)`);
  if (result.pageErrors.length) problems.push(`${result.pageErrors.length} page error(s)`);
  if (result.dialogs.length) problems.push(`${result.dialogs.length} dialog(s)`);
  if (MODE === 'admin') {
    if (!result.addedUser) problems.push('the user was not added');
  } else if (MODE === 'progressive') {
    if (!(result.progressAtPlaying < 50)) problems.push(`the video played only at ${result.progressAtPlaying} % downloaded`);
    if (!(result.progressAtSeek < 40)) problems.push(`the seek came at ${result.progressAtSeek} % downloaded, not below 40 %`);
    if (result.seekPlusOneMs === null) problems.push('playback did not pass the seek target');
    if (result.transport !== 'p2p') problems.push(`transport is ${result.transport}, not p2p`);
    if (result.fallbackReason) problems.push(`the player fell back: ${result.fallbackReason}`);
  } else if (MODE === 'recover') {
    const [first, ...rest] = result.switches;
    if (first !== 'p2p' || !rest.some((x) => x.startsWith('relay')) || rest.at(-1) !== 'p2p')
      problems.push(`switches ${JSON.stringify(result.switches)}: not p2p, relay, p2p`);
    if (!(result.maxStallMs < 2000)) problems.push(`the video stalled for ${result.maxStallMs} ms`);
    if (!(result.bytesP2pAfterBack > 0)) problems.push('nothing came over P2P once it was back');
  } else if (MODE === 'episodes') {
    if (result.episodesPlayed.length !== 2) problems.push(`played ${result.episodesPlayed.length} episode(s), not 2`);
    if (!(result.currentTime > 2)) problems.push(`currentTime ${result.currentTime} is not past 2 s`);
  } else if (MODE === 'original') {
    if (!(result.currentTime > 2)) problems.push(`currentTime ${result.currentTime} is not past 2 s`);
    if (result.transport !== 'p2p') problems.push(`transport is ${result.transport}, not p2p`);
    if (result.protocol !== 'original') problems.push(`protocol is ${result.protocol}, not original`);
  } else if (MODE !== 'xss') {
    if (!result.reachedReady) problems.push('the task never became ready');
    if (!(result.currentTime > 2)) problems.push(`currentTime ${result.currentTime} is not past 2 s`);
    const transport = env.EXPECT_TRANSPORT || (MODE === 'torrent' ? 'p2p' : MODE);
    if (result.transport !== transport) problems.push(`transport is ${result.transport}, not ${transport}`);
    if (MODE !== 'torrent' && new Set(result.progressSeen).size < 2)
      problems.push(`progress showed ${result.progressSeen.length} distinct value(s)`);
  }
  return problems;
}

try {
  await main();
} catch (e) {
  // Playwright's messages carry terminal colours.
  result.error = (e instanceof Error ? e.message : String(e)).replace(/\x1b\[[0-9;]*m/g, '');
}
const problems = verdict();
result.ok = problems.length === 0;
if (!result.ok) result.problems = problems;
await mkdir(OUT_DIR, { recursive: true }).catch(() => {});
await writeFile(join(OUT_DIR, 'result.json'), JSON.stringify(result, null, 2)).catch(() => {});
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
