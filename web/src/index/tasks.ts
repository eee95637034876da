// The index page's task list: a row per task, kept and updated in place (progress, figures,
// the actions its user may take, a season pack's episodes), and live updates merged into it.

import { api, ApiError, type Task, type TaskEvent, type TaskVideo } from '../api';
import { h, setText } from '../dom';
import type { Key } from '../i18n';
import { bytes, errorMessage, number, percent, rate, statusText, t } from '../locale';
import { announce, cssToken, el, state } from './page';

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

const rows = new Map<string, Row>();

let tasksInFlight = false;
let tasksAgain = false;

export async function refreshTasks(): Promise<void> {
  if (state.listsNeedLogin) return;
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
    if (e instanceof ApiError && e.status === 401) state.listsNeedLogin = true;
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
export function upsertTask(t: Task): void {
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

export function applyEvent(update: TaskEvent): void {
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

function time(s: string | undefined): number {
  const t = s ? Date.parse(s) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

/** Renders every row again (another language). */
export function renderAllTasks(): void {
  for (const row of rows.values()) {
    renderRow(row);
    renderEpisodes(row, true);
  }
}
