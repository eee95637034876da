// Unit tests of the original protocol's reply parser (src/hijack.ts), run by `npm test`
// against the module that build.mjs --tests bundles next to this file.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HijackError, SLICE, parseHijack } from './hijack.mjs';

const enc = new TextEncoder();

function reply(fields) {
  return enc.encode(JSON.stringify(fields)).buffer;
}

function b64(bytes) {
  return Buffer.from(bytes).toString('base64');
}

test('slices as the original worker sends them (binary JSON)', () => {
  const whole = new Uint8Array(SLICE + 10).map((_, i) => i % 251);
  const first = parseHijack(
    reply({ type: 'hijackRespData', id: '7', sliceNum: 0, totalSliceNum: 2, totalLength: whole.length, payload: b64(whole.subarray(0, SLICE)) }),
  );
  assert.equal(first.kind, 'slice');
  assert.equal(first.id, '7');
  assert.deepEqual(first.bytes, whole.subarray(0, SLICE));
  const last = parseHijack(
    reply({ type: 'hijackRespData', id: '7', sliceNum: 1, totalSliceNum: 2, totalLength: whole.length, payload: b64(whole.subarray(SLICE)) }),
  );
  assert.equal(last.bytes.byteLength, 10);
});

test('an empty file is one empty slice', () => {
  const m = parseHijack(reply({ type: 'hijackRespText', id: 'a', sliceNum: 0, totalSliceNum: 1, totalLength: 0, payload: '' }));
  assert.equal(m.bytes.byteLength, 0);
});

test('errors, and messages of other protocols', () => {
  assert.deepEqual(parseHijack(reply({ type: 'hijackError', id: '3', error: 'file not found' })), {
    kind: 'error',
    id: '3',
    error: 'file not found',
  });
  assert.equal(parseHijack(new Uint8Array([2, 0, 0, 0, 1]).buffer), null, 'a binary frame');
  assert.equal(parseHijack(reply({ type: 'other' })), null);
});

test('a slice that breaks the rules names its request', () => {
  const bad = [
    { type: 'hijackRespData', id: '1', sliceNum: 0, totalSliceNum: 2, totalLength: SLICE + 1, payload: b64(new Uint8Array(5)) },
    { type: 'hijackRespData', id: '1', sliceNum: 2, totalSliceNum: 2, totalLength: 10, payload: '' },
    { type: 'hijackRespData', id: '1', sliceNum: 0, totalSliceNum: 1, totalLength: SLICE * 3, payload: '' },
    { type: 'hijackRespData', id: '1', sliceNum: -1, totalSliceNum: 1, totalLength: 0, payload: '' },
    { type: 'hijackRespData', id: '1', sliceNum: 0, totalSliceNum: 1, totalLength: 3, payload: '!!!' },
  ];
  for (const fields of bad) {
    assert.throws(() => parseHijack(reply(fields)), (e) => e instanceof HijackError && e.id === '1', JSON.stringify(fields));
  }
});
