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
import { api, ApiError, type Task, type TaskEvent, type TaskVideo } from './api';
import { DcClient, dcLoader, type FileClient, type LoaderClass } from './dc-loader';
import { byId, errorText, h, setText } from './dom';
import { humanBytes, humanRate } from './format';
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
  setText(el.rate, humanRate(seconds > 0 ? (state.bytes - first.bytes) / seconds : 0));
  setText(el.total, humanBytes(state.bytes));
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

function say(text: string): void {
  setText(el.state, text);
}

function showError(text: string): void {
  setText(el.error, text);
}

function setTransport(t: Transport, fallbackReason: string | null): void {
  if (state.transport !== t || (t === 'relay' && fallbackReason !== state.fallbackReason)) {
    state.switches.push(t === 'p2p' ? 'p2p' : `relay: ${fallbackReason ?? 'asked for'}`);
  }
  state.transport = t;
  state.fallbackReason = fallbackReason;
  el.transport.setAttribute('data-transport', t);
  setText(el.transport, t === 'p2p' ? 'P2P' : 'Relay');
  setText(
    el.fallback,
    fallbackReason ? `Relay: ${fallbackReason}` : t === 'relay' && forceRelay ? 'forced by transport=relay' : '',
  );
}

function showTitle(task: Task): void {
  const name = task.torrent_name || task.id;
  setText(el.title, name);
  document.title = `${name} · magnetm3u8`;
}

// ---------------------------------------------------------------- start

async function main(): Promise<void> {
  if (!/^task_\d+$/.test(taskId)) {
    say('Nothing to play.');
    showError('Open this page as /player?taskId=<task id>.');
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
      setTransport('relay', 'P2P failed: this browser has no Media Source Extensions');
      el.video.src = videoUrl('index.m3u8');
      void el.video.play().catch(() => {});
    } else {
      showError('This browser cannot play HLS video.');
    }
    return;
  }

  originalNode = task.worker_kind === 'original';
  if (originalNode) {
    // The original's workers make index.m3u8 only.
    manifest = 'index.m3u8';
    if (forceRelay) {
      cannotRelay('transport=relay was asked for');
      return;
    }
  } else if (forceRelay) {
    startRelay(null);
    return;
  }
  say('Connecting to the node over WebRTC…');
  if (originalNode) {
    try {
      session = await connectP2P({ workerId: task.worker_id, timeoutMs: p2pTimeoutMs, relayOnly });
    } catch (e) {
      cannotRelay(`P2P failed: ${errorText(e)}`);
      return;
    }
    state.protocol = 'original';
    setTransport('p2p', null);
    startHls(dcLoader(new HijackClient(session.channel, addBytes)));
    session.onClose((reason) => {
      if (state.transport === 'p2p') cannotRelay(`P2P failed: ${reason}`);
    });
    return;
  }
  state.protocol = 'binary';
  try {
    usePeer(await connectP2P({ workerId: task.worker_id, timeoutMs: p2pTimeoutMs, relayOnly }));
  } catch (e) {
    setTransport('relay', `P2P failed: ${errorText(e)}`);
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
  if (state.switches.length > 1) say('Back on P2P.');
  s.onClose((reason) => {
    if (session !== s) return;
    lostPeer(`P2P lost: ${reason}`);
  });
}

/** P2P went: the relay carries on and a new P2P session is tried for after a pause. */
function lostPeer(reason: string): void {
  session?.close();
  session = null;
  p2pClient = null;
  setTransport('relay', reason);
  say(`Playing over the relay (${reason}); reconnecting P2P…`);
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
function cannotRelay(reason: string): void {
  hls?.destroy();
  hls = null;
  session?.close();
  session = null;
  state.fallbackReason = reason;
  say('Stopped.');
  showError(
    `This video is on an original worker node, which serves it over P2P only (it has no relay): ${reason}. ` +
      'Playback needs a direct (or TURN) connection to that node.',
  );
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
    let update: TaskEvent;
    try {
      update = JSON.parse((e as MessageEvent<string>).data) as TaskEvent;
    } catch {
      return;
    }
    if (update?.id !== taskId || !current) return;
    current = { ...current, ...Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined && v !== null)) };
    showDownload(current);
    wake?.();
  });
  window.addEventListener('pagehide', () => events.close());
}

/** How much is downloaded, at what speed, from how many peers, while the torrent downloads. */
function showDownload(t: Task): void {
  const downloading = t.status === 'downloading' || t.status === 'pending';
  el.download.hidden = !downloading;
  if (!downloading) return;
  const percent = Math.max(0, Math.min(100, Math.round(t.progress ?? 0)));
  el.downloadFill.style.width = `${percent}%`;
  el.downloadBar.setAttribute('aria-valuenow', String(percent));
  const peers = t.peers ?? 0;
  const parts = [`${percent}%`, humanRate(t.speed ?? 0), peers === 1 ? '1 peer' : `${peers} peers`];
  if (t.detail) parts.push(t.detail);
  setText(el.downloadText, parts.join(' · '));
}

/** What the viewer is told while the video waits for data. */
function waitingText(): string {
  const t = current;
  if (!t || (t.status !== 'downloading' && t.status !== 'pending')) return 'Buffering…';
  const peers = t.peers ?? 0;
  if (peers === 0) return 'Waiting for data: no peer is sending this torrent right now.';
  return `Waiting for data from peers: ${peers === 1 ? '1 peer' : `${peers} peers`}, ${humanRate(t.speed ?? 0)}.`;
}

/** The video played: the one asked for, else the task's current one. */
function chosenVideo(t: Task): TaskVideo | undefined {
  const videos = t.videos ?? [];
  return file === null ? videos.find((v) => v.current) : videos.find((v) => v.index === file);
}

/** Whether the video played can start: its own HLS is playable (or the task's, for the
 * task's own folder, which tasks from before per-video states have). */
function playable(t: Task): boolean {
  const v = chosenVideo(t);
  if (v && (v.state === 'playable' || v.state === 'ready')) return true;
  if (v && v.playlist !== '') return false;
  return t.status === 'ready' || t.playable === true;
}

/** Makes the video asked for the one fetched and played (its submitter or an admin may);
 * false when it cannot play. */
async function choose(t: Task): Promise<Task | null> {
  const v = chosenVideo(t);
  if (file === null) return t;
  if (!v) {
    say('Nothing to play.');
    showError(`File ${file} is not a video of this torrent.`);
    return null;
  }
  if (v.current || v.state === 'ready') return t;
  try {
    const answer = await api.playVideo(taskId, v.index);
    return answer.data ?? t;
  } catch (e) {
    if (v.state === 'playable') return t;
    say('Cannot play this episode.');
    showError(errorText(e));
    return null;
  }
}

/** Previous and next episode of a torrent of several videos (by path), as links. */
function showEpisodes(t: Task): void {
  const videos = [...(t.videos ?? [])].sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
  const v = chosenVideo(t);
  if (videos.length < 2 || !v) return;
  const at = videos.findIndex((x) => x.index === v.index);
  el.episodes.hidden = false;
  setText(el.episode, `${at + 1} of ${videos.length}: ${v.path.split('/').pop() ?? v.path}`);
  const go = (to: TaskVideo | undefined, button: HTMLButtonElement) => {
    button.disabled = !to;
    if (!to) return;
    button.setAttribute('aria-label', `Play ${to.path.split('/').pop() ?? to.path}`);
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
        say(`This task is ${task.status}.`);
        if (task.error) showError(task.error);
        return null;
      }
      say(`Not playable yet: ${task.status} (${Math.round(task.progress ?? 0)}%)${task.detail ? `, ${task.detail}` : ''}. Waiting…`);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
        say('Nothing to play.');
        showError(e.message);
        return null;
      }
      say(`Cannot read the task (${errorText(e)}); retrying…`);
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

function startRelay(fallbackReason: string | null): void {
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
    say('Playing…');
    renderSubtitles();
    el.video.play().catch(() => {
      // Autoplay refused: the controls remain.
      say('Press play to start.');
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
    say(waitingText());
    player.startLoad(el.video.currentTime > 0 ? el.video.currentTime : -1);
    return;
  }
  if (data.type === Hls.ErrorTypes.NETWORK_ERROR && state.transport === 'p2p') {
    const why = data.response?.text || data.error?.message || data.details;
    if (originalNode) cannotRelay(`P2P failed: ${why}`);
    else lostPeer(`P2P failed: ${why}`);
    return;
  }
  const status = data.response?.code ? ` (status ${data.response.code})` : '';
  showError(`Playback failed: ${data.details}${status}${data.response?.text ? `: ${data.response.text}` : ''}`);
  say('Stopped.');
  player.destroy();
  hls = null;
}

function renderSubtitles(): void {
  const player = hls;
  if (!player) return;
  const tracks = player.subtitleTracks;
  el.subtitles.replaceChildren(
    h('option', { text: 'Off', attrs: { value: '-1' } }),
    ...tracks.map((t, i) => h('option', { text: t.name || t.lang || `Track ${i + 1}`, attrs: { value: String(i) } })),
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

el.video.addEventListener('playing', () => say(`Playing over ${state.transport === 'p2p' ? 'P2P' : 'the relay'}.`));
el.video.addEventListener('waiting', () => say(waitingText()));
el.video.addEventListener('ended', () => say('Ended.'));

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

main().catch((e: unknown) => showError(`Player: ${errorText(e)}`));
