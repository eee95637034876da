// WebRTC signaling with the gateway's `/ws/clients` WebSocket (docs/api.md): the browser
// offers, creates the `filePathChannel` data channel, and trickles its ICE candidates.
//
// `connectP2P` resolves once the channel is open, or rejects with a short reason (timeout,
// WebSocket error, ICE failure, the gateway's `error` frame) so the player can fall back.

import { api } from './api';
import { errorText } from './dom';

/** How long ICE may stay `disconnected` before the session counts as lost. */
const DISCONNECTED_GRACE_MS = 2_000;

export interface P2POptions {
  workerId: string;
  /** How long the whole attempt may take before it is abandoned. */
  timeoutMs: number;
  /** Only TURN relays (`iceTransportPolicy: "relay"`): a test that P2P works through TURN. */
  relayOnly?: boolean;
}

/** An open session. The signaling socket stays open with it: closing it ends the session. */
export interface P2PSession {
  sessionId: string;
  channel: RTCDataChannel;
  /** Calls `fn` once when the channel, the peer connection or the signaling socket ends. */
  onClose(fn: (reason: string) => void): void;
  /** The type of the local ICE candidate in use (`host`, `srflx`, `prflx`, `relay`), if known. */
  candidateType(): Promise<string | null>;
  close(): void;
}

interface SignalFrame {
  type: string;
  payload?: Record<string, unknown>;
}

/** `client-<ms>-<9 base36 chars>`, as the original client names its sessions. */
export function newSessionId(): string {
  let suffix = '';
  while (suffix.length < 9) suffix += Math.random().toString(36).slice(2);
  return `client-${Date.now()}-${suffix.slice(0, 9)}`;
}

export function signalingUrl(sessionId: string, loc: Location = location): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws/clients?client_id=${encodeURIComponent(sessionId)}`;
}

export function connectP2P(opts: P2POptions): Promise<P2PSession> {
  return new Promise<P2PSession>((resolve, reject) => {
    const sessionId = newSessionId();
    let pc: RTCPeerConnection | null = null;
    let ws: WebSocket | null = null;
    let channel: RTCDataChannel | null = null;
    let settled = false;
    let offerSent = false;
    let remoteSet = false;
    const localCandidates: RTCIceCandidate[] = [];
    const remoteCandidates: string[] = [];
    const closeListeners: ((reason: string) => void)[] = [];
    let closed = false;
    let disconnectedTimer: number | undefined;

    const timer = window.setTimeout(
      () => fail(`no data channel within ${opts.timeoutMs} ms`),
      opts.timeoutMs,
    );

    function teardown(): void {
      window.clearTimeout(timer);
      window.clearTimeout(disconnectedTimer);
      if (channel) {
        channel.onopen = channel.onclose = channel.onerror = null;
        channel.close();
      }
      if (pc) {
        pc.onicecandidate = pc.oniceconnectionstatechange = pc.onconnectionstatechange = null;
        pc.close();
      }
      if (ws) closeSocket(ws);
    }

    function fail(reason: string): void {
      if (settled) return;
      settled = true;
      teardown();
      reject(new Error(reason));
    }

    /** After the channel opened: end everything once and tell the listeners why. */
    function ended(reason: string): void {
      if (closed) return;
      closed = true;
      teardown();
      for (const fn of closeListeners) fn(reason);
    }

    function send(frame: SignalFrame): void {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
    }

    function sendCandidate(c: RTCIceCandidate): void {
      send({
        type: 'ice_candidate',
        payload: {
          candidate: c.candidate,
          session_id: sessionId,
          is_client: true,
          sdpMid: c.sdpMid,
          sdpMLineIndex: c.sdpMLineIndex,
        },
      });
    }

    function addRemoteCandidate(candidate: string): void {
      if (!pc) return;
      // Candidates errors are not fatal: others may still connect, and the timeout decides.
      pc.addIceCandidate({ candidate, sdpMid: '0', sdpMLineIndex: 0 }).catch((e: unknown) =>
        console.warn('remote ICE candidate refused:', errorText(e)),
      );
    }

    async function onSignal(frame: SignalFrame): Promise<void> {
      const p = frame.payload ?? {};
      if (typeof p.session_id === 'string' && p.session_id !== sessionId) return;
      switch (frame.type) {
        case 'webrtc_answer': {
          if (!pc || typeof p.sdp !== 'string') return;
          await pc.setRemoteDescription({ type: 'answer', sdp: p.sdp });
          remoteSet = true;
          for (const c of remoteCandidates.splice(0)) addRemoteCandidate(c);
          break;
        }
        case 'ice_candidate': {
          if (typeof p.candidate !== 'string' || p.candidate === '') return;
          if (remoteSet) addRemoteCandidate(p.candidate);
          else remoteCandidates.push(p.candidate);
          break;
        }
        case 'error': {
          const message = typeof p.message === 'string' ? p.message : 'signaling error';
          if (settled) ended(`gateway: ${message}`);
          else fail(`gateway: ${message}`);
          break;
        }
      }
    }

    async function start(): Promise<void> {
      const iceServers = await api.iceServers();
      if (settled) return;
      pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: opts.relayOnly ? 'relay' : 'all' });
      channel = pc.createDataChannel('filePathChannel', { ordered: true });
      channel.binaryType = 'arraybuffer';

      let gathered = 0;
      pc.onicecandidate = (e) => {
        if (!e.candidate || !e.candidate.candidate) {
          // End of candidates: with none at all (UDP blocked, no TURN) nothing can connect.
          if (gathered === 0) fail('no local ICE candidates (UDP blocked and no TURN server?)');
          return;
        }
        gathered++;
        if (offerSent) sendCandidate(e.candidate);
        else localCandidates.push(e.candidate);
      };
      pc.oniceconnectionstatechange = () => {
        const s = pc?.iceConnectionState;
        if (s === 'failed') {
          if (settled) ended('ICE failed');
          else fail('ICE failed');
        } else if (s === 'disconnected' && settled) {
          // Often a blip; still disconnected after the grace, the peer is gone.
          window.clearTimeout(disconnectedTimer);
          disconnectedTimer = window.setTimeout(() => {
            if (pc?.iceConnectionState === 'disconnected') ended('ICE disconnected');
          }, DISCONNECTED_GRACE_MS);
        } else {
          window.clearTimeout(disconnectedTimer);
        }
      };
      pc.onconnectionstatechange = () => {
        const s = pc?.connectionState;
        if (settled && (s === 'failed' || s === 'closed')) ended(`peer connection ${s}`);
      };
      channel.onopen = () => {
        if (settled) return;
        settled = true;
        window.clearTimeout(timer);
        resolve({
          sessionId,
          channel: channel!,
          onClose: (fn) => {
            if (closed) fn('closed');
            else closeListeners.push(fn);
          },
          close: () => ended('closed by the player'),
          candidateType: () => selectedCandidateType(pc),
        });
      };
      channel.onclose = () => {
        if (settled) ended('data channel closed');
        else fail('data channel closed');
      };

      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (settled) return;

      const socket = (ws = new WebSocket(signalingUrl(sessionId)));
      socket.onopen = () => {
        send({
          type: 'webrtc_offer',
          payload: {
            sdp: pc?.localDescription?.sdp ?? offer.sdp,
            client_id: sessionId,
            session_id: sessionId,
            worker_id: opts.workerId,
          },
        });
        offerSent = true;
        for (const c of localCandidates.splice(0)) sendCandidate(c);
      };
      socket.onmessage = (e) => {
        if (typeof e.data !== 'string') return;
        let frame: SignalFrame;
        try {
          frame = JSON.parse(e.data) as SignalFrame;
        } catch {
          return;
        }
        onSignal(frame).catch((err: unknown) => {
          if (settled) ended(errorText(err));
          else fail(errorText(err));
        });
      };
      socket.onerror = () => {
        if (settled) ended('signaling WebSocket error');
        else fail('signaling WebSocket error');
      };
      socket.onclose = (e) => {
        const reason = `signaling WebSocket closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`;
        if (settled) ended(reason);
        else fail(reason);
      };
    }

    start().catch((e: unknown) => fail(errorText(e)));
  });
}

/** The local candidate type of the pair the peer connection uses. */
async function selectedCandidateType(pc: RTCPeerConnection | null): Promise<string | null> {
  if (!pc) return null;
  const stats = await pc.getStats();
  let pairId: string | undefined;
  stats.forEach((r: { type?: string; selectedCandidatePairId?: string }) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  });
  const pair = pairId ? (stats.get(pairId) as { localCandidateId?: string } | undefined) : undefined;
  const local = pair?.localCandidateId
    ? (stats.get(pair.localCandidateId) as { candidateType?: string } | undefined)
    : undefined;
  return local?.candidateType ?? null;
}

/**
 * Closes a socket without the console error Chromium prints when a socket still
 * connecting is closed: such a socket is closed as soon as it opens.
 */
function closeSocket(ws: WebSocket): void {
  ws.onmessage = ws.onerror = ws.onclose = null;
  if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close();
  else {
    ws.onopen = null;
    if (ws.readyState === WebSocket.OPEN) ws.close();
  }
}
