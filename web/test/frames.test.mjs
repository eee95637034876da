// Unit tests of the binary protocol's frame parser (src/frames.ts), run by `npm test`
// against the module that build.mjs --tests bundles next to this file.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameError, FrameKind, isJsonMessage, parseFrame } from './frames.mjs';

function frame(kind, id, payload = new Uint8Array(0)) {
  const buf = new Uint8Array(5 + payload.byteLength);
  const view = new DataView(buf.buffer);
  view.setUint8(0, kind);
  view.setUint32(1, id, false);
  buf.set(payload, 5);
  return buf.buffer;
}

function startPayload(total, offset, length, contentType) {
  const type = new TextEncoder().encode(contentType);
  const buf = new Uint8Array(24 + type.byteLength);
  const view = new DataView(buf.buffer);
  view.setBigUint64(0, BigInt(total), false);
  view.setBigUint64(8, BigInt(offset), false);
  view.setBigUint64(16, BigInt(length), false);
  buf.set(type, 24);
  return buf;
}

test('START carries sizes and the content type', () => {
  const f = parseFrame(frame(1, 0xdeadbeef, startPayload(5_000_000_000, 10, 4096, 'video/mp2t')));
  assert.deepEqual(f, {
    kind: FrameKind.Start,
    id: 0xdeadbeef,
    total: 5_000_000_000,
    offset: 10,
    length: 4096,
    contentType: 'video/mp2t',
  });
});

test('DATA is a view of the bytes after the header', () => {
  const f = parseFrame(frame(2, 7, new Uint8Array([1, 2, 3])));
  assert.equal(f.kind, FrameKind.Data);
  assert.equal(f.id, 7);
  assert.deepEqual([...f.bytes], [1, 2, 3]);
});

test('END has no payload, ERROR has a status and a message', () => {
  assert.deepEqual(parseFrame(frame(3, 1)), { kind: FrameKind.End, id: 1 });
  const msg = new TextEncoder().encode('file not found');
  const payload = new Uint8Array(2 + msg.byteLength);
  new DataView(payload.buffer).setUint16(0, 404, false);
  payload.set(msg, 2);
  assert.deepEqual(parseFrame(frame(4, 9, payload)), { kind: FrameKind.Error, id: 9, status: 404, message: 'file not found' });
});

test('an empty DATA frame and an empty content type are fine', () => {
  assert.equal(parseFrame(frame(2, 3)).bytes.byteLength, 0);
  assert.equal(parseFrame(frame(1, 3, startPayload(0, 0, 0, ''))).contentType, '');
});

test('truncated or unknown frames are refused, naming the id when readable', () => {
  assert.throws(() => parseFrame(new Uint8Array([1, 0, 0]).buffer), (e) => e instanceof FrameError && e.id === null);
  assert.throws(() => parseFrame(frame(1, 5, new Uint8Array(10))), (e) => e instanceof FrameError && e.id === 5);
  assert.throws(() => parseFrame(frame(4, 6, new Uint8Array(1))), (e) => e instanceof FrameError && e.id === 6);
  assert.throws(() => parseFrame(frame(9, 8)), (e) => e instanceof FrameError && e.id === 8);
});

test('sizes beyond 2^53 are refused', () => {
  const p = startPayload(0, 0, 0, '');
  new DataView(p.buffer).setBigUint64(0, 2n ** 60n, false);
  assert.throws(() => parseFrame(frame(1, 2, p)), FrameError);
});

test('JSON messages of the original protocol are told apart', () => {
  assert.equal(isJsonMessage(new TextEncoder().encode('{"type":"hijackRespData"}').buffer), true);
  assert.equal(isJsonMessage(frame(2, 1)), false);
  assert.equal(isJsonMessage(new ArrayBuffer(0)), false);
});
