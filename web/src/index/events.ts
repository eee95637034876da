// The index page's live updates: `GET /api/events` while it flows, polling while it is down.

import { taskEvent } from '../api';
import { state } from './page';
import { applyEvent, refreshTasks } from './tasks';

/** Polling period while the event stream is down. */
const TASKS_FALLBACK_MS = 2_000;

let fallbackTimer: number | undefined;

function startFallbackPolling(): void {
  if (fallbackTimer === undefined) fallbackTimer = window.setInterval(() => void refreshTasks(), TASKS_FALLBACK_MS);
}

function stopFallbackPolling(): void {
  window.clearInterval(fallbackTimer);
  fallbackTimer = undefined;
}

let events: EventSource | undefined;

export function disconnectEvents(): void {
  events?.close();
  events = undefined;
  stopFallbackPolling();
}

export function connectEvents(): void {
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
    if (state.account.kind !== 'out') startFallbackPolling();
  });
  events.addEventListener('task', (e) => {
    const update = taskEvent(e);
    if (update) applyEvent(update);
  });
}

/** Whether the stream is not open (never opened, given up, or closed). */
export function eventsClosed(): boolean {
  return events === undefined || events.readyState === EventSource.CLOSED;
}
