// The player page (`/player?taskId=<id>`): hls.js fed over a WebRTC data channel (the
// binary protocol) or, when P2P is impossible, through the gateway's HTTP relay.
//
// URL parameters: `taskId`; `transport=relay` skips P2P; `p2p_timeout_ms` bounds the P2P
// attempt (default 5000). Tests read `window.__player`.

import Hls, { type ErrorData, type HlsConfig, type LoaderCallbacks, type LoaderConfiguration, type LoaderContext } from 'hls.js';
import { api, ApiError, type Task } from './api';
import { DcClient, dcLoader, type LoaderClass } from './dc-loader';
import { byId, errorText, h, setText } from './dom';
import { humanBytes, humanRate } from './format';
import { connectP2P, type P2PSession } from './p2p';

type Transport = 'p2p' | 'relay';

/** What the end-to-end tests read. */
interface PlayerState {
  transport: Transport | null;
  bytes: number;
  fallbackReason: string | null;
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

const state: PlayerState = { transport: null, bytes: 0, fallbackReason: null };
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
};

const params = new URLSearchParams(location.search);
const taskId = params.get('taskId') ?? '';
const forceRelay = params.get('transport') === 'relay';
const p2pTimeoutMs = positiveInt(params.get('p2p_timeout_ms')) ?? DEFAULT_P2P_TIMEOUT_MS;

let hls: Hls | null = null;
let session: P2PSession | null = null;
/** master.m3u8 carries the subtitle renditions; older outputs only have index.m3u8. */
let manifest: 'master.m3u8' | 'index.m3u8' = 'master.m3u8';
let mediaRecoveries = 0;

// ---------------------------------------------------------------- byte counting

function addBytes(n: number): void {
  state.bytes += n;
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
          addBytes(stats.loaded);
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
  const task = await waitUntilReady();
  if (!task) return;

  if (!Hls.isSupported()) {
    // No MSE (iOS Safari): only the native player and the relay remain.
    if (el.video.canPlayType('application/vnd.apple.mpegurl')) {
      setTransport('relay', 'P2P failed: this browser has no Media Source Extensions');
      el.video.src = `/video/${encodeURIComponent(taskId)}/index.m3u8`;
      void el.video.play().catch(() => {});
    } else {
      showError('This browser cannot play HLS video.');
    }
    return;
  }

  if (forceRelay) {
    startRelay(null);
    return;
  }
  say('Connecting to the node over WebRTC…');
  try {
    session = await connectP2P({ workerId: task.worker_id, timeoutMs: p2pTimeoutMs });
  } catch (e) {
    startRelay(`P2P failed: ${errorText(e)}`);
    return;
  }
  const client = new DcClient(session.channel, addBytes);
  setTransport('p2p', null);
  startHls(dcLoader(client));
  session.onClose((reason) => {
    if (state.transport === 'p2p') switchToRelay(`P2P failed: ${reason}`);
  });
}

/** Fetches the task until it is ready; `null` when it never will be (or is unknown). */
async function waitUntilReady(): Promise<Task | null> {
  for (;;) {
    try {
      const task = await api.task(taskId);
      showTitle(task);
      if (task.status === 'ready') return task;
      if (task.status === 'error' || task.status === 'cancelled') {
        say(`This task is ${task.status}.`);
        if (task.error) showError(task.error);
        return null;
      }
      say(`Not ready yet: ${task.status} (${Math.round(task.progress ?? 0)}%)${task.detail ? `, ${task.detail}` : ''}. Waiting…`);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
        say('Nothing to play.');
        showError(e.message);
        return null;
      }
      say(`Cannot read the task (${errorText(e)}); retrying…`);
    }
    await new Promise((r) => window.setTimeout(r, READY_POLL_MS));
  }
}

function startRelay(fallbackReason: string | null): void {
  setTransport('relay', fallbackReason);
  startHls(relayLoader());
}

/** Leaves P2P mid-stream for the relay, resuming where the video was. */
function switchToRelay(reason: string): void {
  session?.close();
  session = null;
  const at = el.video.currentTime;
  setTransport('relay', reason);
  startHls(relayLoader(), at > 0 ? at : -1);
}

function startHls(loader: LoaderClass, startPosition = -1): void {
  hls?.destroy();
  const config: Partial<HlsConfig> = {
    loader,
    startPosition,
    renderTextTracksNatively: true,
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
  player.loadSource(`/video/${encodeURIComponent(taskId)}/${manifest}`);
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
  if (data.type === Hls.ErrorTypes.NETWORK_ERROR && state.transport === 'p2p') {
    const why = data.response?.text || data.error?.message || data.details;
    switchToRelay(`P2P failed: ${why}`);
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
el.video.addEventListener('waiting', () => say('Buffering…'));
el.video.addEventListener('ended', () => say('Ended.'));

window.addEventListener('pagehide', () => {
  hls?.destroy();
  session?.close();
});

function positiveInt(s: string | null): number | null {
  const n = s === null ? NaN : Number(s);
  return Number.isInteger(n) && n > 0 ? n : null;
}

main().catch((e: unknown) => showError(`Player: ${errorText(e)}`));
