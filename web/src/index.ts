// The index page: account state, the submit form, the live task list and the node list.
//
// Every string that comes from a torrent, a magnet, a node or a user reaches the DOM as a
// text node or a plain attribute (see `dom.ts`); the page never parses HTML from data.

import { api, ApiError, type GatewayNode, type Task, type TaskEvent, type TaskVideo, type User } from './api';
import { byId, h, setText } from './dom';
import { isKey, type Key } from './i18n';
import { bytes, date, errorMessage, number, onLocaleChange, percent, rate, t, tParts } from './locale';

const NODES_EVERY_MS = 5_000;
const TASKS_EVERY_MS = 10_000;
/** Polling period while the event stream is down. */
const TASKS_FALLBACK_MS = 2_000;

/** The elements of one task row, kept so that updates touch text, not structure. */
interface Row {
  task: Task;
  el: HTMLLIElement;
  name: HTMLElement;
  status: HTMLElement;
  progress: HTMLProgressElement;
  percent: HTMLElement;
  speed: HTMLElement;
  size: HTMLElement;
  node: HTMLElement;
  seeded: HTMLElement;
  disk: HTMLElement;
  episodes: HTMLDetailsElement;
  detail: HTMLElement;
  error: HTMLElement;
  actions: HTMLElement;
  play: HTMLAnchorElement | null;
}

type AccountState =
  | { kind: 'off' } // accounts disabled (or the server has no account routes)
  | { kind: 'out' } // accounts on, nobody logged in
  | { kind: 'in'; user: User };

const rows = new Map<string, Row>();
let account: AccountState = { kind: 'off' };
/** Set when a list answered 401: it is not polled again until someone logs in. */
let listsNeedLogin = false;

const el = {
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

// ---------------------------------------------------------------- account

async function refreshAccount(): Promise<void> {
  try {
    const me = await api.me();
    account = me === null ? { kind: 'out' } : me.authEnabled ? { kind: 'in', user: me.user } : { kind: 'off' };
  } catch (e) {
    // No account routes (or a broken one): behave as with accounts off, say why in the log.
    console.warn('GET /api/auth/me failed, assuming accounts are off:', errorMessage(e));
    account = { kind: 'off' };
  }
  renderAccount();
  if (account.kind !== 'out' && listsNeedLogin) {
    listsNeedLogin = false;
    void refreshTasks();
    void refreshNodes();
  }
  // The event stream follows the account: a stream refused before login (401) has given up
  // for good, and one opened for a user who logged out must not keep flowing.
  if (account.kind === 'out') {
    disconnectEvents();
  } else if (events === undefined || events.readyState === EventSource.CLOSED) {
    connectEvents();
  }
}

function renderAccount(): void {
  document.body.setAttribute('data-account', account.kind); // lets scripts wait for the answer
  const loggedOut = account.kind === 'out';
  const banned = account.kind === 'in' && account.user.is_banned;
  el.authSection.hidden = !loggedOut;
  el.submitSection.hidden = loggedOut;
  el.bannedNote.hidden = !banned;
  el.submit.disabled = banned;
  el.magnet.disabled = banned;

  if (account.kind === 'in') {
    const logout = h('button', { class: 'link', text: t('auth.logout'), attrs: { type: 'button' } });
    logout.addEventListener('click', () => void logOut());
    const user = h('strong', { text: account.user.username });
    const key = account.user.role === 'admin' ? 'auth.loggedInAsAdmin' : 'auth.loggedInAs';
    el.account.replaceChildren(...tParts(key, { user, logout }));
  } else {
    el.account.replaceChildren();
  }

  const admin = account.kind === 'in' && account.user.role === 'admin';
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
  const me = account.kind === 'in' ? account.user : null;
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

// ---------------------------------------------------------------- submit

el.submitForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  setText(el.submitError, '');
  const magnet = el.magnet.value.trim();
  if (!magnet) {
    setText(el.submitError, t('submit.empty'));
    return;
  }
  await submitWith(() => api.submit(magnet, el.node.value), () => (el.magnet.value = ''));
});

/** Runs one submit with the form's status line and error, then shows the new task. */
async function submitWith(send: () => Promise<{ data?: Task; message?: string }>, done: () => void): Promise<void> {
  setText(el.submitError, '');
  el.submit.disabled = true;
  setText(el.submitStatus, t('submit.sending'));
  try {
    const answer = await send();
    // The API's two messages (docs/api.md), in the page's language.
    setText(el.submitStatus, t(answer.message === 'Task already exists' ? 'submit.exists' : 'submit.done'));
    done();
    if (answer.data && answer.data.id) upsertTask(answer.data);
    void refreshTasks();
  } catch (err) {
    setText(el.submitStatus, '');
    setText(el.submitError, errorMessage(err));
  } finally {
    el.submit.disabled = account.kind === 'in' && account.user.is_banned;
  }
}

/** Largest .torrent file sent (the gateway's default `max_torrent_kib`). */
const MAX_TORRENT_BYTES = 4 * 1024 * 1024;

async function submitTorrent(file: File): Promise<void> {
  if (account.kind === 'out') {
    setText(el.submitError, t('submit.loginFirst'));
    return;
  }
  if (file.size > MAX_TORRENT_BYTES) {
    setText(el.submitError, t('submit.torrentTooLarge', { file: file.name, size: bytes(file.size), max: bytes(MAX_TORRENT_BYTES) }));
    return;
  }
  await submitWith(
    () => api.submitTorrent(file, el.node.value),
    () => (el.torrentFile.value = ''),
  );
}

el.torrentFile.addEventListener('change', () => {
  const file = el.torrentFile.files?.[0];
  if (file) void submitTorrent(file);
});

// A .torrent file dropped anywhere on the page is submitted.
function carriesFiles(e: DragEvent): boolean {
  return Array.from(e.dataTransfer?.types ?? []).includes('Files');
}
document.addEventListener('dragover', (e) => {
  if (!carriesFiles(e)) return;
  e.preventDefault();
  if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  document.body.classList.add('dragging');
});
document.addEventListener('dragleave', (e) => {
  if (e.relatedTarget === null) document.body.classList.remove('dragging');
});
document.addEventListener('drop', (e) => {
  document.body.classList.remove('dragging');
  if (!carriesFiles(e)) return;
  e.preventDefault();
  const file = e.dataTransfer?.files?.[0];
  if (file) void submitTorrent(file);
});

// ---------------------------------------------------------------- nodes

let nodeOptionsKey = '';

async function refreshNodes(): Promise<void> {
  if (listsNeedLogin) return;
  let nodes: GatewayNode[];
  try {
    nodes = await api.nodes();
    setText(el.nodesError, '');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) listsNeedLogin = true;
    setText(el.nodesError, t('nodes.cannotList', { error: errorMessage(e) }));
    return;
  }
  lastNodes = nodes;
  showNodes(nodes);
}

let lastNodes: GatewayNode[] = [];

function showNodes(nodes: GatewayNode[]): void {
  el.nodesEmpty.hidden = nodes.length > 0;
  el.nodes.replaceChildren(...nodes.map(nodeItem));

  // Rebuild the select only when the nodes changed, so an open drop-down isn't disturbed.
  const key = JSON.stringify(nodes.map((n) => [n.id, n.name]));
  if (key !== nodeOptionsKey) {
    nodeOptionsKey = key;
    const chosen = el.node.value;
    el.node.replaceChildren(
      h('option', { text: t('submit.leastLoaded'), attrs: { value: '', 'data-i18n': 'submit.leastLoaded' } }),
      ...nodes.map((n) => h('option', { text: n.name ? `${n.name} (${n.id})` : n.id, attrs: { value: n.id } })),
    );
    el.node.value = nodes.some((n) => n.id === chosen) ? chosen : '';
  }
}

function nodeItem(n: GatewayNode): HTMLLIElement {
  const r = n.resources ?? ({} as GatewayNode['resources']);
  const disk =
    r.disk_free_gb !== undefined && r.disk_free_gb !== null
      ? t('node.diskFree', { free: gb(r.disk_free_gb), total: gb(r.disk_space_gb) })
      : t('node.disk', { total: gb(r.disk_space_gb) });
  const used = r.disk_used_bytes ?? 0;
  const quota = r.disk_quota_bytes ?? 0;
  const tasksDisk = quota > 0 ? t('node.quota', { used: bytes(used), quota: bytes(quota) }) : t('node.tasksHold', { used: bytes(used) });
  const facts = [
    t('node.maxDownloads', { count: r.max_downloads ?? '?' }),
    t('node.maxTranscodes', { count: r.max_transcodes ?? '?' }),
    disk,
    tasksDisk,
    t('node.activeTasks', { count: n.active_tasks ?? 0 }),
  ];
  return h(
    'li',
    { class: 'node', attrs: { 'data-node-id': n.id } },
    h(
      'div',
      { class: 'node-head' },
      h('strong', { class: 'node-name', text: n.name || n.id }),
      h('code', { class: 'node-id', text: n.id }),
      h('span', { class: `status status-${cssToken(n.status)}`, text: statusText(n.status) }),
      n.kind === 'original'
        ? h('span', { class: 'tag node-original', text: t('node.original'), attrs: { title: t('node.originalTitle') } })
        : null,
    ),
    h('p', { class: 'muted', text: facts.join(' · ') }),
  );
}

/** A size the API gives in GB (10^9 bytes), as sizes show. */
function gb(v: number | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? bytes(v * 1e9) : '?';
}

/** A task's or node's status in the page's language (as it came when it is unknown). */
function statusText(status: string): string {
  const key = `status.${status}`;
  return isKey(key) ? t(key) : status;
}


// ---------------------------------------------------------------- tasks

let tasksInFlight = false;
let tasksAgain = false;

async function refreshTasks(): Promise<void> {
  if (listsNeedLogin) return;
  if (tasksInFlight) {
    tasksAgain = true;
    return;
  }
  tasksInFlight = true;
  try {
    const { tasks, nodeErrors } = await api.tasks();
    setText(el.tasksError, '');
    el.nodeErrors.replaceChildren(
      ...nodeErrors.map((n) => h('li', { text: t('tasks.nodeDidNotAnswer', { node: n.node_id, error: n.error }) })),
    );
    showTasks(tasks);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) listsNeedLogin = true;
    setText(el.tasksError, t('tasks.cannotList', { error: errorMessage(e) }));
  } finally {
    tasksInFlight = false;
    if (tasksAgain) {
      tasksAgain = false;
      void refreshTasks();
    }
  }
}

/** Shows exactly these tasks, newest first, reusing the rows that exist. */
function showTasks(tasks: Task[]): void {
  const sorted = [...tasks].sort((a, b) => time(b.created_at) - time(a.created_at));
  const seen = new Set<string>();
  sorted.forEach((t, i) => {
    seen.add(t.id);
    const row = updateRow(t);
    if (el.tasks.children[i] !== row.el) el.tasks.insertBefore(row.el, el.tasks.children[i] ?? null);
  });
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.el.remove();
      rows.delete(id);
    }
  }
  el.tasksEmpty.hidden = rows.size > 0;
}

/** Adds one task (the answer of a submit) without waiting for the next list. */
function upsertTask(t: Task): void {
  const isNew = !rows.has(t.id);
  const row = updateRow(t);
  if (isNew) el.tasks.prepend(row.el);
  el.tasksEmpty.hidden = true;
}

function updateRow(task: Task): Row {
  let row = rows.get(task.id);
  if (!row) {
    row = createRow(task);
    rows.set(task.id, row);
  } else if (row.task.status !== task.status) {
    announce(t('task.announceStatus', { name: displayName(task), status: statusText(task.status) }));
  }
  row.task = task;
  renderRow(row);
  return row;
}

function createRow(task: Task): Row {
  const name = h('span', { class: 'task-name' });
  const status = h('span', { class: 'status' });
  const progress = h('progress', { class: 'task-progress', attrs: { max: '100' } });
  const percentText = h('span', { class: 'percent', attrs: { 'aria-hidden': 'true' } });
  const speed = h('dd');
  const size = h('dd');
  const node = h('dd');
  const seeded = h('dd');
  const disk = h('dd');
  const detail = h('p', { class: 'detail muted' });
  const episodes = h('details', { class: 'episodes' }) as HTMLDetailsElement;
  episodes.hidden = true;
  const error = h('p', { class: 'task-error error' });
  const button = (cls: string) => h('button', { class: cls, attrs: { type: 'button' } });
  const del = button('danger delete');
  const pause = button('pause');
  const retry = button('retry');
  const stop = button('stop-seeding');
  const pin = button('pin');
  const actions = h('div', { class: 'actions' }, pause, retry, stop, pin, del);
  const term = (key: Key) => h('dt', { attrs: { 'data-i18n': key }, text: t(key) });
  const li = h(
    'li',
    { class: 'task', attrs: { 'data-task-id': task.id } },
    h('div', { class: 'task-head' }, name, status),
    h('div', { class: 'task-bar' }, progress, percentText),
    h(
      'dl',
      { class: 'task-meta' },
      h('div', {}, term('task.speed'), speed),
      h('div', {}, term('task.size'), size),
      h('div', {}, term('task.node'), node),
      h('div', {}, term('task.seeded'), seeded),
      h('div', {}, term('task.disk'), disk),
    ),
    detail,
    error,
    episodes,
    actions,
  );
  const row: Row = { task, el: li, name, status, progress, percent: percentText, speed, size, node, seeded, disk, episodes, detail, error, actions, play: null };
  del.addEventListener('click', () => void deleteTask(row));
  pause.addEventListener('click', () => void togglePause(row));
  retry.addEventListener('click', () => void retryTask(row));
  stop.addEventListener('click', () => void stopSeeding(row));
  pin.addEventListener('click', () => void togglePin(row));
  return row;
}

/** One action on a task: the API call, the row updated from its answer, an announcement, or
 * the error in the page's language. */
async function act(row: Row, call: (id: string) => Promise<{ data?: Task }>, done: Key, failed: Key): Promise<void> {
  const name = displayName(row.task);
  try {
    const answer = await call(row.task.id);
    if (answer.data) upsertTask(answer.data);
    announce(t(done, { name }));
  } catch (e) {
    setText(el.tasksError, t(failed, { name, error: errorMessage(e) }));
  }
}

/** Pinned tasks are never evicted to make room under the node's disk quota. */
function togglePin(row: Row): Promise<void> {
  const pinned = row.task.pinned === true;
  return act(row, (id) => api.pinTask(id, !pinned), pinned ? 'task.announceUnpinned' : 'task.announcePinned', pinned ? 'task.cannotUnpin' : 'task.cannotPin');
}

/** Stop and keep: the completed task stops seeding; its files and video stay. */
function stopSeeding(row: Row): Promise<void> {
  return act(row, api.stopSeeding, 'task.announceSeedingStopped', 'task.cannotStopSeeding');
}

function retryTask(row: Row): Promise<void> {
  return act(row, api.retryTask, 'task.announceRetrying', 'task.cannotRetry');
}

function togglePause(row: Row): Promise<void> {
  return row.task.paused
    ? act(row, api.resumeTask, 'task.announceResumed', 'task.cannotResume')
    : act(row, api.pauseTask, 'task.announcePaused', 'task.cannotPause');
}

/** A button of the row's actions: its text, its label naming the task, whether it shows. */
function showAction(row: Row, selector: string, shown: boolean, text: Key, label: Key): HTMLButtonElement | null {
  const b = row.actions.querySelector<HTMLButtonElement>(selector);
  if (!b) return null;
  b.hidden = !shown;
  setText(b, t(text));
  b.setAttribute('aria-label', t(label, { name: displayName(row.task) }));
  return b;
}

function renderRow(row: Row): void {
  const task = row.task;
  const name = displayName(task);
  setText(row.name, name);
  row.name.setAttribute('data-source', task.torrent_name ? 'torrent' : 'magnet');
  row.name.setAttribute('title', name);
  row.el.setAttribute('data-status', task.status);
  setText(row.status, statusText(task.paused ? 'paused' : task.status));
  row.status.className = `status status-${cssToken(task.paused ? 'paused' : task.status)}`;

  // Both phases: the download's percentage, then the transcode's. (The API keeps `progress`
  // at 100 once the download is done, as the original's page expects.)
  const transcoding = task.status === 'transcoding';
  const progress = clampPercent(transcoding ? task.transcode_progress : task.progress);
  const shown = transcoding ? t('task.converting', { percent: percent(progress) }) : percent(progress);
  row.progress.value = progress;
  row.progress.setAttribute('aria-label', t(transcoding ? 'task.transcodeProgressOf' : 'task.downloadProgressOf', { name }));
  row.progress.setAttribute('aria-valuetext', shown);
  setText(row.percent, shown);
  setText(row.speed, task.speed > 0 ? rate(task.speed) : '–');
  setText(row.size, task.size > 0 ? t('task.sizeOf', { downloaded: bytes(task.downloaded ?? 0), size: bytes(task.size) }) : '–');
  setText(row.node, task.worker_id || '–');
  const uploaded = task.uploaded ?? 0;
  setText(
    row.seeded,
    uploaded > 0 || task.seeding ? t('task.seededRatio', { uploaded: bytes(uploaded), ratio: number(task.ratio ?? 0, 2) }) : '–',
  );
  const diskBytes = task.disk_bytes ?? 0;
  setText(row.disk, diskBytes > 0 ? (task.payload_evicted ? t('task.diskVideoOnly', { size: bytes(diskBytes) }) : bytes(diskBytes)) : '–');
  row.seeded.title = task.seeding_stopped ? t('task.notSeeding', { why: task.seeding_stopped }) : task.seeding ? t('task.seeding') : '';
  setText(row.detail, task.detail ?? '');
  row.detail.hidden = !task.detail;
  setText(row.error, task.error ?? '');
  row.error.hidden = !task.error;

  // Only its submitter and admins may delete a task, or pause one that still downloads.
  const mine = task.mine !== false;
  const ours = task.worker_kind !== 'original';
  const downloading = task.status === 'pending' || task.status === 'downloading';
  showAction(row, 'button.delete', mine, 'task.delete', 'task.deleteName');
  showAction(row, 'button.retry', mine && ours && task.status === 'error', 'task.retry', 'task.retryName');
  showAction(row, 'button.pause', mine && ours && downloading, task.paused ? 'task.resume' : 'task.pause', task.paused ? 'task.resumeName' : 'task.pauseName');
  showAction(row, 'button.stop-seeding', mine && ours && task.seeding === true, 'task.stopSeeding', 'task.stopSeedingName');
  const pin = showAction(row, 'button.pin', mine && ours, task.pinned ? 'task.unpin' : 'task.pin', task.pinned ? 'task.unpinName' : 'task.pinName');
  pin?.setAttribute('aria-pressed', task.pinned ? 'true' : 'false');

  renderEpisodes(row);

  // Ready, or playable while it downloads (progressive playback).
  const ready = task.status === 'ready' || task.playable === true;
  if (ready && !row.play) {
    row.play = h('a', { class: 'play button' });
    row.actions.prepend(row.play);
  } else if (!ready && row.play) {
    row.play.remove();
    row.play = null;
  }
  if (row.play) {
    setText(row.play, t('task.play'));
    row.play.setAttribute('href', `/player?taskId=${encodeURIComponent(task.id)}`);
    row.play.setAttribute('aria-label', t('task.playName', { name }));
  }
}

/** What a video of a torrent of several is doing, in a few words. */
function videoState(v: TaskVideo): string {
  switch (v.state) {
    case 'ready':
      return t('video.ready');
    case 'playable':
      return t('video.playable');
    case 'transcoding':
      return t('video.converting', { percent: percent(clampPercent(v.transcode_progress)) });
    case 'queued':
      return t('video.queued');
    case 'error':
      return t('video.error', { error: v.error });
    default: {
      if (v.size > 0 && v.downloaded >= v.size) return t('video.downloaded');
      if (v.current && v.size > 0) return t('video.downloading', { percent: percent(clampPercent((v.downloaded / v.size) * 100)) });
      return '';
    }
  }
}

/** A season pack's episodes (a torrent of several videos): each plays in the player, which
 * makes it the one fetched. The list is rebuilt only when something in it changed. */
function renderEpisodes(row: Row, force = false): void {
  const videos = [...(row.task.videos ?? [])].sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
  row.episodes.hidden = videos.length < 2;
  if (videos.length < 2) return;
  const key = JSON.stringify(videos.map((v) => [v.index, v.current, v.state, v.downloaded, v.transcode_progress]));
  if (row.episodes.dataset.key === key && !force) return;
  row.episodes.dataset.key = key;
  const items = videos.map((v) => {
    const name = v.path.split('/').pop() ?? v.path;
    const play = h('a', {
      class: 'play-episode',
      text: t('task.play'),
      attrs: { href: `/player?taskId=${encodeURIComponent(row.task.id)}&file=${v.index}`, 'aria-label': t('task.playName', { name }) },
    });
    const li = h(
      'li',
      { class: v.current ? 'episode current' : 'episode', attrs: { 'data-file': String(v.index) } },
      h('span', { class: 'episode-name', text: name }),
      h('span', { class: 'muted', text: ` ${bytes(v.size)} ` }),
      h('span', { class: 'episode-state', text: videoState(v) }),
      ' ',
      play,
    );
    if (v.current) li.setAttribute('aria-current', 'true');
    return li;
  });
  row.episodes.replaceChildren(h('summary', { text: t('task.episodes', { count: videos.length }) }), h('ol', {}, ...items));
}

async function deleteTask(row: Row): Promise<void> {
  const task = row.task;
  const name = displayName(task);
  if (!confirm(t('task.confirmDelete', { name }))) return;
  try {
    await api.deleteTask(task.id);
    row.el.remove();
    rows.delete(task.id);
    el.tasksEmpty.hidden = rows.size > 0;
    announce(t('task.announceDeleted', { name }));
  } catch (e) {
    setText(el.tasksError, t('task.cannotDelete', { name, error: errorMessage(e) }));
  }
  void refreshTasks();
}

function displayName(task: Task): string {
  return task.torrent_name || task.magnet_url || task.id;
}

function clampPercent(p: unknown): number {
  const n = typeof p === 'number' && Number.isFinite(p) ? p : 0;
  return Math.max(0, Math.min(100, Math.round(n)));
}

// ---------------------------------------------------------------- live updates

let fallbackTimer: number | undefined;

function startFallbackPolling(): void {
  if (fallbackTimer === undefined) fallbackTimer = window.setInterval(() => void refreshTasks(), TASKS_FALLBACK_MS);
}

function stopFallbackPolling(): void {
  window.clearInterval(fallbackTimer);
  fallbackTimer = undefined;
}

let events: EventSource | undefined;

function disconnectEvents(): void {
  events?.close();
  events = undefined;
  stopFallbackPolling();
}

function connectEvents(): void {
  if (typeof EventSource === 'undefined') {
    startFallbackPolling();
    return;
  }
  events?.close();
  events = new EventSource('/api/events');
  events.addEventListener('open', () => {
    stopFallbackPolling();
    void refreshTasks(); // catch up on what happened while the stream was down
  });
  // The browser reconnects by itself after a network error; until then, poll.
  events.addEventListener('error', () => {
    if (account.kind !== 'out') startFallbackPolling();
  });
  events.addEventListener('task', (e) => {
    let update: TaskEvent;
    try {
      update = JSON.parse((e as MessageEvent<string>).data) as TaskEvent;
    } catch {
      return;
    }
    if (update && typeof update.id === 'string') applyEvent(update);
  });
}

function applyEvent(update: TaskEvent): void {
  const row = rows.get(update.id);
  if (!row) {
    void refreshTasks();
    return;
  }
  const merged: Task = { ...row.task };
  for (const [k, v] of Object.entries(update)) {
    if (v === undefined || v === null) continue;
    if (k === 'torrent_name' && v === '') continue; // never forget a name once known
    (merged as unknown as Record<string, unknown>)[k] = v;
  }
  const statusChanged = merged.status !== row.task.status;
  updateRow(merged);
  if (statusChanged) void refreshTasks();
}

// ---------------------------------------------------------------- helpers

function announce(text: string): void {
  setText(el.announce, text);
}

function time(s: string | undefined): number {
  const t = s ? Date.parse(s) : NaN;
  return Number.isNaN(t) ? 0 : t;
}


/** A status as a CSS class suffix: only `[a-z0-9-]`. */
function cssToken(s: string | undefined): string {
  return (s ?? '').toLowerCase().replace(/[^a-z0-9-]/g, '-') || 'unknown';
}

// ---------------------------------------------------------------- start

// Another language: everything rendered from data is rendered again (the static texts are
// `locale.ts`'s); messages of earlier actions are cleared rather than left in the other one.
onLocaleChange(() => {
  for (const p of [el.submitStatus, el.submitError, el.authError, el.addUserStatus, el.announce]) setText(p, '');
  renderAccount();
  for (const row of rows.values()) {
    renderRow(row);
    renderEpisodes(row, true);
  }
  nodeOptionsKey = '';
  showNodes(lastNodes);
});

void refreshAccount(); // also opens the event stream once it is known who may read it
void refreshNodes();
void refreshTasks();
window.setInterval(() => void refreshNodes(), NODES_EVERY_MS);
window.setInterval(() => void refreshTasks(), TASKS_EVERY_MS);
