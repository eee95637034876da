// The index page's account: who is logged in (and the form to log in or register), and for
// admins the users table with its ban buttons and the form that adds a user.

import { api, type User } from '../api';
import { h, setText } from '../dom';
import { date, errorMessage, t, tParts } from '../locale';
import { connectEvents, disconnectEvents, eventsClosed } from './events';
import { refreshNodes } from './nodes';
import { el, state } from './page';
import { refreshTasks } from './tasks';

export async function refreshAccount(): Promise<void> {
  try {
    const me = await api.me();
    state.account = me === null ? { kind: 'out' } : me.authEnabled ? { kind: 'in', user: me.user } : { kind: 'off' };
  } catch (e) {
    // No account routes (or a broken one): behave as with accounts off, say why in the log.
    console.warn('GET /api/auth/me failed, assuming accounts are off:', errorMessage(e));
    state.account = { kind: 'off' };
  }
  renderAccount();
  if (state.account.kind !== 'out' && state.listsNeedLogin) {
    state.listsNeedLogin = false;
    void refreshTasks();
    void refreshNodes();
  }
  // The event stream follows the account: a stream refused before login (401) has given up
  // for good, and one opened for a user who logged out must not keep flowing.
  if (state.account.kind === 'out') {
    disconnectEvents();
  } else if (eventsClosed()) {
    connectEvents();
  }
}

export function renderAccount(): void {
  document.body.setAttribute('data-account', state.account.kind); // lets scripts wait for the answer
  const loggedOut = state.account.kind === 'out';
  const banned = state.account.kind === 'in' && state.account.user.is_banned;
  el.authSection.hidden = !loggedOut;
  el.submitSection.hidden = loggedOut;
  el.bannedNote.hidden = !banned;
  el.submit.disabled = banned;
  el.magnet.disabled = banned;

  if (state.account.kind === 'in') {
    const logout = h('button', { class: 'link', text: t('auth.logout'), attrs: { type: 'button' } });
    logout.addEventListener('click', () => void logOut());
    const user = h('strong', { text: state.account.user.username });
    const key = state.account.user.role === 'admin' ? 'auth.loggedInAsAdmin' : 'auth.loggedInAs';
    el.account.replaceChildren(...tParts(key, { user, logout }));
  } else {
    el.account.replaceChildren();
  }

  const admin = state.account.kind === 'in' && state.account.user.role === 'admin';
  el.adminSection.hidden = !admin;
  if (admin) void refreshUsers();
}

async function logOut(): Promise<void> {
  try {
    await api.logout();
  } catch (e) {
    setText(el.authError, errorMessage(e));
  }
  await refreshAccount();
}

async function authenticate(register: boolean): Promise<void> {
  setText(el.authError, '');
  if (!el.authForm.reportValidity()) return;
  const username = el.username.value.trim();
  const password = el.password.value;
  try {
    if (register) await api.register(username, password);
    await api.login(username, password);
    el.password.value = '';
    await refreshAccount();
  } catch (e) {
    setText(el.authError, errorMessage(e));
  }
}

el.authForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void authenticate(false);
});
el.register.addEventListener('click', () => void authenticate(true));

async function refreshUsers(): Promise<void> {
  let users: User[];
  try {
    users = await api.users();
    setText(el.adminError, '');
  } catch (e) {
    setText(el.adminError, t('users.cannotList', { error: errorMessage(e) }));
    return;
  }
  const me = state.account.kind === 'in' ? state.account.user : null;
  el.users.replaceChildren(
    ...users.map((u) => {
      const toggle = h('button', {
        class: u.is_banned ? 'secondary' : 'danger',
        text: t(u.is_banned ? 'users.unban' : 'users.ban'),
        attrs: { type: 'button', 'aria-label': t(u.is_banned ? 'users.unbanName' : 'users.banName', { user: u.username }) },
      });
      toggle.disabled = me !== null && String(me.id) === String(u.id);
      toggle.addEventListener('click', async () => {
        toggle.disabled = true;
        try {
          await api.setBanned(u.id, !u.is_banned);
        } catch (e) {
          setText(el.adminError, errorMessage(e));
        }
        await refreshUsers();
      });
      return h(
        'tr',
        {},
        h('td', { text: u.username }),
        h('td', { text: t(u.role === 'admin' ? 'users.roleAdmin' : 'users.roleUser') }),
        h('td', { class: 'col-created', text: date(u.created_at) }),
        h('td', { text: t(u.is_banned ? 'users.banned' : 'users.active') }),
        h('td', {}, toggle),
      );
    }),
  );
}

el.addUserForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  setText(el.addUserStatus, '');
  setText(el.adminError, '');
  try {
    const r = await api.addUser(el.addUsername.value, el.addPassword.value, el.addAdmin.checked);
    setText(el.addUserStatus, t('users.added', { user: r.data.username }));
    el.addUserForm.reset();
  } catch (err) {
    setText(el.adminError, errorMessage(err));
  }
  await refreshUsers();
});
