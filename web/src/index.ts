// The index page: account state, the submit form, the live task list and the node list.
//
// Every string that comes from a torrent, a magnet, a node or a user reaches the DOM as a
// text node or a plain attribute (see `dom.ts`); the page never parses HTML from data.

import { api, ApiError, type GatewayNode, type Task, type TaskEvent, type TaskVideo, type User } from './api';
import { byId, errorText, h, setText } from './dom';
import { humanBytes, humanRate } from './format';

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
    console.warn('GET /api/auth/me failed, assuming accounts are off:', errorText(e));
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
    const logout = h('button', { class: 'link', text: 'log out', attrs: { type: 'button' } });
    logout.addEventListener('click', () => void logOut());
    const who = h('strong', { text: account.user.username });
    el.account.replaceChildren(
      'Logged in as ',
      who,
      account.user.role === 'admin' ? ' (admin)' : '',
      ' (',
      logout,
      ')',
    );
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
    setText(el.authError, errorText(e));
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
    setText(el.authError, errorText(e));
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
    setText(el.adminError, `Users: ${errorText(e)}`);
    return;
  }
  const me = account.kind === 'in' ? account.user : null;
  el.users.replaceChildren(
    ...users.map((u) => {
      const toggle = h('button', {
        class: u.is_banned ? 'secondary' : 'danger',
        text: u.is_banned ? 'Unban' : 'Ban',
        attrs: { type: 'button', 'aria-label': `${u.is_banned ? 'Unban' : 'Ban'} ${u.username}` },
      });
      toggle.disabled = me !== null && String(me.id) === String(u.id);
      toggle.addEventListener('click', async () => {
        toggle.disabled = true;
        try {
          await api.setBanned(u.id, !u.is_banned);
        } catch (e) {
          setText(el.adminError, errorText(e));
        }
        await refreshUsers();
      });
      return h(
        'tr',
        {},
        h('td', { text: u.username }),
        h('td', { text: u.role }),
        h('td', { class: 'col-created', text: formatDate(u.created_at) }),
        h('td', { text: u.is_banned ? 'banned' : 'active' }),
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
    setText(el.addUserStatus, `Added ${r.data.username}.`);
    el.addUserForm.reset();
  } catch (err) {
    setText(el.adminError, errorText(err));
  }
  await refreshUsers();
});

// ---------------------------------------------------------------- submit

el.submitForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  setText(el.submitError, '');
  const magnet = el.magnet.value.trim();
  if (!magnet) {
    setText(el.submitError, 'Paste a magnet link first, or choose a .torrent file.');
    return;
  }
  await submitWith(() => api.submit(magnet, el.node.value), () => (el.magnet.value = ''));
});

/** Runs one submit with the form's status line and error, then shows the new task. */
async function submitWith(send: () => Promise<{ data?: Task; message?: string }>, done: () => void): Promise<void> {
  setText(el.submitError, '');
  el.submit.disabled = true;
  setText(el.submitStatus, 'Submitting…');
  try {
    const answer = await send();
    setText(el.submitStatus, answer.message ?? 'Task submitted');
    done();
    if (answer.data && answer.data.id) upsertTask(answer.data);
    void refreshTasks();
  } catch (err) {
    setText(el.submitStatus, '');
    setText(el.submitError, errorText(err));
  } finally {
    el.submit.disabled = account.kind === 'in' && account.user.is_banned;
  }
}

/** Largest .torrent file sent (the gateway's default `max_torrent_kib`). */
const MAX_TORRENT_BYTES = 4 * 1024 * 1024;

async function submitTorrent(file: File): Promise<void> {
  if (account.kind === 'out') {
    setText(el.submitError, 'Log in to submit tasks.');
    return;
  }
  if (file.size > MAX_TORRENT_BYTES) {
    setText(el.submitError, `${file.name} is ${humanBytes(file.size)}; a .torrent file is at most ${humanBytes(MAX_TORRENT_BYTES)}.`);
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
    setText(el.nodesError, `Nodes: ${errorText(e)}`);
    return;
  }
  el.nodesEmpty.hidden = nodes.length > 0;
  el.nodes.replaceChildren(...nodes.map(nodeItem));

  // Rebuild the select only when the nodes changed, so an open drop-down isn't disturbed.
  const key = JSON.stringify(nodes.map((n) => [n.id, n.name]));
  if (key !== nodeOptionsKey) {
    nodeOptionsKey = key;
    const chosen = el.node.value;
    el.node.replaceChildren(
      h('option', { text: 'least loaded', attrs: { value: '' } }),
      ...nodes.map((n) => h('option', { text: n.name ? `${n.name} (${n.id})` : n.id, attrs: { value: n.id } })),
    );
    el.node.value = nodes.some((n) => n.id === chosen) ? chosen : '';
  }
}

function nodeItem(n: GatewayNode): HTMLLIElement {
  const r = n.resources ?? ({} as GatewayNode['resources']);
  const disk =
    r.disk_free_gb !== undefined && r.disk_free_gb !== null
      ? `${fmtGb(r.disk_free_gb)} free of ${fmtGb(r.disk_space_gb)} GB`
      : `${fmtGb(r.disk_space_gb)} GB disk`;
  const used = r.disk_used_bytes ?? 0;
  const quota = r.disk_quota_bytes ?? 0;
  const tasksDisk = quota > 0 ? `${humanBytes(used)} used of ${humanBytes(quota)} quota` : `tasks hold ${humanBytes(used)}`;
  const facts = [
    `downloads ≤ ${r.max_downloads ?? '?'}`,
    `transcodes ≤ ${r.max_transcodes ?? '?'}`,
    disk,
    tasksDisk,
    `active tasks: ${n.active_tasks ?? 0}`,
  ];
  return h(
    'li',
    { class: 'node', attrs: { 'data-node-id': n.id } },
    h(
      'div',
      { class: 'node-head' },
      h('strong', { class: 'node-name', text: n.name || n.id }),
      h('code', { class: 'node-id', text: n.id }),
      h('span', { class: `status status-${cssToken(n.status)}`, text: n.status }),
      n.kind === 'original'
        ? h('span', { class: 'tag node-original', text: 'original worker', attrs: { title: 'The original Go worker: plays over P2P only' } })
        : null,
    ),
    h('p', { class: 'muted', text: facts.join(' · ') }),
  );
}

function fmtGb(v: number | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? (Math.round(v * 10) / 10).toString() : '?';
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
      ...nodeErrors.map((n) => h('li', { text: `${n.node_id} did not answer: ${n.error}` })),
    );
    showTasks(tasks);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) listsNeedLogin = true;
    setText(el.tasksError, `Tasks: ${errorText(e)}`);
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

function updateRow(t: Task): Row {
  let row = rows.get(t.id);
  if (!row) {
    row = createRow(t);
    rows.set(t.id, row);
  } else if (row.task.status !== t.status) {
    announce(`${displayName(t)}: ${t.status}`);
  }
  row.task = t;
  renderRow(row);
  return row;
}

function createRow(t: Task): Row {
  const name = h('span', { class: 'task-name' });
  const status = h('span', { class: 'status' });
  const progress = h('progress', { class: 'task-progress', attrs: { max: '100' } });
  const percent = h('span', { class: 'percent' });
  const speed = h('dd');
  const size = h('dd');
  const node = h('dd');
  const seeded = h('dd');
  const disk = h('dd');
  const detail = h('p', { class: 'detail muted' });
  const episodes = h('details', { class: 'episodes' }) as HTMLDetailsElement;
  episodes.hidden = true;
  const error = h('p', { class: 'task-error error' });
  const del = h('button', { class: 'danger delete', text: 'Delete', attrs: { type: 'button' } });
  const pause = h('button', { class: 'pause', text: 'Pause', attrs: { type: 'button' } });
  const retry = h('button', { class: 'retry', text: 'Retry', attrs: { type: 'button' } });
  const stop = h('button', { class: 'stop-seeding', text: 'Stop seeding', attrs: { type: 'button' } });
  const pin = h('button', { class: 'pin', text: 'Pin', attrs: { type: 'button' } });
  const actions = h('div', { class: 'actions' }, pause, retry, stop, pin, del);
  const li = h(
    'li',
    { class: 'task', attrs: { 'data-task-id': t.id } },
    h('div', { class: 'task-head' }, name, status),
    h('div', { class: 'task-bar' }, progress, percent),
    h(
      'dl',
      { class: 'task-meta' },
      h('div', {}, h('dt', { text: 'Speed' }), speed),
      h('div', {}, h('dt', { text: 'Size' }), size),
      h('div', {}, h('dt', { text: 'Node' }), node),
      h('div', {}, h('dt', { text: 'Seeded' }), seeded),
      h('div', {}, h('dt', { text: 'Disk' }), disk),
    ),
    detail,
    error,
    episodes,
    actions,
  );
  const row: Row = { task: t, el: li, name, status, progress, percent, speed, size, node, seeded, disk, episodes, detail, error, actions, play: null };
  del.addEventListener('click', () => void deleteTask(row));
  pause.addEventListener('click', () => void togglePause(row));
  retry.addEventListener('click', () => void retryTask(row));
  stop.addEventListener('click', () => void stopSeeding(row));
  pin.addEventListener('click', () => void togglePin(row));
  return row;
}

/** Pinned tasks are never evicted to make room under the node's disk quota. */
async function togglePin(row: Row): Promise<void> {
  const t = row.task;
  try {
    const answer = await api.pinTask(t.id, !t.pinned);
    if (answer.data) upsertTask(answer.data);
    announce(`${displayName(t)} ${t.pinned ? 'unpinned' : 'pinned'}`);
  } catch (e) {
    setText(el.tasksError, `${t.pinned ? 'Unpin' : 'Pin'}: ${errorText(e)}`);
  }
}

/** Stop and keep: the completed task stops seeding; its files and video stay. */
async function stopSeeding(row: Row): Promise<void> {
  const t = row.task;
  try {
    const answer = await api.stopSeeding(t.id);
    if (answer.data) upsertTask(answer.data);
    announce(`${displayName(t)}: seeding stopped`);
  } catch (e) {
    setText(el.tasksError, `Stop seeding: ${errorText(e)}`);
  }
}

async function retryTask(row: Row): Promise<void> {
  const t = row.task;
  try {
    const answer = await api.retryTask(t.id);
    if (answer.data) upsertTask(answer.data);
    announce(`${displayName(t)}: retrying`);
  } catch (e) {
    setText(el.tasksError, `Retry: ${errorText(e)}`);
  }
}

async function togglePause(row: Row): Promise<void> {
  const t = row.task;
  try {
    const answer = await (t.paused ? api.resumeTask(t.id) : api.pauseTask(t.id));
    if (answer.data) upsertTask(answer.data);
    announce(`${displayName(t)} ${t.paused ? 'resumed' : 'paused'}`);
  } catch (e) {
    setText(el.tasksError, `${t.paused ? 'Resume' : 'Pause'}: ${errorText(e)}`);
  }
}

function renderRow(row: Row): void {
  const t = row.task;
  const name = displayName(t);
  setText(row.name, name);
  row.name.setAttribute('data-source', t.torrent_name ? 'torrent' : 'magnet');
  row.name.setAttribute('title', name);
  row.el.setAttribute('data-status', t.status);
  setText(row.status, t.paused ? 'paused' : t.status);
  row.status.className = `status status-${cssToken(t.paused ? 'paused' : t.status)}`;

  // Both phases: the download's percentage, then the transcode's. (The API keeps `progress`
  // at 100 once the download is done, as the original's page expects.)
  const transcoding = t.status === 'transcoding';
  const progress = clampPercent(transcoding ? t.transcode_progress : t.progress);
  row.progress.value = progress;
  row.progress.setAttribute('aria-label', `${transcoding ? 'Transcode' : 'Download'} progress of ${name}`);
  setText(row.percent, transcoding ? `converting ${progress}%` : `${progress}%`);
  setText(row.speed, t.speed > 0 ? humanRate(t.speed) : '–');
  setText(row.size, t.size > 0 ? `${humanBytes(t.downloaded ?? 0)} / ${humanBytes(t.size)}` : '–');
  setText(row.node, t.worker_id || '–');
  const uploaded = t.uploaded ?? 0;
  setText(row.seeded, uploaded > 0 || t.seeding ? `${humanBytes(uploaded)} · ratio ${(t.ratio ?? 0).toFixed(2)}` : '–');
  const diskBytes = t.disk_bytes ?? 0;
  setText(row.disk, diskBytes > 0 ? humanBytes(diskBytes) + (t.payload_evicted ? ' (video only)' : '') : '–');
  row.seeded.title = t.seeding_stopped ? `not seeding: ${t.seeding_stopped}` : t.seeding ? 'seeding' : '';
  setText(row.detail, t.detail ?? '');
  row.detail.hidden = !t.detail;
  setText(row.error, t.error ?? '');
  row.error.hidden = !t.error;

  // Only its submitter and admins may delete a task, or pause one that still downloads.
  const del = row.actions.querySelector<HTMLButtonElement>('button.delete');
  if (del) del.hidden = t.mine === false;
  const retry = row.actions.querySelector<HTMLButtonElement>('button.retry');
  if (retry) {
    retry.hidden = t.mine === false || t.status !== 'error' || t.worker_kind === 'original';
    retry.setAttribute('aria-label', `Retry ${name}`);
  }
  const pause = row.actions.querySelector<HTMLButtonElement>('button.pause');
  if (pause) {
    const downloading = t.status === 'pending' || t.status === 'downloading';
    pause.hidden = t.mine === false || !downloading || t.worker_kind === 'original';
    setText(pause, t.paused ? 'Resume' : 'Pause');
    pause.setAttribute('aria-label', `${t.paused ? 'Resume' : 'Pause'} ${name}`);
  }

  const stop = row.actions.querySelector<HTMLButtonElement>('button.stop-seeding');
  if (stop) {
    stop.hidden = t.mine === false || t.seeding !== true || t.worker_kind === 'original';
    stop.setAttribute('aria-label', `Stop seeding ${name}`);
  }

  const pin = row.actions.querySelector<HTMLButtonElement>('button.pin');
  if (pin) {
    pin.hidden = t.mine === false || t.worker_kind === 'original';
    setText(pin, t.pinned ? 'Unpin' : 'Pin');
    pin.setAttribute('aria-pressed', t.pinned ? 'true' : 'false');
    pin.setAttribute('aria-label', `${t.pinned ? 'Unpin' : 'Pin'} ${name}`);
  }

  renderEpisodes(row);

  // Ready, or playable while it downloads (progressive playback).
  const ready = t.status === 'ready' || t.playable === true;
  if (ready && !row.play) {
    row.play = h('a', { class: 'play button', text: 'Play' });
    row.actions.prepend(row.play);
  } else if (!ready && row.play) {
    row.play.remove();
    row.play = null;
  }
  if (row.play) {
    row.play.setAttribute('href', `/player?taskId=${encodeURIComponent(t.id)}`);
    row.play.setAttribute('aria-label', `Play ${name}`);
  }
}

/** What a video of a torrent of several is doing, in a few words. */
function videoState(v: TaskVideo): string {
  switch (v.state) {
    case 'ready':
      return 'ready';
    case 'playable':
      return 'playable';
    case 'transcoding':
      return `converting ${clampPercent(v.transcode_progress)}%`;
    case 'queued':
      return 'queued';
    case 'error':
      return `error: ${v.error}`;
    default: {
      if (v.size > 0 && v.downloaded >= v.size) return 'downloaded';
      if (v.current && v.size > 0) return `${clampPercent((v.downloaded / v.size) * 100)}% downloaded`;
      return '';
    }
  }
}

/** A season pack's episodes (a torrent of several videos): each plays in the player, which
 * makes it the one fetched. The list is rebuilt only when something in it changed. */
function renderEpisodes(row: Row): void {
  const videos = [...(row.task.videos ?? [])].sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
  row.episodes.hidden = videos.length < 2;
  if (videos.length < 2) return;
  const key = JSON.stringify(videos.map((v) => [v.index, v.current, v.state, v.downloaded, v.transcode_progress]));
  if (row.episodes.dataset.key === key) return;
  row.episodes.dataset.key = key;
  const items = videos.map((v) => {
    const name = v.path.split('/').pop() ?? v.path;
    const play = h('a', {
      class: 'play-episode',
      text: 'Play',
      attrs: { href: `/player?taskId=${encodeURIComponent(row.task.id)}&file=${v.index}`, 'aria-label': `Play ${name}` },
    });
    const li = h(
      'li',
      { class: v.current ? 'episode current' : 'episode', attrs: { 'data-file': String(v.index) } },
      h('span', { class: 'episode-name', text: name }),
      h('span', { class: 'muted', text: ` ${humanBytes(v.size)} ` }),
      h('span', { class: 'episode-state', text: videoState(v) }),
      ' ',
      play,
    );
    if (v.current) li.setAttribute('aria-current', 'true');
    return li;
  });
  row.episodes.replaceChildren(h('summary', { text: `Episodes (${videos.length})` }), h('ol', {}, ...items));
}

async function deleteTask(row: Row): Promise<void> {
  const t = row.task;
  if (!confirm(`Delete the task “${displayName(t)}” with its download and video?`)) return;
  try {
    await api.deleteTask(t.id);
    row.el.remove();
    rows.delete(t.id);
    el.tasksEmpty.hidden = rows.size > 0;
    announce(`${displayName(t)} deleted`);
  } catch (e) {
    setText(el.tasksError, `Delete: ${errorText(e)}`);
  }
  void refreshTasks();
}

function displayName(t: Task): string {
  return t.torrent_name || t.magnet_url || t.id;
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

function formatDate(s: string): string {
  const t = Date.parse(s);
  return Number.isNaN(t) ? s : new Date(t).toLocaleString();
}

/** A status as a CSS class suffix: only `[a-z0-9-]`. */
function cssToken(s: string | undefined): string {
  return (s ?? '').toLowerCase().replace(/[^a-z0-9-]/g, '-') || 'unknown';
}

// ---------------------------------------------------------------- start

void refreshAccount(); // also opens the event stream once it is known who may read it
void refreshNodes();
void refreshTasks();
window.setInterval(() => void refreshNodes(), NODES_EVERY_MS);
window.setInterval(() => void refreshTasks(), TASKS_EVERY_MS);
