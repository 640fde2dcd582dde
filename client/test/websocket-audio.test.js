import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HEADER_BYTES } from '../audio-frame.js';
import { WebSocketAudio } from '../websocket-audio.js';

function frame(seq, utterance) {
  const message = new ArrayBuffer(HEADER_BYTES + 882);
  const view = new DataView(message);
  view.setUint8(0, 1);
  view.setUint32(2, seq);
  view.setUint32(6, utterance);
  return message;
}

/** Stands in for PcmPlayer: takes frames, says what it played. */
class FakePlayer {
  pushed = [];
  playedSeq = null;

  push(_message, header) {
    this.pushed.push(header.seq);
  }
}

test('frames go to the player; the position is what it played, not what arrived', () => {
  const audio = new WebSocketAudio('pcm_s16le');
  const player = new FakePlayer();
  audio.play(player);
  audio.transportId = 3;
  [0, 1, 2].forEach((seq) => audio.receive(frame(seq, 1), 0));
  assert.deepEqual(player.pushed, [0, 1, 2]);
  assert.equal(audio.position(), null);
  player.playedSeq = 1;
  assert.deepEqual(audio.position(), { transport_id: 3, seq: 1 });
});

test('frames of cancelled utterances, already on their way, are dropped', () => {
  const audio = new WebSocketAudio('pcm_s16le');
  const player = new FakePlayer();
  audio.play(player);
  audio.receive(frame(10, 4), 4);
  audio.receive(frame(11, 5), 4);
  assert.deepEqual(player.pushed, [11]);
});

test('on captions only, a frame counts as played when it arrives', () => {
  const audio = new WebSocketAudio('mulaw');
  assert.equal(audio.kind, 'captions');
  audio.transportId = 1;
  audio.receive(frame(7, 2), 0);
  assert.deepEqual(audio.position(), { transport_id: 1, seq: 7 });
});

test('no position before the transport has its id', () => {
  const audio = new WebSocketAudio('pcm_s16le');
  audio.receive(frame(7, 2), 0);
  assert.equal(audio.position(), null);
});

test('closed, it takes no more frames', () => {
  const audio = new WebSocketAudio('pcm_s16le');
  const player = new FakePlayer();
  audio.play(player);
  audio.close();
  audio.receive(frame(0, 1), 0);
  assert.deepEqual(player.pushed, []);
});
