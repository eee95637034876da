// Browser checks of the UI's languages, accessibility and small screens against a running
// stack, driven by a Rust test (tests/tests/integration/ui.rs):
//
//   BASE_URL=http://127.0.0.1:PORT MAGNET='magnet:?…' MODE=i18n|a11y|keyboard OUT_DIR=dir \
//     [USERNAME=… PASSWORD=…] [CHROMIUM=/usr/bin/chromium] [TIMEOUT_MS=180000] node web/e2e/ui.mjs
//
// i18n (accounts off): with the browser's language zh-CN, the index and the player are in
// Chinese, an invalid magnet's error and the relay's reason too; the switch to English on the player holds through a
// reload and on the index (remembered); with en-US, English.
// a11y (USERNAME/PASSWORD of an admin): in English and Chinese, at 375 and 1280 px wide, the
// index logged out, the index logged in with a task and the player: axe-core finds no
// violation of impact serious or critical, the document is no wider than the viewport, and at
// 375 px every control is a touch target of at least 44 x 44 px. Screenshots of each.
// keyboard (USERNAME/PASSWORD): with Tab, typing and Enter only: log in, submit MAGNET, open
// the player from the task's Play link, then pause, play and seek the video with the keys of
// its controls; every control reached shows its focus.
// Writes OUT_DIR/result.json (also printed) and the screenshots; exits 0 iff no problem.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { launch } from './chromium.mjs';

const env = process.env;
const BASE_URL = (env.BASE_URL ?? '').replace(/\/+$/, '');
const MAGNET = env.MAGNET ?? '';
const MODE = env.MODE ?? '';
const OUT_DIR = env.OUT_DIR ?? 'e2e-out';
const TIMEOUT_MS = Number(env.TIMEOUT_MS || 180_000);
const deadline = Date.now() + TIMEOUT_MS;
const remaining = () => Math.max(1_000, deadline - Date.now());
/** Not a magnet link: the gateway refuses it with the code `magnet_invalid`. */
const BAD_MAGNET = 'magnet:?xt=urn:btih:not-a-hash';

const result = { ok: false, mode: MODE, checks: 0, problems: [], axe: {}, screenshots: [], taskId: null, keys: [], error: null };
const problems = result.problems;

/** Records one expectation; a failed one is a problem, the run goes on. */
function expect(ok, what) {
  result.checks++;
  if (!ok) problems.push(what);
  return ok;
}

async function text(page, selector) {
  return ((await page.locator(selector).first().textContent({ timeout: remaining() })) ?? '').trim();
}

async function expectText(page, selector, want) {
  const got = await text(page, selector);
  expect(got === want, `${selector}: "${got}", not "${want}"`);
}

async function open(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => problems.push(`page error: ${String(e?.stack ?? e)}`));
  page.on('dialog', (d) => d.accept().catch(() => {}));
  return page;
}

async function home(page) {
  await page.goto(`${BASE_URL}/`, { waitUntil: 'load' });
  await page.locator('body[data-account]').waitFor({ state: 'attached', timeout: remaining() });
}

async function logIn(page) {
  await page.locator('#login-username').fill(env.USERNAME ?? '', { timeout: remaining() });
  await page.locator('#login-password').fill(env.PASSWORD ?? '');
  await page.locator('#login').click();
  await page.locator('body[data-account="in"]').waitFor({ state: 'attached', timeout: remaining() });
}

/** The row of the task MAGNET makes, once its status is ready. */
async function readyRow(page, id) {
  const row = page.locator(`[data-task-id="${id}"]`);
  await page.waitForFunction(
    (sel) => ['ready', 'error'].includes(document.querySelector(sel)?.getAttribute('data-status')),
    `[data-task-id="${id}"]`,
    { timeout: remaining(), polling: 100 },
  );
  if ((await row.getAttribute('data-status')) !== 'ready') throw new Error(`task ${id} failed: ${await row.textContent()}`);
  return row;
}

/** Submits with the form (button click); returns the task id. */
async function submit(page, magnet) {
  await page.locator('#magnet').fill(magnet, { timeout: remaining() });
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/tasks/submit'), { timeout: remaining() });
  await page.locator('#submit').click();
  const body = await (await answer).json().catch(() => null);
  return body?.data?.id ?? null;
}

async function playing(page, past = 2) {
  await page.waitForFunction((t) => document.querySelector('#video')?.currentTime > t, past, { timeout: remaining(), polling: 100 });
}

// ---------------------------------------------------------------- i18n

async function languages() {
  let browser = await launch({ locale: 'zh-CN' });
  try {
    const page = await open(browser.context);
    await home(page);
    expect((await page.evaluate(() => navigator.languages[0])) === 'zh-CN', 'the browser does not say zh-CN');
    expect((await page.locator('html').getAttribute('lang')) === 'zh-CN', '<html lang> is not zh-CN');
    await expectText(page, '#submit-title', '新建任务');
    await expectText(page, '#tasks-title', '任务');
    await expectText(page, 'label[for="magnet"]', '磁力链接');
    await expectText(page, '#submit', '提交');
    await expectText(page, '#nodes-title', '节点');
    await expectText(page, 'label[for="lang"]', '语言');

    await page.locator('#magnet').fill(BAD_MAGNET);
    await page.locator('#submit').click();
    await page.locator('#submit-error:not(:empty)').waitFor({ timeout: remaining() });
    await expectText(page, '#submit-error', '这不是有效的磁力链接。');

    result.taskId = await submit(page, MAGNET);
    const row = await readyRow(page, result.taskId);
    await expectText(page, `[data-task-id="${result.taskId}"] .status`, '就绪');
    await expectText(page, `[data-task-id="${result.taskId}"] a.play`, '播放');
    await expectText(page, `[data-task-id="${result.taskId}"] dt`, '速度');
    await page.screenshot({ path: join(OUT_DIR, 'index-zh-CN.png'), fullPage: true });

    await row.locator('a.play').click();
    await page.waitForURL(/\/player\?/, { timeout: remaining() });
    await playing(page);
    await expectText(page, '.back', '← 任务列表');
    await expectText(page, '.player-bar .label', '传输方式');
    await expectText(page, 'label[for="subtitles"]', '字幕');
    // What the player says (playing over P2P, buffering, ended…) is said in Chinese.
    const state = await text(page, '#state');
    expect(/\p{Script=Han}/u.test(state) && !/[A-Za-z]{3,}/.test(state.replace('P2P', '')), `#state not Chinese: "${state}"`);
    expect(/[\u4e00-\u9fff]/.test(await page.title()) || (await page.title()).includes('magnetm3u8'), 'player title');
    await page.screenshot({ path: join(OUT_DIR, 'player-zh-CN.png'), fullPage: true });

    // Over the relay, the player says so, and why, in Chinese.
    await page.goto(`${BASE_URL}/player?taskId=${encodeURIComponent(result.taskId)}&transport=relay`, { waitUntil: 'load' });
    await playing(page);
    await expectText(page, '#transport', '中继');
    await expectText(page, '#fallback', '由 transport=relay 指定');

    // The switch, on the player: English at once, and after a reload and on the index.
    await page.locator('#lang').selectOption('en');
    await expectText(page, '#transport', 'Relay');
    await expectText(page, '#fallback', 'forced by transport=relay');
    await expectText(page, '.player-bar .label', 'Transport');
    await expectText(page, '.back', '← Tasks');
    expect(/^(Playing over|Buffering|Playing…|Ended)/.test(await text(page, '#state')), `#state not English: ${await text(page, '#state')}`);
    expect((await page.locator('html').getAttribute('lang')) === 'en', '<html lang> is not en after the switch');
    await page.reload({ waitUntil: 'load' });
    await expectText(page, '.player-bar .label', 'Transport');
    await home(page);
    await expectText(page, '#submit-title', 'New task');
    await expectText(page, `[data-task-id="${result.taskId}"] .status`, 'ready');
    // And back, without a reload: the task rows follow.
    await page.locator('#lang').selectOption('zh-CN');
    await expectText(page, `[data-task-id="${result.taskId}"] .status`, '就绪');
    await expectText(page, '#submit-title', '新建任务');
  } finally {
    await browser.close();
  }

  browser = await launch({ locale: 'en-US' });
  try {
    const page = await open(browser.context);
    await home(page);
    expect((await page.locator('html').getAttribute('lang')) === 'en', '<html lang> is not en');
    await expectText(page, '#submit-title', 'New task');
    await expectText(page, '#submit', 'Submit');
    await page.locator('#magnet').fill(BAD_MAGNET);
    await page.locator('#submit').click();
    await page.locator('#submit-error:not(:empty)').waitFor({ timeout: remaining() });
    const shown = await text(page, '#submit-error');
    expect(shown.startsWith('invalid magnet link'), `English error: "${shown}"`);
    await page.screenshot({ path: join(OUT_DIR, 'index-en.png'), fullPage: true });
  } finally {
    await browser.close();
  }
}

// ---------------------------------------------------------------- a11y

const require = createRequire(import.meta.url);
const AXE = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core on the page as it is: violations of impact serious or critical are problems.
 * The first audit proves first that axe finds one: an input without a label, added for it. */
let probed = false;
async function audit(page, name) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE);
  if (!probed) {
    probed = true;
    const found = await page.evaluate(async () => {
      const probe = document.createElement('input');
      probe.id = 'axe-probe';
      document.body.append(probe);
      try {
        return (await window.axe.run('#axe-probe', { resultTypes: ['violations'] })).violations.map((v) => `${v.id}:${v.impact}`);
      } finally {
        probe.remove();
      }
    });
    result.probe = found;
    expect(found.includes('label:critical'), `axe did not find an input without a label: ${found.join(', ')}`);
  }
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  result.axe[name] = violations;
  for (const v of violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')) {
    problems.push(`${name}: axe ${v.impact} ${v.id} (${v.help}) at ${v.nodes.join(', ')}`);
  }
}

/** No horizontal scroll; at phone widths, every visible control at least 44 x 44 px (a
 * checkbox counts by its label). */
async function layout(page, name, phone) {
  const { scrollWidth, innerWidth, small } = await page.evaluate((phone) => {
    const small = [];
    if (phone) {
      for (const el of document.querySelectorAll('button, a[href], select, input, textarea, summary')) {
        const target = el.matches('input[type="checkbox"], input[type="radio"]') ? (el.closest('label') ?? el) : el;
        const r = target.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue; // not shown
        if (r.width < 43.5 || r.height < 43.5) {
          small.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${el.className} ${Math.round(r.width)}x${Math.round(r.height)}`);
        }
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, small };
  }, phone);
  expect(scrollWidth <= innerWidth, `${name}: the document is ${scrollWidth} px wide in a ${innerWidth} px viewport`);
  for (const s of small) problems.push(`${name}: a touch target under 44 px: ${s}`);
}

async function shoot(page, name) {
  const path = join(OUT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  result.screenshots.push(path);
}

const WIDTHS = [
  { width: 375, height: 812 },
  { width: 1280, height: 900 },
];

/** Each width: the page (re)loaded by `show`, audited, measured and shot. */
async function everyWidth(page, name, show) {
  for (const size of WIDTHS) {
    await page.setViewportSize(size);
    await show();
    const id = `${name}-${size.width}`;
    await audit(page, id);
    await layout(page, id, size.width < 600);
    await shoot(page, id);
  }
}

async function accessibility() {
  for (const locale of ['en', 'zh-CN']) {
    const browser = await launch({ locale });
    try {
      const page = await open(browser.context);
      await everyWidth(page, `index-out-${locale}`, () => home(page));
      await logIn(page);
      if (!result.taskId) {
        result.taskId = await submit(page, MAGNET);
      }
      await readyRow(page, result.taskId);
      await everyWidth(page, `index-in-${locale}`, async () => {
        await home(page);
        await readyRow(page, result.taskId);
        await page.locator('#users tr').first().waitFor({ timeout: remaining() });
      });
      await everyWidth(page, `player-${locale}`, async () => {
        await page.goto(`${BASE_URL}/player?taskId=${encodeURIComponent(result.taskId)}`, { waitUntil: 'load' });
        await playing(page, 1);
      });
    } finally {
      await browser.close();
    }
  }
}

// ---------------------------------------------------------------- keyboard

/** Presses Tab until `selector` has the focus (at most `most` times); it must show it. */
async function tabTo(page, selector, most = 40) {
  for (let i = 0; i < most; i++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate((sel) => {
      const el = document.activeElement;
      if (!el || !el.matches(sel)) return null;
      // The video's focus may be on one of its own controls, which Chromium rings itself.
      if (el.tagName === 'VIDEO') return { visible: el.matches(':focus') };
      const style = getComputedStyle(el);
      return { visible: el.matches(':focus-visible') && style.outlineStyle !== 'none' && style.outlineWidth !== '0px' };
    }, selector);
    if (at) {
      result.keys.push(`Tab x${i + 1} -> ${selector}`);
      expect(at.visible, `${selector} has the focus but does not show it`);
      return;
    }
  }
  throw new Error(`${most} Tabs did not reach ${selector}`);
}

async function press(page, key, why) {
  result.keys.push(`${key} (${why})`);
  await page.keyboard.press(key);
}

async function keyboardOnly() {
  const browser = await launch();
  try {
    const page = await open(browser.context);
    await home(page);
    await tabTo(page, '#login-username');
    await page.keyboard.type(env.USERNAME ?? '');
    await tabTo(page, '#login-password', 1);
    await page.keyboard.type(env.PASSWORD ?? '');
    await press(page, 'Enter', 'log in');
    await page.locator('body[data-account="in"]').waitFor({ state: 'attached', timeout: remaining() });

    await tabTo(page, '#magnet');
    await page.keyboard.type(MAGNET);
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/tasks/submit'), { timeout: remaining() });
    await tabTo(page, '#submit');
    await press(page, 'Enter', 'submit');
    result.taskId = (await (await answer).json().catch(() => null))?.data?.id ?? null;
    await readyRow(page, result.taskId);

    // From the top of the page, as a keyboard user comes back to it.
    await page.evaluate(() => (document.activeElement instanceof HTMLElement ? document.activeElement.blur() : null));
    await tabTo(page, `[data-task-id="${result.taskId}"] a.play`, 60);
    await press(page, 'Enter', 'open the player');
    await page.waitForURL(/\/player\?/, { timeout: remaining() });

    // The video's own controls: Space pauses and plays, the arrows seek.
    await tabTo(page, '#video');
    await playing(page, 1);
    await press(page, 'Space', 'pause');
    await page.waitForFunction(() => document.querySelector('#video')?.paused === true, null, { timeout: 10_000 });
    await press(page, 'Space', 'play');
    await page.waitForFunction(() => document.querySelector('#video')?.paused === false, null, { timeout: 10_000 });
    const before = await page.evaluate(() => document.querySelector('#video').currentTime);
    await press(page, 'ArrowRight', 'seek forward');
    const jumped = await page
      .waitForFunction((t) => document.querySelector('#video').currentTime >= t + 3, before, { timeout: 10_000 })
      .then(() => true)
      .catch(() => false);
    expect(jumped, `ArrowRight did not seek forward from ${before}`);
    await playing(page, before + 4);
    await shoot(page, 'player-keyboard');
  } finally {
    await browser.close();
  }
}

// ---------------------------------------------------------------- main

try {
  if (!BASE_URL) throw new Error('BASE_URL is not set');
  if (!MAGNET) throw new Error('MAGNET is not set');
  await mkdir(OUT_DIR, { recursive: true });
  if (MODE === 'i18n') await languages();
  else if (MODE === 'a11y') await accessibility();
  else if (MODE === 'keyboard') await keyboardOnly();
  else throw new Error(`MODE must be i18n, a11y or keyboard, not ${MODE}`);
} catch (e) {
  result.error = String(e?.message ?? e).replace(/\u001b\[[0-9;]*m/g, '');
}
result.ok = result.error === null && problems.length === 0;
await writeFile(join(OUT_DIR, 'result.json'), JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
