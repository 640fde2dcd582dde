import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { canDecodeOpus, chooseCodec, FrameDecoder, OPUS_CONFIG } from '../frame-decoder.js';
import { readHeader } from '../audio-frame.js';
import { audioMessage, FakeAudioDecoder, webCodecs } from './fakes.js';

beforeEach(() => {
  FakeAudioDecoder.instances = [];
  FakeAudioDecoder.supported = true;
});

test('Opus is chosen where the browser decodes it and the server offers it', () => {
  const all = ['pcm_s16le', 'mulaw', 'opus'];
  assert.equal(chooseCodec('auto', all, true), 'opus');
  assert.equal(chooseCodec('opus', all, true), 'opus');
  assert.equal(chooseCodec('auto', all, false), 'pcm_s16le'); // no WebCodecs
  assert.equal(chooseCodec('auto', ['pcm_s16le', 'mulaw'], true), 'pcm_s16le'); // older server
  assert.equal(chooseCodec('opus', ['pcm_s16le'], false), 'pcm_s16le');
  assert.equal(chooseCodec('auto', undefined, true), 'pcm_s16le');
});

test('mu-law when asked for, where offered; PCM otherwise', () => {
  assert.equal(chooseCodec('mulaw', ['pcm_s16le', 'mulaw', 'opus'], true), 'mulaw');
  assert.equal(chooseCodec('mulaw', ['pcm_s16le'], true), 'pcm_s16le');
  assert.equal(chooseCodec('pcm_s16le', ['pcm_s16le', 'opus'], true), 'pcm_s16le');
});

test('whether Opus decodes is what AudioDecoder.isConfigSupported says', async () => {
  assert.equal(await canDecodeOpus(FakeAudioDecoder), true);
  FakeAudioDecoder.supported = false;
  assert.equal(await canDecodeOpus(FakeAudioDecoder), false);
  assert.equal(await canDecodeOpus(undefined), false); // no WebCodecs at all
  const throwing = { isConfigSupported: async () => Promise.reject(new TypeError('bad')) };
  assert.equal(await canDecodeOpus(throwing), false);
});

test('PCM frames decode at once, at 22050 Hz', () => {
  const frames = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame), webCodecs);
  const message = audioMessage({ codec: 0, seq: 7, utterance: 2 });
  decoder.decode(message, readHeader(message));
  assert.equal(frames.length, 1);
  assert.deepEqual({ ...frames[0], samples: frames[0].samples.length }, {
    seq: 7,
    utterance: 2,
    samples: 441,
    rate: 22050,
  });
  assert.equal(FakeAudioDecoder.instances.length, 0);
});

test('an Opus frame is one key chunk, stamped by seq, decoded to 48 kHz', () => {
  const frames = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame), webCodecs);
  const packet = Uint8Array.from([0x48, 1, 2, 3]);
  for (const seq of [10, 11]) {
    const message = audioMessage({ codec: 2, seq, utterance: 3, payload: packet });
    decoder.decode(message, readHeader(message));
  }
  const [opus] = FakeAudioDecoder.instances;
  assert.deepEqual(opus.config, OPUS_CONFIG);
  assert.deepEqual(
    opus.chunks.map(({ type, timestamp, data }) => [type, timestamp, [...data]]),
    [
      ['key', 200000, [0x48, 1, 2, 3]],
      ['key', 220000, [0x48, 1, 2, 3]],
    ],
  );
  assert.equal(frames.length, 0); // asynchronous: nothing until the decoder outputs
  const outputs = opus.flushOutput();
  assert.deepEqual(
    frames.map(({ seq, utterance, rate, samples }) => [seq, utterance, rate, samples.length]),
    [
      [10, 3, 48000, 960],
      [11, 3, 48000, 960],
    ],
  );
  assert.equal(frames[0].samples[0], 0.25);
  assert.ok(outputs.every((data) => data.closed)); // AudioData holds memory until closed
});

test('frames discarded while decoding (barge-in) never come out', () => {
  const frames = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame), webCodecs);
  const first = audioMessage({ codec: 2, seq: 1 });
  decoder.decode(first, readHeader(first));
  decoder.discard();
  const second = audioMessage({ codec: 2, seq: 2, utterance: 2 });
  decoder.decode(second, readHeader(second));
  FakeAudioDecoder.instances[0].flushOutput();
  assert.deepEqual(
    frames.map((frame) => frame.seq),
    [2],
  );
});

test('after a decoding error the next frame gets a new decoder', () => {
  const frames = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame), webCodecs);
  const bad = audioMessage({ codec: 2, seq: 1 });
  decoder.decode(bad, readHeader(bad));
  FakeAudioDecoder.instances[0].fail();
  assert.equal(decoder.errors, 1);
  const good = audioMessage({ codec: 2, seq: 2 });
  decoder.decode(good, readHeader(good));
  assert.equal(FakeAudioDecoder.instances.length, 2);
  FakeAudioDecoder.instances[1].flushOutput();
  assert.deepEqual(
    frames.map((frame) => frame.seq),
    [2],
  );
});

test('an output stamped a microsecond off is still its frame', () => {
  const frames = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame), webCodecs);
  const message = audioMessage({ codec: 2, seq: 1013 });
  decoder.decode(message, readHeader(message));
  FakeAudioDecoder.instances[0].flushOutput(-1); // 20259999 µs: seen in Chromium
  assert.deepEqual(
    frames.map((frame) => frame.seq),
    [1013],
  );
});

test('a burst of frames (a resumed session replays 3 s at once) is decoded whole', () => {
  const frames = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame), webCodecs);
  for (let seq = 0; seq < 150; seq++) {
    const message = audioMessage({ codec: 2, seq });
    decoder.decode(message, readHeader(message));
  }
  FakeAudioDecoder.instances[0].flushOutput();
  assert.equal(frames.length, 150);
});

test('warm-up frames (after a resume) go through the decoder, and no further', () => {
  const frames = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame), webCodecs);
  for (const [seq, warmUp] of [
    [40, true],
    [41, true],
    [42, false],
  ]) {
    const message = audioMessage({ codec: 2, seq, warmUp });
    const header = readHeader(message);
    assert.equal(header.codec, 2);
    assert.equal(header.warmUp, warmUp);
    decoder.decode(message, header);
  }
  const [opus] = FakeAudioDecoder.instances;
  assert.equal(opus.chunks.length, 3); // all decoded, in order: the decoder's state follows them
  opus.flushOutput();
  assert.deepEqual(
    frames.map((frame) => frame.seq),
    [42],
  );
});
