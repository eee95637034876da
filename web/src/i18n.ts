// Languages of the UI: the catalogs, the choice of one, and messages and figures formatted
// for it (`Intl`). Pure: no DOM, so `node --test` checks it; `locale.ts` holds the page's
// current language.
//
// A message is a whole sentence with `{name}` placeholders that a translation may reorder;
// numbers in it are formatted for the language, and a message with a `count` may have plural
// forms. Nothing shown is concatenated from translated pieces.

import { en, type Key } from './locales/en';
import { zhCN } from './locales/zh-CN';

export type { Key };
/** One message: a sentence, or its plural forms by `Intl.PluralRules` category. */
export type Message = string | { readonly [category in Intl.LDMLPluralRule]?: string } & { readonly other: string };
/** Every key, translated. */
export type Catalog = { readonly [K in Key]: Message };

export type Locale = 'en' | 'zh-CN';

export const CATALOGS: Readonly<Record<Locale, Catalog>> = { en, 'zh-CN': zhCN };

/** The languages offered, each named in itself. */
export const LOCALES: readonly { id: Locale; name: string }[] = [
  { id: 'en', name: 'English' },
  { id: 'zh-CN', name: '简体中文' },
];

/** What a placeholder takes. Numbers are formatted for the language. */
export type Params = Readonly<Record<string, string | number>>;

/** Whether `key` names a message (keys made from data: an error code, a status). */
export function isKey(key: string): key is Key {
  return Object.prototype.hasOwnProperty.call(en, key);
}

/** The language remembered (`stored`), else the first of the browser's languages that we
 * have, else English. `zh`, `zh-CN`, `zh-Hans`, `zh-SG` take Simplified Chinese. */
export function pickLocale(stored: string | null | undefined, languages: readonly string[]): Locale {
  if (stored && stored in CATALOGS) return stored as Locale;
  for (const raw of languages) {
    const tag = raw.toLowerCase();
    if (tag === 'zh' || tag.startsWith('zh-cn') || tag.startsWith('zh-hans') || tag.startsWith('zh-sg')) return 'zh-CN';
    if (tag === 'en' || tag.startsWith('en-')) return 'en';
  }
  return 'en';
}

/** The message `key` in `locale`, its placeholders filled. An unknown placeholder stays as
 * written, so a missing parameter shows instead of vanishing. */
export function translate(locale: Locale, key: Key, params: Params = {}): string {
  return fill(locale, pick(locale, key, params), params);
}

/** The same, with placeholders that may be DOM nodes (a user's name in bold, a button):
 * the pieces in order, for `replaceChildren`. */
export function translateParts<N>(locale: Locale, key: Key, params: Readonly<Record<string, string | number | N>>): (string | N)[] {
  const text = pick(locale, key, params);
  const parts: (string | N)[] = [];
  let last = 0;
  for (const m of text.matchAll(PLACEHOLDER)) {
    const at = m.index ?? 0;
    if (at > last) parts.push(text.slice(last, at));
    const v = params[m[1]];
    parts.push(v === undefined ? m[0] : typeof v === 'number' ? formatNumber(locale, v) : v);
    last = at + m[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

const PLACEHOLDER = /\{(\w+)\}/g;

function pick(locale: Locale, key: Key, params: Readonly<Record<string, unknown>>): string {
  const message: Message = CATALOGS[locale][key] ?? en[key];
  if (typeof message === 'string') return message;
  const count = Number(params.count);
  const category = Number.isFinite(count) ? plurals(locale).select(count) : 'other';
  return message[category] ?? message.other;
}

function fill(locale: Locale, text: string, params: Params): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => {
    const v = params[name];
    return v === undefined ? whole : typeof v === 'number' ? formatNumber(locale, v) : v;
  });
}

// ---------------------------------------------------------------- figures

const cache = new Map<string, Intl.NumberFormat | Intl.PluralRules | Intl.DateTimeFormat>();

function cached<T extends Intl.NumberFormat | Intl.PluralRules | Intl.DateTimeFormat>(key: string, make: () => T): T {
  let v = cache.get(key) as T | undefined;
  if (!v) {
    v = make();
    cache.set(key, v);
  }
  return v;
}

function plurals(locale: Locale): Intl.PluralRules {
  return cached(`plural:${locale}`, () => new Intl.PluralRules(locale));
}

export function formatNumber(locale: Locale, n: number, fractionDigits = 0): string {
  return cached(
    `number:${locale}:${fractionDigits}`,
    () => new Intl.NumberFormat(locale, { minimumFractionDigits: fractionDigits, maximumFractionDigits: fractionDigits }),
  ).format(n);
}

/** `42%` (of 0–100). */
export function formatPercent(locale: Locale, percent: number): string {
  return cached(`percent:${locale}`, () => new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 0 })).format(
    percent / 100,
  );
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Sizes in binary units, as download clients show them: `1.46 GiB`, `1,024 B`. */
export function formatBytes(locale: Locale, n: number): string {
  if (!Number.isFinite(n) || n < 0) return '–';
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const digits = u === 0 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
  return `${formatNumber(locale, v, digits)} ${UNITS[u]}`;
}

/** `1.46 MiB/s`. */
export function formatRate(locale: Locale, bytesPerSecond: number): string {
  return `${formatBytes(locale, Math.round(bytesPerSecond))}/s`;
}

/** A date and time of the API (RFC 3339), or the text as it came when it is none. */
export function formatDate(locale: Locale, s: string): string {
  const t = Date.parse(s);
  if (Number.isNaN(t)) return s;
  return cached(`date:${locale}`, () => new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' })).format(t);
}

/** A wait in seconds, in words: `30 seconds`, `30秒钟`. */
export function formatSeconds(locale: Locale, seconds: number): string {
  return cached(
    `seconds:${locale}`,
    () => new Intl.NumberFormat(locale, { style: 'unit', unit: 'second', unitDisplay: 'long', maximumFractionDigits: 0 }),
  ).format(seconds);
}
