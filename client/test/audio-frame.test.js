import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeSamples, HEADER_BYTES, readHeader } from '../audio-frame.js';

/** A frame as the server packs it (voice_rtc/transports/websocket.py). */
function frame({ codec = 0, seq = 0, utterance = 1, index = 0, payload = new Uint8Array(0) }) {
  const message = new ArrayBuffer(HEADER_BYTES + payload.length);
  const view = new DataView(message);
  view.setUint8(0, 1);
  view.setUint8(1, codec);
  view.setUint32(2, seq);
  view.setUint32(6, utterance);
  view.setUint32(10, index);
  new Uint8Array(message, HEADER_BYTES).set(payload);
  return message;
}

test('the header is read big-endian', () => {
  const header = readHeader(frame({ codec: 1, seq: 0x01020304, utterance: 70000, index: 12 }));
  assert.deepEqual(header, { codec: 1, warmUp: false, seq: 0x01020304, utterance: 70000, index: 12 });
});

test('another format version is refused', () => {
  const message = frame({});
  new DataView(message).setUint8(0, 2);
  assert.throws(() => readHeader(message), /format 2/);
});

test('pcm_s16le samples are little-endian and scaled to [-1, 1)', () => {
  const pcm = new Int16Array([0, 16384, -32768, 32767, -1]);
  const payload = new Uint8Array(pcm.buffer); // node runs on little-endian machines
  const samples = decodeSamples(frame({ payload }), 0);
  assert.deepEqual(Array.from(samples), [0, 0.5, -1, 32767 / 32768, -1 / 32768]);
});

test('mu-law decodes as G.711 does', () => {
  // Inverted codes: 0xff and 0x7f are the two zeros, 0x80 and 0x00 the extremes.
  // Expected values from the server's decoder (voice_rtc/audio.py).
  const payload = new Uint8Array([0xff, 0x7f, 0x80, 0x00, 0xfe, 0x7e, 0xef]);
  const samples = Array.from(decodeSamples(frame({ codec: 1, payload }), 1));
  assert.deepEqual(
    samples.map((s) => s * 32768 + 0), // + 0: -0 is 0
    [0, 0, 32124, -32124, 8, -8, 132],
  );
});

test('a 20 ms frame has 441 samples in either codec', () => {
  assert.equal(decodeSamples(frame({ payload: new Uint8Array(882) }), 0).length, 441);
  assert.equal(decodeSamples(frame({ codec: 1, payload: new Uint8Array(441) }), 1).length, 441);
});

test('bit 7 of the codec byte marks a warm-up frame', () => {
  const header = readHeader(frame({ codec: 0x82, seq: 5 }));
  assert.equal(header.codec, 2);
  assert.equal(header.warmUp, true);
});
