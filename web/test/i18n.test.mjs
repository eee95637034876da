// Unit tests of the UI's languages (src/i18n.ts and the catalogs), run by `npm test` against
// the module that build.mjs --tests bundles next to this file.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  CATALOGS,
  formatBytes,
  formatPercent,
  formatRate,
  formatSeconds,
  isKey,
  pickLocale,
  translate,
  translateParts,
} from './i18n.mjs';

const placeholders = (text) => new Set([...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]));
const forms = (message) => (typeof message === 'string' ? [message] : Object.values(message));

test('every catalog translates every key of the English one, with the same placeholders', () => {
  const en = CATALOGS.en;
  for (const [locale, catalog] of Object.entries(CATALOGS)) {
    assert.deepEqual(Object.keys(catalog).sort(), Object.keys(en).sort(), `${locale}: keys`);
    for (const [key, message] of Object.entries(catalog)) {
      const want = new Set(forms(en[key]).flatMap((f) => [...placeholders(f)]));
      for (const form of forms(message)) {
        assert.ok(form.trim() !== '', `${locale} ${key}: empty`);
        assert.deepEqual(placeholders(form), want, `${locale} ${key}: placeholders of "${form}"`);
      }
      if (typeof message !== 'string') assert.ok(message.other, `${locale} ${key}: no "other" form`);
    }
  }
});

test('the Chinese catalog is Chinese: every message holds Han characters or is a name', () => {
  const names = new Set(['player.p2p', 'task.sizeOf', 'task.announceStatus']);
  for (const [key, message] of Object.entries(CATALOGS['zh-CN'])) {
    if (names.has(key)) continue;
    for (const form of forms(message)) assert.match(form, /\p{Script=Han}/u, `zh-CN ${key}: "${form}"`);
  }
});

test('the language comes from storage, else the browser, else English', () => {
  assert.equal(pickLocale(null, ['zh-CN', 'en-US']), 'zh-CN');
  assert.equal(pickLocale(null, ['zh']), 'zh-CN');
  assert.equal(pickLocale(null, ['zh-Hans-CN']), 'zh-CN');
  assert.equal(pickLocale(null, ['en-US', 'zh-CN']), 'en');
  assert.equal(pickLocale(null, ['fr-FR', 'zh-CN']), 'zh-CN');
  assert.equal(pickLocale(null, ['fr-FR', 'de']), 'en');
  assert.equal(pickLocale(null, []), 'en');
  assert.equal(pickLocale('en', ['zh-CN']), 'en');
  assert.equal(pickLocale('zh-CN', ['en-US']), 'zh-CN');
  assert.equal(pickLocale('xx', ['zh-CN']), 'zh-CN', 'a stored value we do not have is ignored');
});

test('messages fill placeholders, format numbers and choose plural forms', () => {
  assert.equal(translate('en', 'node.activeTasks', { count: 1 }), '1 active task');
  assert.equal(translate('en', 'node.activeTasks', { count: 1234 }), '1,234 active tasks');
  assert.equal(translate('zh-CN', 'node.activeTasks', { count: 2 }), '进行中的任务：2');
  assert.equal(translate('zh-CN', 'task.confirmDelete', { name: 'X' }), '删除任务“X”及其下载内容和视频？');
  assert.equal(translate('en', 'task.announceStatus', { name: 'A' }), 'A: {status}', 'a missing parameter shows');
  const parts = translateParts('zh-CN', 'auth.loggedInAs', { user: { el: 'user' }, logout: { el: 'logout' } });
  assert.deepEqual(parts, ['已登录：', { el: 'user' }, '（', { el: 'logout' }, '）']);
});

test('figures are formatted for the language', () => {
  assert.equal(formatBytes('en', 0), '0 B');
  assert.equal(formatBytes('en', 1536), '1.50 KiB');
  assert.equal(formatBytes('en', 5 * 1024 ** 3), '5.00 GiB');
  assert.equal(formatBytes('en', 1023), '1,023 B');
  assert.equal(formatBytes('en', -1), '–');
  assert.equal(formatRate('zh-CN', 2 * 1024 * 1024), '2.00 MiB/s');
  assert.equal(formatPercent('en', 42), '42%');
  assert.equal(formatPercent('zh-CN', 42), '42%');
  assert.equal(formatSeconds('en', 30), '30 seconds');
  assert.match(formatSeconds('zh-CN', 30), /^30\s?秒/);
});

test('every error code of docs/api.md has a message, and every message a code', () => {
  const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('### Error codes'));
  const codes = [...section.slice(0, section.indexOf('\n## ')).matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  assert.ok(codes.length >= 40, `codes found in docs/api.md: ${codes.length}`);
  for (const code of codes) assert.ok(isKey(`error.${code}`), `no message for the code ${code}`);
  const messages = Object.keys(CATALOGS.en)
    .filter((k) => k.startsWith('error.'))
    .map((k) => k.slice('error.'.length))
    .filter((c) => c !== 'network' && c !== 'http');
  assert.deepEqual(messages.sort(), [...codes].sort());
});
