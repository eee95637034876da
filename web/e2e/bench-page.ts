// In-page half of the browser benchmark (`cargo xtask bench browser`, driven by bench.mjs):
// one file fetched over a P2P data channel with the player's own clients, the binary protocol
// (`DcClient`) and the original one as the original's player decodes it (`HijackClient`:
// JSON parse, base64 decode, slice placement), and through the gateway's relay with `fetch`.
// Also the same channel with a receiver that keeps nothing, the ceiling of the channel itself,
// and Chromium's own ceiling: two peer connections of the page, Chromium at both ends.
//
// Each transfer reports its wall time, the bytes and their SHA-256 (checked by the benchmark),
// the data-channel messages received and the time spent handling them on the page's thread.

import { Assembly, DcClient, type FileClient, type Receiver } from '../src/dc-loader';
import { HijackClient } from '../src/hijack';
import { connectP2P } from '../src/p2p';

export type Mode = 'binary' | 'base64' | 'sink' | 'relay' | 'chromium';

export interface Transfer {
  mode: Mode;
  ms: number;
  bytes: number;
  sha256: string;
  /** Data-channel messages received, and the time spent in their handlers. */
  messages: number;
  handlerMs: number;
}

declare global {
  interface Window {
    __bench: { transfer(mode: Mode, workerId: string, path: string): Promise<Transfer> };
  }
}

async function sha256(bytes: ArrayBuffer): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Resolves with the whole body, as the player's loader assembles it (or, for `sink`, with an
 * empty buffer after counting the bytes). */
function fetchOver(client: FileClient, path: string, keep: boolean): Promise<{ body: ArrayBuffer; bytes: number }> {
  return new Promise((resolve, reject) => {
    const body = new Assembly();
    let bytes = 0;
    const receiver: Receiver = {
      start: (_total, _offset, length) => {
        if (keep) body.start(length);
      },
      data: (chunk) => {
        bytes += chunk.byteLength;
        if (!keep) return;
        const err = body.push(chunk);
        if (err) reject(new Error(err));
      },
      end: () => {
        if (!keep) return resolve({ body: new ArrayBuffer(0), bytes });
        const result = body.finish();
        if (typeof result === 'string') reject(new Error(result));
        else resolve({ body: result, bytes });
      },
      error: (status, message) => reject(new Error(`${status}: ${message}`)),
    };
    client.get(path, receiver);
  });
}

async function overChannel(mode: Exclude<Mode, 'relay'>, workerId: string, path: string): Promise<Transfer> {
  const session = await connectP2P({ workerId, timeoutMs: 15_000 });
  try {
    const channel = session.channel;
    // Listeners run in the order they were added: one before the client's and one after it
    // bracket the client's handling of each message.
    let messages = 0;
    let handlerMs = 0;
    let began = 0;
    channel.addEventListener('message', () => {
      messages++;
      began = performance.now();
    });
    const client = mode === 'base64' ? new HijackClient(channel) : new DcClient(channel);
    channel.addEventListener('message', () => {
      handlerMs += performance.now() - began;
    });
    const started = performance.now();
    const { body, bytes } = await fetchOver(client, path, mode !== 'sink');
    const ms = performance.now() - started;
    return { mode, ms, bytes, sha256: mode === 'sink' ? '' : await sha256(body), messages, handlerMs };
  } finally {
    session.close();
  }
}

async function overRelay(path: string): Promise<Transfer> {
  const started = performance.now();
  const response = await fetch(path, { cache: 'no-store' });
  if (!response.ok) throw new Error(`relay: ${response.status} ${await response.text()}`);
  const body = await response.arrayBuffer();
  const ms = performance.now() - started;
  return { mode: 'relay', ms, bytes: body.byteLength, sha256: await sha256(body), messages: 0, handlerMs: 0 };
}

/** Message size and send-buffer threshold of the Chromium-to-Chromium baseline: the largest
 * message the streamer sends Chromium, and a window like the streamer's send buffer. */
const BASELINE_MESSAGE = 240 * 1024;
const BASELINE_LOW = 1024 * 1024;

/** Chromium's own ceiling: `bytes` sent between two peer connections of this page, both
 * ends Chromium's SCTP, as fast as the sender's buffer lets it. */
async function chromiumToChromium(bytes: number): Promise<Transfer> {
  const a = new RTCPeerConnection();
  const b = new RTCPeerConnection();
  try {
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
    const out = a.createDataChannel('baseline', { ordered: true });
    out.binaryType = 'arraybuffer';
    const incoming = new Promise<RTCDataChannel>((resolve) => (b.ondatachannel = (e) => resolve(e.channel)));
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription!);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription!);
    const into = await incoming;
    into.binaryType = 'arraybuffer';
    if (out.readyState !== 'open') await new Promise((resolve) => (out.onopen = resolve));
    let messages = 0;
    let received = 0;
    const done = new Promise<void>((resolve) => {
      into.onmessage = (e: MessageEvent<ArrayBuffer>) => {
        messages++;
        received += e.data.byteLength;
        if (received >= bytes) resolve();
      };
    });
    const chunk = new Uint8Array(BASELINE_MESSAGE);
    const started = performance.now();
    out.bufferedAmountLowThreshold = BASELINE_LOW;
    let sent = 0;
    while (sent < bytes) {
      if (out.bufferedAmount > BASELINE_LOW) {
        await new Promise((resolve) => (out.onbufferedamountlow = resolve));
      }
      const n = Math.min(BASELINE_MESSAGE, bytes - sent);
      out.send(n === chunk.byteLength ? chunk : chunk.subarray(0, n));
      sent += n;
    }
    await done;
    return { mode: 'chromium', ms: performance.now() - started, bytes: received, sha256: '', messages, handlerMs: 0 };
  } finally {
    a.close();
    b.close();
  }
}

window.__bench = {
  transfer: (mode, workerId, path) => {
    if (mode === 'relay') return overRelay(path);
    if (mode === 'chromium') return chromiumToChromium(Number(workerId));
    return overChannel(mode, workerId, path);
  },
};
