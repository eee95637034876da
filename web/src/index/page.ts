// The index page's elements and the state its parts share: who is logged in, and whether the
// lists wait for a login; and the small helpers every part uses.

import type { User } from '../api';
import { byId, setText } from '../dom';

export type AccountState =
  | { kind: 'off' } // accounts disabled (or the server has no account routes)
  | { kind: 'out' } // accounts on, nobody logged in
  | { kind: 'in'; user: User };

export const state: {
  account: AccountState;
  /** Set when a list answered 401: it is not polled again until someone logs in. */
  listsNeedLogin: boolean;
} = { account: { kind: 'off' }, listsNeedLogin: false };

export const el = {
  account: byId('account'),
  announce: byId('announce'),
  authSection: byId('auth-section'),
  authForm: byId<HTMLFormElement>('auth-form'),
  username: byId<HTMLInputElement>('login-username'),
  password: byId<HTMLInputElement>('login-password'),
  register: byId<HTMLButtonElement>('register'),
  authError: byId('auth-error'),
  submitSection: byId('submit-section'),
  submitForm: byId<HTMLFormElement>('submit-form'),
  magnet: byId<HTMLTextAreaElement>('magnet'),
  torrentFile: byId<HTMLInputElement>('torrent-file'),
  node: byId<HTMLSelectElement>('node'),
  submit: byId<HTMLButtonElement>('submit'),
  bannedNote: byId('banned-note'),
  submitStatus: byId('submit-status'),
  submitError: byId('submit-error'),
  tasks: byId<HTMLUListElement>('tasks'),
  tasksEmpty: byId('tasks-empty'),
  tasksError: byId('tasks-error'),
  nodes: byId<HTMLUListElement>('nodes'),
  nodesEmpty: byId('nodes-empty'),
  nodesError: byId('nodes-error'),
  adminSection: byId('admin-section'),
  adminError: byId('admin-error'),
  users: byId<HTMLTableSectionElement>('users'),
  nodeErrors: byId<HTMLUListElement>('node-errors'),
  addUserForm: byId<HTMLFormElement>('add-user-form'),
  addUsername: byId<HTMLInputElement>('add-username'),
  addPassword: byId<HTMLInputElement>('add-password'),
  addAdmin: byId<HTMLInputElement>('add-admin'),
  addUserStatus: byId('add-user-status'),
};

/** Says `text` in the page's live region (screen readers read it). */
export function announce(text: string): void {
  setText(el.announce, text);
}

/** A status as a CSS class suffix: only `[a-z0-9-]`. */
export function cssToken(s: string | undefined): string {
  return (s ?? '').toLowerCase().replace(/[^a-z0-9-]/g, '-') || 'unknown';
}
