// The index page's submit form: a magnet link, a .torrent file chosen or dropped anywhere on
// the page, and the node to send it to.

import { api, type Task } from '../api';
import { setText } from '../dom';
import { bytes, errorMessage, t } from '../locale';
import { el, state } from './page';
import { refreshTasks, upsertTask } from './tasks';

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
    el.submit.disabled = state.account.kind === 'in' && state.account.user.is_banned;
  }
}

/** Largest .torrent file sent (the gateway's default `max_torrent_kib`). */
const MAX_TORRENT_BYTES = 4 * 1024 * 1024;

async function submitTorrent(file: File): Promise<void> {
  if (state.account.kind === 'out') {
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
