// hls.js loading over the data channel, with the binary protocol of docs/protocol.md
// (section 2): `DcClient` multiplexes requests on one channel, `dcLoader` adapts it to
// hls.js's `Loader` interface (config `loader`), so no global XHR is touched.

import type { HlsConfig, Loader, LoaderCallbacks, LoaderConfiguration, LoaderContext, LoaderStats } from 'hls.js';
import { FrameError, FrameKind, isJsonMessage, parseFrame } from './frames';

/** What one request hears: START, DATA…, END, or one ERROR (status 0: the channel failed). */
export interface Receiver {
  start(total: number, offset: number, length: number, contentType: string): void;
  data(bytes: Uint8Array): void;
  end(): void;
  error(status: number, message: string): void;
}

const MAX_ID = 0xffff_ffff;

/** Files over a data channel, whichever protocol the node speaks. */
export interface FileClient {
  /** Asks for `path` (a URL path); returns the id to cancel it with. */
  get(path: string, receiver: Receiver, range?: { offset: number; length: number }): number;
  /** Stops a request: its receiver hears nothing more. */
  cancel(id: number): void;
}

/** What both protocols' clients share: one channel, the requests in flight by key (each
 * holding at least its receiver), and every one of them failed when the channel ends. */
export abstract class ChannelClient<K, R extends { receiver: Receiver }> implements FileClient {
  protected readonly pending = new Map<K, R>();
  private closedReason: string | null = null;

  /** `onBytes` hears the size of every payload received, for the throughput display. */
  constructor(
    protected readonly channel: RTCDataChannel,
    protected readonly onBytes: (n: number) => void = () => {},
  ) {
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('message', (e: MessageEvent) => this.onMessage(e.data));
    channel.addEventListener('close', () => this.failAll('data channel closed'));
    channel.addEventListener('error', () => this.failAll('data channel error'));
  }

  abstract get(path: string, receiver: Receiver, range?: { offset: number; length: number }): number;
  abstract cancel(id: number): void;
  protected abstract onMessage(data: unknown): void;

  /** Sends the request `message` as `key`, or fails its receiver (soon, not re-entrantly) when
   * the channel cannot carry it. */
  protected send(key: K, entry: R, message: string): void {
    if (this.closedReason !== null || this.channel.readyState !== 'open') {
      const reason = this.closedReason ?? `data channel ${this.channel.readyState}`;
      queueMicrotask(() => entry.receiver.error(0, reason));
      return;
    }
    this.pending.set(key, entry);
    try {
      this.channel.send(message);
    } catch (e) {
      this.pending.delete(key);
      queueMicrotask(() => entry.receiver.error(0, `send failed: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  /** Takes a request out of those in flight. */
  protected finish(key: K): R | undefined {
    const r = this.pending.get(key);
    this.pending.delete(key);
    return r;
  }

  private failAll(reason: string): void {
    if (this.closedReason === null) this.closedReason = reason;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const r of all) r.receiver.error(0, reason);
  }
}

/** The requests in flight on one data channel, demultiplexed by id (the binary protocol). */
export class DcClient extends ChannelClient<number, { receiver: Receiver }> {
  private nextId = 1;

  /** Asks for `path` (a URL path); returns the id to cancel it with. */
  get(path: string, receiver: Receiver, range?: { offset: number; length: number }): number {
    const id = this.allocateId();
    const req: Record<string, unknown> = { type: 'get', id, path };
    if (range) {
      req.offset = range.offset;
      req.length = range.length;
    }
    this.send(id, { receiver }, JSON.stringify(req));
    return id;
  }

  /** Stops a request: its receiver hears nothing more. */
  cancel(id: number): void {
    if (!this.pending.delete(id)) return;
    if (this.channel.readyState === 'open') {
      try {
        this.channel.send(JSON.stringify({ type: 'cancel', id }));
      } catch {
        // The channel is going away; its close fails the rest.
      }
    }
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= MAX_ID ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  protected onMessage(data: unknown): void {
    // String messages and JSON ones belong to the original protocol, not to ours.
    if (!(data instanceof ArrayBuffer) || isJsonMessage(data)) return;
    let frame;
    try {
      frame = parseFrame(data);
    } catch (e) {
      if (e instanceof FrameError && e.id !== null) this.finish(e.id)?.receiver.error(0, e.message);
      return;
    }
    const receiver = this.pending.get(frame.id)?.receiver;
    if (!receiver) return; // cancelled, or frames queued before a cancel
    switch (frame.kind) {
      case FrameKind.Start:
        receiver.start(frame.total, frame.offset, frame.length, frame.contentType);
        break;
      case FrameKind.Data:
        this.onBytes(frame.bytes.byteLength);
        receiver.data(frame.bytes);
        break;
      case FrameKind.End:
        this.finish(frame.id)?.receiver.end();
        break;
      case FrameKind.Error:
        this.finish(frame.id)?.receiver.error(frame.status, frame.message);
        break;
    }
  }
}

/** Collects one response into a buffer sized by START. */
export class Assembly {
  private buf: Uint8Array | null = null;
  private filled = 0;

  start(length: number): void {
    this.buf = new Uint8Array(length);
    this.filled = 0;
  }

  /** Returns an error text when the bytes overrun START's length. */
  push(bytes: Uint8Array): string | null {
    if (!this.buf) return 'DATA before START';
    if (this.filled + bytes.byteLength > this.buf.byteLength) {
      return `more data than the announced ${this.buf.byteLength} bytes`;
    }
    this.buf.set(bytes, this.filled);
    this.filled += bytes.byteLength;
    return null;
  }

  /** The whole body, or an error text when it is short. */
  finish(): ArrayBuffer | string {
    if (!this.buf) return 'END before START';
    if (this.filled !== this.buf.byteLength) return `got ${this.filled} of ${this.buf.byteLength} bytes`;
    return this.buf.buffer as ArrayBuffer;
  }

  get loaded(): number {
    return this.filled;
  }
}

function newStats(): LoaderStats {
  return {
    aborted: false,
    loaded: 0,
    retry: 0,
    total: 0,
    chunkCount: 0,
    bwEstimate: 0,
    loading: { start: 0, first: 0, end: 0 },
    parsing: { start: 0, end: 0 },
    buffering: { start: 0, first: 0, end: 0 },
  };
}

/** Retryable like hls.js's own loaders: network loss (0), 429 and 5xx. */
function retryableStatus(status: number): boolean {
  return status === 0 || status === 429 || status >= 500;
}

export type LoaderClass = new (config: HlsConfig) => Loader<LoaderContext>;

/** A hls.js loader class bound to one data-channel client. */
export function dcLoader(client: FileClient): LoaderClass {
  const decoder = new TextDecoder();

  return class DcLoader implements Loader<LoaderContext> {
    context: LoaderContext | null = null;
    stats: LoaderStats = newStats();
    private config: LoaderConfiguration | null = null;
    private callbacks: LoaderCallbacks<LoaderContext> | null = null;
    private requestId: number | null = null;
    private timer: number | undefined;
    private retryTimer: number | undefined;

    constructor(_config: HlsConfig) {}

    load(context: LoaderContext, config: LoaderConfiguration, callbacks: LoaderCallbacks<LoaderContext>): void {
      if (this.stats.loading.start) throw new Error('Loader can only be used once.');
      this.context = context;
      this.config = config;
      this.callbacks = callbacks;
      this.stats.loading.start = performance.now();
      this.send();
    }

    abort(): void {
      this.stop();
      this.stats.aborted = true;
      if (this.callbacks?.onAbort && this.context) this.callbacks.onAbort(this.stats, this.context, null);
    }

    destroy(): void {
      this.callbacks = null;
      this.stop();
      this.context = null;
      this.config = null;
    }

    private stop(): void {
      window.clearTimeout(this.timer);
      window.clearTimeout(this.retryTimer);
      if (this.requestId !== null) {
        client.cancel(this.requestId);
        this.requestId = null;
      }
    }

    private send(): void {
      const context = this.context;
      const config = this.config;
      if (!context || !config) return;
      const stats = this.stats;
      stats.loading.first = 0;
      stats.loaded = 0;
      stats.aborted = false;

      const { maxTimeToFirstByteMs, maxLoadTimeMs } = config.loadPolicy;
      const firstByteMs = maxTimeToFirstByteMs && Number.isFinite(maxTimeToFirstByteMs) ? maxTimeToFirstByteMs : maxLoadTimeMs;
      this.arm(firstByteMs);

      const path = new URL(context.url, location.href).pathname;
      const range =
        context.rangeEnd !== undefined && context.rangeEnd > 0
          ? { offset: context.rangeStart ?? 0, length: context.rangeEnd - (context.rangeStart ?? 0) }
          : undefined;
      const body = new Assembly();
      const id = client.get(
        path,
        {
          start: (total, _offset, length) => {
            if (this.requestId !== id) return;
            stats.loading.first = Math.max(performance.now(), stats.loading.start);
            stats.total = length || total;
            try {
              body.start(length);
            } catch (e) {
              // A length the browser cannot allocate: fail this request, not the page.
              this.requestId = null;
              client.cancel(id);
              this.fail(0, `cannot hold ${length} bytes: ${String(e)}`);
              return;
            }
            if (Number.isFinite(maxLoadTimeMs)) this.arm(maxLoadTimeMs - (stats.loading.first - stats.loading.start));
          },
          data: (bytes) => {
            if (this.requestId !== id) return;
            const err = body.push(bytes);
            if (err) {
              this.requestId = null;
              client.cancel(id);
              this.fail(0, err);
              return;
            }
            stats.loaded = body.loaded;
            stats.chunkCount++;
          },
          end: () => {
            if (this.requestId !== id) return;
            this.requestId = null;
            window.clearTimeout(this.timer);
            const result = body.finish();
            if (typeof result === 'string') {
              this.fail(0, result);
              return;
            }
            stats.loading.end = Math.max(performance.now(), stats.loading.first);
            stats.loaded = stats.total = result.byteLength;
            const ms = stats.loading.end - stats.loading.first;
            stats.bwEstimate = ms > 0 ? (stats.total * 8000) / ms : 0;
            const data = context.responseType === 'arraybuffer' ? result : decoder.decode(result);
            this.callbacks?.onSuccess({ url: context.url, data, code: 200 }, stats, context, null);
          },
          error: (status, message) => {
            if (this.requestId !== id) return;
            this.requestId = null;
            window.clearTimeout(this.timer);
            this.fail(status, message);
          },
        },
        range,
      );
      this.requestId = id;
    }

    /** (Re)starts the timeout; a request that outlives it is cancelled and retried or timed out. */
    private arm(ms: number): void {
      window.clearTimeout(this.timer);
      if (!Number.isFinite(ms) || ms <= 0) return;
      this.timer = window.setTimeout(() => this.onTimeout(), ms);
    }

    private onTimeout(): void {
      const retry = this.config?.loadPolicy.timeoutRetry;
      this.stop();
      if (retry && this.stats.retry < retry.maxNumRetry) {
        this.scheduleRetry(retry.retryDelayMs, retry.maxRetryDelayMs, retry.backoff);
        return;
      }
      if (this.callbacks && this.context) this.callbacks.onTimeout(this.stats, this.context, null);
    }

    private fail(status: number, message: string): void {
      const retry = this.config?.loadPolicy.errorRetry;
      if (retry && retryableStatus(status) && this.stats.retry < retry.maxNumRetry) {
        this.scheduleRetry(retry.retryDelayMs, retry.maxRetryDelayMs, retry.backoff);
        return;
      }
      if (this.callbacks && this.context) {
        this.callbacks.onError({ code: status, text: message }, this.context, null, this.stats);
      }
    }

    private scheduleRetry(delayMs: number, maxDelayMs: number, backoff?: string): void {
      const factor = backoff === 'linear' ? 1 : 2 ** this.stats.retry;
      this.stats.retry++;
      window.clearTimeout(this.retryTimer);
      this.retryTimer = window.setTimeout(() => this.send(), Math.min(factor * delayMs, maxDelayMs));
    }
  };
}
