// The page's language: chosen from the browser's languages, switched with the header's
// `#lang` select and remembered (localStorage). Static texts of the HTML name their message
// (`data-i18n="key"`, `data-i18n-<attribute>="key"`); the pages render the rest with `t()`
// and re-render on `onLocaleChange`.

import { ApiError } from './api';
import { errorText } from './dom';
import * as i18n from './i18n';
import { LOCALES, type Key, type Locale, type Params } from './i18n';

const STORAGE_KEY = 'magnetm3u8.locale';

function stored(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the browser's languages decide
  }
}

let current: Locale = i18n.pickLocale(stored(), navigator.languages?.length ? navigator.languages : [navigator.language]);
const listeners: (() => void)[] = [];

export function locale(): Locale {
  return current;
}

export function t(key: Key, params?: Params): string {
  return i18n.translate(current, key, params);
}

/** A message whose placeholders may be elements, for `el.replaceChildren(...)`. */
export function tParts(key: Key, params: Readonly<Record<string, string | number | Node>>): (string | Node)[] {
  return i18n.translateParts<Node>(current, key, params);
}

export const bytes = (n: number) => i18n.formatBytes(current, n);
export const rate = (n: number) => i18n.formatRate(current, n);
export const percent = (n: number) => i18n.formatPercent(current, n);
export const number = (n: number, fractionDigits = 0) => i18n.formatNumber(current, n, fractionDigits);
export const date = (s: string) => i18n.formatDate(current, s);

/** A task's or node's status in the page's language (as it came when it is unknown). */
export function statusText(status: string): string {
  const key = `status.${status}`;
  return i18n.isKey(key) ? t(key) : status;
}

/** Calls `fn` after each switch of language (to render what `t()` made). */
export function onLocaleChange(fn: () => void): void {
  listeners.push(fn);
}

export function setLocale(l: Locale): void {
  current = l;
  try {
    localStorage.setItem(STORAGE_KEY, l);
  } catch {
    // not remembered; the switch still holds for this page
  }
  applyStatic();
  for (const fn of listeners) fn();
}

/** What went wrong, for the user: the message of the API's error `code` in their language
 * (the server's own text is English: in English, it is shown as it came, being the more
 * precise). */
export function errorMessage(e: unknown): string {
  if (!(e instanceof ApiError)) return errorText(e);
  if (e.status === 0) return t('error.network', { detail: e.message });
  if (current === 'en' && e.message) return e.message;
  const key = `error.${e.code ?? ''}`;
  if (e.code && i18n.isKey(key)) {
    return t(key, { detail: e.message, wait: i18n.formatSeconds(current, e.retryAfter ?? 1) });
  }
  return e.message || t('error.http', { detail: String(e.status) });
}

/** Sets every static text of the page from the catalog, `<html lang>` and the title. */
function applyStatic(): void {
  document.documentElement.lang = current;
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n]')) {
    const key = el.dataset.i18n ?? '';
    if (i18n.isKey(key)) el.textContent = t(key);
  }
  for (const attr of ['placeholder', 'aria-label', 'title']) {
    for (const el of document.querySelectorAll<HTMLElement>(`[data-i18n-${attr}]`)) {
      const key = el.getAttribute(`data-i18n-${attr}`) ?? '';
      if (i18n.isKey(key)) el.setAttribute(attr, t(key));
    }
  }
  const select = document.getElementById('lang') as HTMLSelectElement | null;
  if (select) select.value = current;
}

/** The header's language select: filled, set, and switching on change. */
function wireSwitch(): void {
  const select = document.getElementById('lang') as HTMLSelectElement | null;
  if (!select) return;
  select.replaceChildren(
    ...LOCALES.map((l) => {
      const o = document.createElement('option');
      o.value = l.id;
      o.textContent = l.name;
      o.lang = l.id;
      return o;
    }),
  );
  select.value = current;
  select.addEventListener('change', () => {
    const chosen = LOCALES.find((l) => l.id === select.value);
    if (chosen) setLocale(chosen.id);
  });
}

wireSwitch();
applyStatic();
