// The original data-channel protocol (docs/protocol.md, section 1), which the original's
// worker nodes speak and nothing else: `{"type":"hijackReq","ts":<path>,"id":<string>}` is
// answered by the file cut into 16384-byte slices, sent in order, each base64 in a JSON
// message (`hijackRespText`/`hijackRespData`), or by one `hijackError`. `HijackClient` offers
// the same `get`/`cancel` as the binary protocol's `DcClient`, so one hls.js loader serves
// both. `parseHijack` is pure, for unit tests.

import { ChannelClient, type Receiver } from './dc-loader';

/** Slice size of the protocol: slice i holds bytes [i × SLICE, (i + 1) × SLICE). */
export const SLICE = 16384;

export type HijackMessage =
  | { kind: 'slice'; id: string; slice: number; slices: number; total: number; bytes: Uint8Array }
  | { kind: 'error'; id: string; error: string };

/** A message that claims to be a reply but cannot be one; `id` when it was readable. */
export class HijackError extends Error {
  constructor(
    message: string,
    readonly id: string | null,
  ) {
    super(message);
  }
}

const decoder = new TextDecoder();

function count(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

function base64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** One reply message (binary as the original sends them, or text), or `null` when the
 * message is not of this protocol. Throws `HijackError` for a reply that breaks its rules. */
export function parseHijack(data: ArrayBuffer | string): HijackMessage | null {
  const text = typeof data === 'string' ? data : decoder.decode(data);
  if (!text.startsWith('{')) return null;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
  const id = typeof v.id === 'string' ? v.id : typeof v.id === 'number' ? String(v.id) : null;
  if (v.type === 'hijackError') {
    if (id === null) throw new HijackError('hijackError without an id', null);
    return { kind: 'error', id, error: typeof v.error === 'string' ? v.error : 'error' };
  }
  if (v.type !== 'hijackRespText' && v.type !== 'hijackRespData') return null;
  if (id === null) throw new HijackError(`${v.type} without an id`, null);
  const slice = count(v.sliceNum);
  const slices = count(v.totalSliceNum);
  const total = count(v.totalLength);
  if (slice === null || slices === null || total === null || typeof v.payload !== 'string') {
    throw new HijackError('slice without sliceNum, totalSliceNum, totalLength or payload', id);
  }
  if (slice >= Math.max(slices, 1) || Math.ceil(total / SLICE) > Math.max(slices, 1)) {
    throw new HijackError(`slice ${slice} of ${slices} cannot hold ${total} bytes`, id);
  }
  let bytes: Uint8Array;
  try {
    bytes = base64(v.payload);
  } catch {
    throw new HijackError(`slice ${slice}: payload is not base64`, id);
  }
  const last = slice + 1 >= slices;
  const want = last ? total - slice * SLICE : SLICE;
  if (bytes.byteLength !== want) {
    throw new HijackError(`slice ${slice} has ${bytes.byteLength} bytes, not ${want}`, id);
  }
  return { kind: 'slice', id, slice, slices, total, bytes };
}

interface Request {
  receiver: Receiver;
  range?: { offset: number; length: number };
  /** The whole file, when a range of it was asked for (the protocol has no ranges). */
  whole: Uint8Array | null;
  next: number;
}

/** Requests in flight on one channel, by id; replies come in order per request. */
export class HijackClient extends ChannelClient<string, Request> {
  private nextId = 1;

  get(path: string, receiver: Receiver, range?: { offset: number; length: number }): number {
    const id = this.nextId++;
    const key = String(id);
    this.send(key, { receiver, range, whole: null, next: 0 }, JSON.stringify({ type: 'hijackReq', ts: path, id: key }));
    return id;
  }

  /** The protocol cannot stop a reply: the rest of it is dropped as it comes. */
  cancel(id: number): void {
    this.pending.delete(String(id));
  }

  protected onMessage(data: unknown): void {
    if (!(data instanceof ArrayBuffer) && typeof data !== 'string') return;
    let msg: HijackMessage | null;
    try {
      msg = parseHijack(data);
    } catch (e) {
      if (e instanceof HijackError && e.id !== null) this.finish(e.id)?.receiver.error(0, e.message);
      return;
    }
    if (!msg) return;
    const req = this.pending.get(msg.id);
    if (!req) return;
    if (msg.kind === 'error') {
      this.finish(msg.id);
      req.receiver.error(/not found|no such/i.test(msg.error) ? 404 : 500, msg.error);
      return;
    }
    if (msg.slice !== req.next) {
      this.finish(msg.id);
      req.receiver.error(0, `slice ${msg.slice} arrived, expected ${req.next}`);
      return;
    }
    if (req.next === 0) {
      if (req.range) req.whole = new Uint8Array(msg.total);
      else req.receiver.start(msg.total, 0, msg.total, '');
    }
    req.next++;
    this.onBytes(msg.bytes.byteLength);
    if (req.whole) req.whole.set(msg.bytes, msg.slice * SLICE);
    else if (msg.bytes.byteLength > 0) req.receiver.data(msg.bytes);
    if (msg.slice + 1 < msg.slices) return;
    this.finish(msg.id);
    if (req.whole && req.range) {
      const from = Math.min(req.range.offset, msg.total);
      const to = Math.min(from + req.range.length, msg.total);
      req.receiver.start(msg.total, from, to - from, '');
      if (to > from) req.receiver.data(req.whole.subarray(from, to));
    }
    req.receiver.end();
  }
}
