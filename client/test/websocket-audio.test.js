import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { SessionCursor } from '../session-cursor.js';
import { WebSocketAudio } from '../websocket-audio.js';
import { audioMessage, FakeAudioDecoder, FakeOutput, webCodecs } from './fakes.js';

beforeEach(() => {
  FakeAudioDecoder.instances = [];
});

function transport(codec = 'pcm_s16le', cursor = new SessionCursor()) {
  return new WebSocketAudio({ codec, cancellations: cursor, webCodecs });
}

test('frames go to the output; the position is what it played, not what arrived', () => {
  const audio = transport();
  const output = new FakeOutput();
  audio.play(output);
  audio.transportId = 3;
  [0, 1, 2].forEach((seq) => audio.receive(audioMessage({ seq })));
  assert.deepEqual(
    output.frames.map((frame) => frame.seq),
    [0, 1, 2],
  );
  assert.equal(audio.position(), null);
  output.playedSeq = 1;
  assert.deepEqual(audio.position(), { transport_id: 3, seq: 1 });
});

test('frames of cancelled utterances, already on their way, are dropped', () => {
  const cursor = new SessionCursor();
  const audio = transport('pcm_s16le', cursor);
  const output = new FakeOutput();
  audio.play(output);
  cursor.queued(4, cursor.speaking());
  cursor.cancel(true);
  audio.receive(audioMessage({ seq: 10, utterance: 4 }));
  audio.receive(audioMessage({ seq: 11, utterance: 5 }));
  assert.deepEqual(
    output.frames.map((frame) => frame.seq),
    [11],
  );
});

test('Opus frames are decoded, in order, to 48 kHz frames for the output', () => {
  const audio = transport('opus');
  const output = new FakeOutput();
  audio.play(output);
  [5, 6, 7].forEach((seq) => audio.receive(audioMessage({ codec: 2, seq, utterance: 1 })));
  FakeAudioDecoder.instances[0].flushOutput();
  assert.deepEqual(
    output.frames.map(({ seq, rate, samples }) => [seq, rate, samples.length]),
    [
      [5, 48000, 960],
      [6, 48000, 960],
      [7, 48000, 960],
    ],
  );
});

test('a cancel while Opus frames are being decoded drops them as they come out', () => {
  const cursor = new SessionCursor();
  const audio = transport('opus', cursor);
  const output = new FakeOutput();
  audio.play(output);
  cursor.queued(1, cursor.speaking());
  audio.receive(audioMessage({ codec: 2, seq: 0, utterance: 1 }));
  cursor.cancel(true);
  FakeAudioDecoder.instances[0].flushOutput();
  assert.deepEqual(output.frames, []);
});

test('with an output that does not play yet, nothing counts as played', () => {
  const audio = transport();
  const output = new FakeOutput();
  output.playing = false; // the browser refused: the output holds what it gets
  audio.play(output);
  audio.transportId = 1;
  assert.equal(audio.kind, 'captions');
  audio.receive(audioMessage({ seq: 7 }));
  assert.equal(output.frames.length, 1);
  assert.equal(audio.position(), null);
  output.playing = true;
  assert.equal(audio.kind, 'websocket');
});

test('with no output at all (captions only), a frame counts as played when it arrives', () => {
  const audio = transport('mulaw');
  assert.equal(audio.kind, 'captions');
  audio.transportId = 1;
  audio.receive(audioMessage({ codec: 1, seq: 7, utterance: 2 }));
  assert.deepEqual(audio.position(), { transport_id: 1, seq: 7 });
});

test('no position before the transport has its id', () => {
  const audio = transport();
  audio.receive(audioMessage({ seq: 7, utterance: 2 }));
  assert.equal(audio.position(), null);
});

test('closed, it takes no more frames', () => {
  const audio = transport();
  const output = new FakeOutput();
  audio.play(output);
  audio.close();
  audio.receive(audioMessage({ seq: 1 }));
  assert.deepEqual(output.frames, []);
});

test('warm-up frames count as nothing: not played, not arrived', () => {
  const audio = transport('opus');
  audio.transportId = 1;
  audio.receive(audioMessage({ codec: 2, seq: 9, warmUp: true }));
  assert.equal(audio.position(), null); // captions only: a warm-up is no news of playback
  const output = new FakeOutput();
  audio.play(output);
  audio.receive(audioMessage({ codec: 2, seq: 9, warmUp: true }));
  audio.receive(audioMessage({ codec: 2, seq: 10 }));
  FakeAudioDecoder.instances[0].flushOutput();
  assert.deepEqual(
    output.frames.map((frame) => frame.seq),
    [10],
  );
});
