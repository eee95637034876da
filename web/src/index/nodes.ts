// The index page's node list and the submit form's node choice.

import { api, ApiError, type GatewayNode } from '../api';
import { h, setText } from '../dom';
import { bytes, errorMessage, statusText, t } from '../locale';
import { cssToken, el, state } from './page';

let nodeOptionsKey = '';

export async function refreshNodes(): Promise<void> {
  if (state.listsNeedLogin) return;
  let nodes: GatewayNode[];
  try {
    nodes = await api.nodes();
    setText(el.nodesError, '');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) state.listsNeedLogin = true;
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

/** Renders the list and the choice again (another language). */
export function rerenderNodes(): void {
  nodeOptionsKey = '';
  showNodes(lastNodes);
}
