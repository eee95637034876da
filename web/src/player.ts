// The player page (`/player?taskId=<id>`): hls.js fed over a WebRTC data channel (the
// binary protocol) or, when P2P is impossible, through the gateway's HTTP relay.
//
// P2P that recovers: every hls.js request goes over the data channel while a P2P session is
// up and through the relay otherwise, so losing P2P mid-play costs no restart of the player;
// the player then re-offers (with fresh ICE servers) with a growing pause, and the requests
// after it move back to P2P. Each switch shows on the page (`__player.switches`).
//
// URL parameters: `taskId`; `file` (a video of the torrent, an episode of a season pack, by
// its index in the torrent's files: it becomes the one fetched and played); `transport=relay` skips P2P; `p2p_timeout_ms` bounds the P2P
// attempt (default 5000); `max_buffer_s` caps how far ahead hls.js buffers (tests); `ice_policy=relay` uses TURN relays only
// (tests of TURN). Tests read `window.__player`.

import Hls, { type ErrorData, type HlsConfig, type LoaderCallbacks, type LoaderConfiguration, type LoaderContext } from 'hls.js';
import { api, ApiError, taskEvent, type Task, type TaskVideo } from './api';
import { DcClient, dcLoader, type FileClient, type LoaderClass } from './dc-loader';
import { byId, errorText, h, setText } from './dom';
import { translate, type Key, type Params } from './i18n';
import { bytes, errorMessage, onLocaleChange, percent, rate, statusText, t } from './locale';
import { HijackClient } from './hijack';
import { connectP2P, type P2PSession } from './p2p';

type Transport = 'p2p' | 'relay';

/** What the end-to-end tests read. */
interface PlayerState {
  transport: Transport | null;
  /** The data channel's protocol: ours, or the original's for an original worker node. */
  protocol: 'binary' | 'original' | null;
  bytes: number;
  /** Bytes received over each transport. */
  bytesBy: Record<Transport, number>;
  fallbackReason: string | null;
  /** Each transport the player moved to, in order: `p2p`, or `relay: <why>`. */
  switches: string[];
  /** The local ICE candidate type of the P2P session (`relay`: through TURN). */
  candidateType: string | null;
}

declare global {
  interface Window {
    __player: PlayerState;
  }
}

const DEFAULT_P2P_TIMEOUT_MS = 5_000;
const READY_POLL_MS = 3_000;
/** Throughput is the bytes received over this window. */
const RATE_WINDOW_MS = 5_000;

const state: PlayerState = {
  transport: null,
  protocol: null,
  bytes: 0,
  bytesBy: { p2p: 0, relay: 0 },
  fallbackReason: null,
  switches: [],
  candidateType: null,
};
window.__player = state;

const el = {
  title: byId('title'),
  state: byId('state'),
  error: byId('error'),
  video: byId<HTMLVideoElement>('video'),
  transport: byId('transport'),
  fallback: byId('fallback'),
  rate: byId('rate'),
  total: byId('total'),
  subtitles: byId<HTMLSelectElement>('subtitles'),
  download: byId('download'),
  downloadBar: byId('download-bar'),
  downloadFill: byId('download-fill'),
  downloadText: byId('download-text'),
  episodes: byId('episodes'),
  episode: byId('episode'),
  prev: byId<HTMLButtonElement>('prev'),
  next: byId<HTMLButtonElement>('next'),
};

const params = new URLSearchParams(location.search);
const taskId = params.get('taskId') ?? '';
const forceRelay = params.get('transport') === 'relay';
/** The video asked for (`file`), else the task's current one once known. */
let file: number | null = nonNegativeInt(params.get('file'));
/** Its HLS folder under the task's: '' or 'v<index>'. */
let folder = '';
const p2pTimeoutMs = positiveInt(params.get('p2p_timeout_ms')) ?? DEFAULT_P2P_TIMEOUT_MS;
const maxBufferS = positiveInt(params.get('max_buffer_s'));
const relayOnly = params.get('ice_policy') === 'relay';
/** First pause before re-offering after P2P was lost; doubled after each failure, up to the
 * most. */
const RECOVERY_FIRST_MS = 1_000;
const RECOVERY_MOST_MS = 30_000;
/** The data channel's client while a P2P session is up: requests go over it. */
let p2pClient: FileClient | null = null;
let recovery: { timer: number; delayMs: number } | null = null;

let hls: Hls | null = null;
let session: P2PSession | null = null;
/** master.m3u8 carries the subtitle renditions; older outputs only have index.m3u8. */
let manifest: 'master.m3u8' | 'index.m3u8' = 'master.m3u8';
let mediaRecoveries = 0;
/** The task is on an original worker node: P2P with the original protocol, and no relay. */
let originalNode = false;

// ---------------------------------------------------------------- byte counting

function addBytes(n: number, over: Transport = 'p2p'): void {
  state.bytes += n;
  state.bytesBy[over] += n;
}

const samples: { t: number; bytes: number }[] = [];
window.setInterval(() => {
  const now = performance.now();
  samples.push({ t: now, bytes: state.bytes });
  while (samples.length > 2 && now - samples[0].t > RATE_WINDOW_MS) samples.shift();
  const first = samples[0];
  const seconds = (now - first.t) / 1000;
  setText(el.rate, rate(seconds > 0 ? (state.bytes - first.bytes) / seconds : 0));
  setText(el.total, t('player.total', { total: bytes(state.bytes) }));
}, 1000);

/** hls.js's own (XHR) loader, counting what it receives. */
function relayLoader(): LoaderClass {
  const Base = Hls.DefaultConfig.loader;
  return class RelayLoader extends Base {
    load(context: LoaderContext, config: LoaderConfiguration, callbacks: LoaderCallbacks<LoaderContext>): void {
      super.load(context, config, {
        ...callbacks,
        onSuccess: (response, stats, ctx, details) => {
          addBytes(stats.loaded, 'relay');
          callbacks.onSuccess(response, stats, ctx, details);
        },
      });
    }
  };
}

// ---------------------------------------------------------------- page state

/** A text of the page, made again when the language changes. */
type Text = () => string;

const message =
  (key: Key, params?: Params): Text =>
  () =>
    t(key, params);

/** What the status line and the error line say now. */
let saying: Text = message('player.loading');
let failing: Text = () => '';

function say(text: Text): void {
  saying = text;
  setText(el.state, text());
}

function showError(text: Text): void {
  failing = text;
  setText(el.error, text());
}

/** Why the relay carries the video: a message, with a technical detail as it came. */
interface Why {
  key: Key;
  detail?: string;
}

const why = (key: Key, detail?: unknown): Why => ({ key, detail: detail === undefined ? undefined : errorText(detail) });
const whyText = (w: Why): string => t(w.key, { detail: w.detail ?? '' });

function setTransport(to: Transport, fallback: Why | null): void {
  // The tests read the reasons in English, whatever the page's language.
  const reason = fallback ? translate('en', fallback.key, { detail: fallback.detail ?? '' }) : null;
  if (state.transport !== to || (to === 'relay' && reason !== state.fallbackReason)) {
    state.switches.push(to === 'p2p' ? 'p2p' : `relay: ${reason ?? 'asked for'}`);
  }
  state.transport = to;
  state.fallbackReason = reason;
  fallbackWhy = fallback;
  showTransport();
}

let fallbackWhy: Why | null = null;

function showTransport(): void {
  const to = state.transport;
  if (!to) return;
  el.transport.setAttribute('data-transport', to);
  setText(el.transport, t(to === 'p2p' ? 'player.p2p' : 'player.relay'));
  setText(
    el.fallback,
    fallbackWhy
      ? t('player.relayBecause', { reason: whyText(fallbackWhy) })
      : to === 'relay' && forceRelay
        ? t('player.relayAskedFor')
        : '',
  );
}

function showTitle(task: Task): void {
  const name = task.torrent_name || task.id;
  setText(el.title, name);
  el.video.setAttribute('aria-label', t('player.video', { name }));
  document.title = `${name} · magnetm3u8`;
}

// ---------------------------------------------------------------- start

async function main(): Promise<void> {
  if (!/^task_\d+$/.test(taskId)) {
    say(message('player.nothingToPlay'));
    showError(message('player.openAs'));
    return;
  }
  followEvents();
  try {
    const first = await choose(await api.task(taskId));
    if (!first) return;
    current = first;
  } catch {
    // waitUntilPlayable says what is wrong.
  }
  const task = await waitUntilPlayable();
  if (!task) return;
  const video = chosenVideo(task);
  if (video) {
    file = video.index;
    folder = video.playlist;
  }
  showEpisodes(task);

  if (!Hls.isSupported()) {
    // No MSE (iOS Safari): only the native player and the relay remain.
    if (el.video.canPlayType('application/vnd.apple.mpegurl')) {
      setTransport('relay', why('player.reason.noMse'));
      el.video.src = videoUrl('index.m3u8');
      void el.video.play().catch(() => {});
    } else {
      showError(message('player.noHls'));
    }
    return;
  }

  originalNode = task.worker_kind === 'original';
  if (originalNode) {
    // The original's workers make index.m3u8 only.
    manifest = 'index.m3u8';
    if (forceRelay) {
      cannotRelay(why('player.reason.relayAskedFor'));
      return;
    }
  } else if (forceRelay) {
    startRelay(null);
    return;
  }
  say(message('player.connecting'));
  if (originalNode) {
    try {
      session = await connectP2P({ workerId: task.worker_id, timeoutMs: p2pTimeoutMs, relayOnly });
    } catch (e) {
      cannotRelay(why('player.reason.p2pFailed', e));
      return;
    }
    state.protocol = 'original';
    setTransport('p2p', null);
    startHls(dcLoader(new HijackClient(session.channel, addBytes)));
    session.onClose((reason) => {
      if (state.transport === 'p2p') cannotRelay(why('player.reason.p2pFailed', reason));
    });
    return;
  }
  state.protocol = 'binary';
  try {
    usePeer(await connectP2P({ workerId: task.worker_id, timeoutMs: p2pTimeoutMs, relayOnly }));
  } catch (e) {
    setTransport('relay', why('player.reason.p2pFailed', e));
    recoverLater();
  }
  startHls(transportLoader());
}

/** hls.js makes a loader per request: over the data channel while P2P is up, else the relay. */
function transportLoader(): LoaderClass {
  const relay = relayLoader();
  const overPeer = new WeakMap<FileClient, LoaderClass>();
  function TransportLoader(config: HlsConfig): unknown {
    const client = p2pClient;
    if (!client) return new relay(config);
    let loader = overPeer.get(client);
    if (!loader) {
      loader = dcLoader(client);
      overPeer.set(client, loader);
    }
    return new loader(config);
  }
  return TransportLoader as unknown as LoaderClass;
}

/** A P2P session is up: the next requests go over it. */
function usePeer(s: P2PSession): void {
  session = s;
  p2pClient = new DcClient(s.channel, (n) => addBytes(n, 'p2p'));
  setTransport('p2p', null);
  void s.candidateType().then((t) => {
    if (session === s) state.candidateType = t;
  });
  if (state.switches.length > 1) say(message('player.backOnP2p'));
  s.onClose((reason) => {
    if (session !== s) return;
    lostPeer(why('player.reason.p2pLost', reason));
  });
}

/** P2P went: the relay carries on and a new P2P session is tried for after a pause. */
function lostPeer(reason: Why): void {
  session?.close();
  session = null;
  p2pClient = null;
  setTransport('relay', reason);
  say(() => t('player.overRelayReconnecting', { reason: whyText(reason) }));
  recoverLater();
  // Requests waiting on the channel are dropped and asked again: over the relay.
  if (hls) {
    hls.stopLoad();
    hls.startLoad(el.video.currentTime > 0 ? el.video.currentTime : -1);
  }
}

/** Re-offers after a pause that grows while attempts fail. */
function recoverLater(): void {
  if (recovery || forceRelay || !current) return;
  const workerId = current.worker_id;
  const attempt = (delayMs: number): void => {
    const timer = window.setTimeout(() => {
      connectP2P({ workerId, timeoutMs: p2pTimeoutMs, relayOnly })
        .then((s) => {
          recovery = null;
          usePeer(s);
        })
        .catch(() => attempt(Math.min(delayMs * 2, RECOVERY_MOST_MS)));
    }, delayMs);
    recovery = { timer, delayMs };
  };
  attempt(RECOVERY_FIRST_MS);
}

/** An original worker node has no relay: playback needs P2P, which failed. */
function cannotRelay(reason: Why): void {
  hls?.destroy();
  hls = null;
  session?.close();
  session = null;
  state.fallbackReason = translate('en', reason.key, { detail: reason.detail ?? '' });
  say(message('player.stopped'));
  showError(() => t('player.originalNoRelay', { reason: whyText(reason) }));
}

/** The task as last heard (the API, then its live events). */
let current: Task | null = null;
/** Wakes `waitUntilPlayable` when an event says the task changed. */
let wake: (() => void) | null = null;

/** Live figures of the task from `GET /api/events`: the download bar, and a wake-up when the
 * task becomes playable (no waiting for the next poll). */
function followEvents(): void {
  if (typeof EventSource === 'undefined') return;
  const events = new EventSource('/api/events');
  events.addEventListener('task', (e) => {
    const update = taskEvent(e);
    if (update?.id !== taskId || !current) return;
    current = { ...current, ...Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined && v !== null)) };
    showDownload(current);
    wake?.();
  });
  window.addEventListener('pagehide', () => events.close());
}

/** How much is downloaded, at what speed, from how many peers, while the torrent downloads. */
function showDownload(task: Task): void {
  const downloading = task.status === 'downloading' || task.status === 'pending';
  el.download.hidden = !downloading;
  if (!downloading) return;
  const done = Math.max(0, Math.min(100, Math.round(task.progress ?? 0)));
  el.downloadFill.style.width = `${done}%`;
  el.downloadBar.setAttribute('aria-valuenow', String(done));
  el.downloadBar.setAttribute('aria-valuetext', percent(done));
  const figures = { percent: percent(done), rate: rate(task.speed ?? 0), count: task.peers ?? 0 };
  setText(
    el.downloadText,
    task.detail ? t('player.downloadFiguresDetail', { ...figures, detail: task.detail }) : t('player.downloadFigures', figures),
  );
}

/** What the viewer is told while the video waits for data. */
function waitingText(): string {
  const task = current;
  if (!task || (task.status !== 'downloading' && task.status !== 'pending')) return t('player.buffering');
  const peers = task.peers ?? 0;
  if (peers === 0) return t('player.waitingNoPeer');
  return t('player.waitingPeers', { count: peers, rate: rate(task.speed ?? 0) });
}

/** The video played: the one asked for, else the task's current one. */
function chosenVideo(task: Task): TaskVideo | undefined {
  const videos = task.videos ?? [];
  return file === null ? videos.find((v) => v.current) : videos.find((v) => v.index === file);
}

/** Whether the video played can start: its own HLS is playable (or the task's, for the
 * task's own folder, which tasks from before per-video states have). */
function playable(task: Task): boolean {
  const v = chosenVideo(task);
  if (v && (v.state === 'playable' || v.state === 'ready')) return true;
  if (v && v.playlist !== '') return false;
  return task.status === 'ready' || task.playable === true;
}

/** Makes the video asked for the one fetched and played (its submitter or an admin may);
 * false when it cannot play. */
async function choose(task: Task): Promise<Task | null> {
  const v = chosenVideo(task);
  if (file === null) return task;
  if (!v) {
    say(message('player.nothingToPlay'));
    showError(message('player.notAVideo', { index: String(file) }));
    return null;
  }
  if (v.current || v.state === 'ready') return task;
  try {
    const answer = await api.playVideo(taskId, v.index);
    return answer.data ?? task;
  } catch (e) {
    if (v.state === 'playable') return task;
    say(message('player.cannotPlayEpisode'));
    showError(() => errorMessage(e));
    return null;
  }
}

/** Previous and next episode of a torrent of several videos (by path), as links. */
function showEpisodes(task: Task): void {
  const videos = [...(task.videos ?? [])].sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
  const v = chosenVideo(task);
  if (videos.length < 2 || !v) return;
  const at = videos.findIndex((x) => x.index === v.index);
  el.episodes.hidden = false;
  const label = () => {
    setText(el.episode, t('player.episodeOf', { at: at + 1, count: videos.length, name: v.path.split('/').pop() ?? v.path }));
    for (const [to, button] of [[videos[at - 1], el.prev], [videos[at + 1], el.next]] as const) {
      if (to) button.setAttribute('aria-label', t('player.playName', { name: to.path.split('/').pop() ?? to.path }));
    }
  };
  label();
  onLocaleChange(label);
  const go = (to: TaskVideo | undefined, button: HTMLButtonElement) => {
    button.disabled = !to;
    if (!to) return;
    button.addEventListener('click', () => {
      const next = new URLSearchParams(location.search);
      next.set('file', String(to.index));
      location.search = next.toString();
    });
  };
  go(videos[at - 1], el.prev);
  go(videos[at + 1], el.next);
}

/** `/video/<task>/[v<k>/]<name>` */
function videoUrl(name: string): string {
  return `/video/${encodeURIComponent(taskId)}/${folder ? `${folder}/` : ''}${name}`;
}

/** Fetches the task until it can play (ready, or playable while it downloads); `null` when
 * it never will (or is unknown). Events wake it early; a slow poll covers a lost stream. */
async function waitUntilPlayable(): Promise<Task | null> {
  for (;;) {
    try {
      const task = await api.task(taskId);
      current = task;
      showTitle(task);
      showDownload(task);
      if (playable(task)) return task;
      if (task.status === 'error' || task.status === 'cancelled') {
        say(message('player.taskEnded', { status: statusText(task.status) }));
        if (task.error) showError(() => task.error ?? '');
        return null;
      }
      const figures = { status: statusText(task.status), percent: percent(Math.round(task.progress ?? 0)) };
      say(
        task.detail
          ? () => t('player.notPlayableYetDetail', { ...figures, detail: task.detail ?? '' })
          : () => t('player.notPlayableYet', figures),
      );
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
        say(message('player.nothingToPlay'));
        showError(() => errorMessage(e));
        return null;
      }
      say(() => t('player.cannotReadTask', { error: errorMessage(e) }));
    }
    await new Promise<void>((r) => {
      const timer = window.setTimeout(r, READY_POLL_MS);
      wake = () => {
        // An event that says playable (or ended) is worth a fetch now; any other leaves the
        // poll's timer running (live events do not carry each video's state).
        if ((current && playable(current)) || current?.status === 'error') {
          window.clearTimeout(timer);
          r();
        }
      };
    });
    wake = null;
  }
}

function startRelay(fallbackReason: Why | null): void {
  setTransport('relay', fallbackReason);
  startHls(relayLoader());
}

// From the start by default: a task converted in one pass as it downloads (no index to cut
// on) has an EVENT playlist, which hls.js would otherwise join at its live edge.
function startHls(loader: LoaderClass, startPosition = 0): void {
  hls?.destroy();
  const config: Partial<HlsConfig> = {
    loader,
    startPosition,
    renderTextTracksNatively: true,
    ...(maxBufferS ? { maxBufferLength: maxBufferS, maxMaxBufferLength: maxBufferS } : {}),
    // A segment of a task that still downloads may be being made: the node holds the request
    // up to 8 s, then answers 503 (ask again). Wait longer and retry more than for a VOD.
    fragLoadPolicy: {
      default: {
        maxTimeToFirstByteMs: 15_000,
        maxLoadTimeMs: 120_000,
        timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
        errorRetry: { maxNumRetry: 30, retryDelayMs: 500, maxRetryDelayMs: 2_000 },
      },
    },
  };
  const player = (hls = new Hls(config));
  player.on(Hls.Events.MANIFEST_PARSED, () => {
    say(message('player.playing'));
    renderSubtitles();
    el.video.play().catch(() => {
      // Autoplay refused: the controls remain.
      say(message('player.pressPlay'));
    });
  });
  player.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, renderSubtitles);
  player.on(Hls.Events.SUBTITLE_TRACK_SWITCH, () => {
    el.subtitles.value = String(player.subtitleTrack);
  });
  player.on(Hls.Events.ERROR, (_event, data) => onHlsError(player, data));
  player.attachMedia(el.video);
  player.loadSource(videoUrl(manifest));
}

function onHlsError(player: Hls, data: ErrorData): void {
  if (player !== hls) return;
  if (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR && manifest === 'master.m3u8' && data.response?.code === 404) {
    manifest = 'index.m3u8';
    startHls(player.config.loader as LoaderClass);
    return;
  }
  if (!data.fatal) return; // hls.js retries these itself
  if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
    mediaRecoveries++;
    player.recoverMediaError();
    return;
  }
  // 503: the segment is not made yet (its pieces are still coming). Not a P2P failure:
  // keep the transport and ask again.
  if (data.type === Hls.ErrorTypes.NETWORK_ERROR && data.response?.code === 503) {
    say(waitingText);
    player.startLoad(el.video.currentTime > 0 ? el.video.currentTime : -1);
    return;
  }
  if (data.type === Hls.ErrorTypes.NETWORK_ERROR && state.transport === 'p2p') {
    const reason = why('player.reason.p2pFailed', data.response?.text || data.error?.message || data.details);
    if (originalNode) cannotRelay(reason);
    else lostPeer(reason);
    return;
  }
  const status = data.response?.code ? ` (status ${data.response.code})` : '';
  const detail = `${data.details}${status}${data.response?.text ? `: ${data.response.text}` : ''}`;
  showError(message('player.failed', { detail }));
  say(message('player.stopped'));
  player.destroy();
  hls = null;
}

function renderSubtitles(): void {
  const player = hls;
  if (!player) return;
  const tracks = player.subtitleTracks;
  el.subtitles.replaceChildren(
    h('option', { text: t('player.subtitlesOff'), attrs: { value: '-1' } }),
    ...tracks.map((track, i) => h('option', { text: track.name || track.lang || t('player.track', { count: i + 1 }), attrs: { value: String(i) } })),
  );
  el.subtitles.disabled = tracks.length === 0;
  el.subtitles.value = String(player.subtitleTrack);
}

el.subtitles.addEventListener('change', () => {
  if (!hls) return;
  const i = Number(el.subtitles.value);
  hls.subtitleTrack = i;
  hls.subtitleDisplay = i >= 0;
});

el.video.addEventListener('playing', () => say(message(state.transport === 'p2p' ? 'player.playingOverP2p' : 'player.playingOverRelay')));
el.video.addEventListener('waiting', () => say(waitingText));
el.video.addEventListener('ended', () => say(message('player.ended')));

// Another language: the texts made from state are made again.
onLocaleChange(() => {
  setText(el.state, saying());
  setText(el.error, failing());
  showTransport();
  if (current) {
    showTitle(current);
    showDownload(current);
  }
  renderSubtitles();
  setText(el.total, t('player.total', { total: bytes(state.bytes) }));
});
say(saying);

window.addEventListener('pagehide', () => {
  if (recovery) window.clearTimeout(recovery.timer);
  recovery = null;
  hls?.destroy();
  session?.close();
});

function nonNegativeInt(s: string | null): number | null {
  const n = s === null || s === '' ? NaN : Number(s);
  return Number.isInteger(n) && n >= 0 ? n : null;
}

function positiveInt(s: string | null): number | null {
  const n = s === null ? NaN : Number(s);
  return Number.isInteger(n) && n > 0 ? n : null;
}

main().catch((e: unknown) => showError(() => t('player.error', { error: errorMessage(e) })));
