import assert from 'node:assert/strict';
import { test } from 'node:test';

import { JitterBuffer } from '../audio-output.worklet.js';

const FRAME = 441; // samples in 20 ms at 22050 Hz
const MS = 22.05; // samples in 1 ms

/** A 20 ms frame whose every sample is `seq + 1`, so the output says which frame played. */
function frame(seq, utterance = 1) {
  return { seq, utterance, samples: new Float32Array(FRAME).fill(seq + 1) };
}

function pushAll(buffer, seqs, utterance = 1) {
  for (const seq of seqs) buffer.push(frame(seq, utterance));
}

function pull(buffer, samples) {
  return Array.from({ length: samples }, () => buffer.pull());
}

/** The frames heard in `samples`, in order, each once (silence left out). */
function heard(samples) {
  return samples.filter((s, i) => s !== 0 && s !== samples[i - 1]).map((s) => s - 1);
}

const range = (start, end) => Array.from({ length: end - start }, (_, i) => start + i);

test('it waits until it holds the target before it plays', () => {
  const buffer = new JitterBuffer(); // target 200 ms: 10 frames
  pushAll(buffer, range(0, 9));
  assert.ok(pull(buffer, 100 * MS).every((s) => s === 0));
  buffer.push(frame(9));
  assert.equal(buffer.pull(), 1);
  assert.deepEqual(heard(pull(buffer, 10 * FRAME)), range(0, 10));
});

test('a short utterance plays once it has waited the target', () => {
  const buffer = new JitterBuffer();
  pushAll(buffer, [0, 1, 2]);
  const out = pull(buffer, 300 * MS);
  assert.equal(out.findIndex((s) => s !== 0), 200 * MS - 1);
  assert.deepEqual(heard(out), [0, 1, 2]);
});

test('running dry mid-utterance is an underrun: the target grows, up to the maximum', () => {
  const buffer = new JitterBuffer();
  pushAll(buffer, range(0, 10));
  pull(buffer, 250 * MS); // plays all ten, then runs dry
  assert.equal(buffer.underruns, 0); // not yet known: it may have been the utterance's end
  buffer.push(frame(10));
  assert.equal(buffer.underruns, 1);
  assert.equal(buffer.targetMs, 300);

  // It now waits for 300 ms before playing again.
  pushAll(buffer, range(11, 24));
  assert.equal(buffer.pull(), 0);
  buffer.push(frame(24));
  assert.equal(buffer.pull(), 11);

  pull(buffer, 400 * MS);
  buffer.push(frame(25));
  assert.equal(buffer.targetMs, 400); // 450, capped
  pull(buffer, 500 * MS);
  buffer.push(frame(26));
  assert.equal(buffer.underruns, 3);
  assert.equal(buffer.targetMs, 400);
});

test('running dry at the end of an utterance is no underrun', () => {
  const buffer = new JitterBuffer();
  pushAll(buffer, range(0, 10), 1);
  pull(buffer, 250 * MS);
  pushAll(buffer, range(10, 20), 2);
  assert.equal(buffer.underruns, 0);
  assert.equal(buffer.targetMs, 200);
});

test('steady playback shrinks the target, down to the minimum', () => {
  const buffer = new JitterBuffer({ steadyMs: 1000, shrinkMs: 20 });
  // Frames arrive in real time after 200 ms of priming: playback never runs dry.
  pushAll(buffer, range(0, 10));
  let seq = 10;
  const play = (seconds) => {
    for (let i = 0; i < seconds * 50; i++) {
      buffer.push(frame(seq++));
      pull(buffer, FRAME);
    }
  };
  play(1.1);
  assert.equal(buffer.targetMs, 180);
  play(4);
  assert.equal(buffer.targetMs, 100);
  play(5);
  assert.equal(buffer.targetMs, 100);
  assert.equal(buffer.underruns, 0);
});

test('frames play in seq order, whatever order they arrive in', () => {
  const buffer = new JitterBuffer();
  pushAll(buffer, [3, 0, 2, 1, 5, 4, 9, 7, 8, 6]);
  assert.deepEqual(heard(pull(buffer, 300 * MS)), range(0, 10));
  assert.equal(buffer.playedSeq, 9);
});

test('frames already played or queued are dropped: a resumed server replays them', () => {
  const buffer = new JitterBuffer();
  pushAll(buffer, range(0, 10));
  pull(buffer, 100 * MS); // frames 0-4 played
  assert.equal(buffer.playedSeq, 4);
  // The server last heard that frame 2 was played: it sends 3 onwards again, and more.
  const accepted = range(3, 15).filter((seq) => buffer.push(frame(seq)));
  assert.deepEqual(accepted, range(10, 15)); // 3-4 played, 5-9 queued
  assert.equal(buffer.duplicates, 7);
  assert.deepEqual(heard(pull(buffer, 300 * MS)), range(5, 15));
});

test('the frame playing is not played twice either', () => {
  const buffer = new JitterBuffer();
  pushAll(buffer, range(0, 10));
  pull(buffer, 10 * MS); // in the middle of frame 0
  assert.equal(buffer.playedSeq, null);
  assert.equal(buffer.push(frame(0)), false);
});

test('a flush (barge-in) silences at once, and the next utterance starts clean', () => {
  const buffer = new JitterBuffer();
  pushAll(buffer, range(0, 15));
  pull(buffer, 110 * MS);
  buffer.flush();
  assert.equal(buffer.bufferedMs, 0);
  assert.ok(pull(buffer, 50 * MS).every((s) => s === 0));
  assert.equal(buffer.playedSeq, 4); // what was heard stays heard

  pushAll(buffer, range(20, 30), 2);
  assert.equal(buffer.underruns, 0);
  const out = pull(buffer, 300 * MS);
  assert.equal(out[0], 21); // buffered to the target again: plays from the first frame
  assert.deepEqual(heard(out), range(20, 30));
});

test('the buffer has a hard cap: past it the oldest frames go', () => {
  const buffer = new JitterBuffer({ capacityMs: 1000 });
  pushAll(buffer, range(0, 60));
  assert.equal(buffer.bufferedMs, 1000);
  assert.equal(buffer.overflows, 10);
  assert.equal(buffer.push(frame(5)), false); // older than what is left: late
  assert.deepEqual(heard(pull(buffer, 1000 * MS)), range(10, 60));
});

test('a reset forgets the seqs played: a new session counts from 0', () => {
  const buffer = new JitterBuffer();
  pushAll(buffer, range(0, 10));
  pull(buffer, 250 * MS);
  buffer.reset();
  assert.equal(buffer.playedSeq, null);
  assert.equal(buffer.push(frame(0)), true);
});

test('48 kHz frames (decoded Opus) play by the same rules, durations kept in time', () => {
  const buffer = new JitterBuffer({ sampleRate: 48000 }); // target 200 ms: 10 frames of 960
  const opusFrame = (seq) => ({ seq, utterance: 1, samples: new Float32Array(960).fill(seq + 1) });
  for (let seq = 0; seq < 9; seq++) buffer.push(opusFrame(seq));
  assert.equal(buffer.bufferedMs, 180);
  assert.equal(buffer.targetMs, 200);
  assert.ok(Array.from({ length: 960 }, () => buffer.pull()).every((s) => s === 0));
  buffer.push(opusFrame(9));
  assert.equal(buffer.pull(), 1);
  const rest = Array.from({ length: 10 * 960 }, () => buffer.pull());
  assert.deepEqual(heard([1, ...rest]), range(0, 10));
  assert.equal(buffer.framesPlayed, 10);
  assert.equal(buffer.playedSeq, 9);
});

test('another rate keeps the durations and what was played, and drops frames it cannot play', () => {
  const buffer = new JitterBuffer({ targetMs: 100 });
  pushAll(buffer, range(0, 5));
  pull(buffer, 5 * FRAME + 100 * MS);
  assert.equal(buffer.playedSeq, 4);
  pushAll(buffer, [5, 6], 2); // PCM still queued when Opus begins
  buffer.setSampleRate(48000);
  assert.equal(buffer.sampleRate, 48000);
  assert.equal(buffer.targetMs, 100);
  assert.equal(buffer.bufferedMs, 0);
  buffer.push({ seq: 4, utterance: 1, samples: new Float32Array(960) });
  assert.equal(buffer.duplicates, 1); // played already, at whatever rate
  buffer.push({ seq: 7, utterance: 2, samples: new Float32Array(960).fill(8) });
  assert.equal(buffer.bufferedMs, 20);
});

test('playingSeq is the frame leaving the buffer, not the last received; null when idle', () => {
  const buffer = new JitterBuffer({ targetMs: 100 }); // 5 frames
  pushAll(buffer, range(0, 8));
  assert.equal(buffer.playingSeq, null); // buffered, not played yet
  pull(buffer, 1);
  assert.equal(buffer.playingSeq, 0);
  pull(buffer, FRAME); // the last sample of frame 0, then the first of frame 1
  assert.equal(buffer.playingSeq, 1);
  assert.equal(buffer.playedSeq, 0);
  pull(buffer, 6 * FRAME + FRAME - 1); // to the end of frame 7
  assert.equal(buffer.playingSeq, 7);
  pull(buffer, 1); // ran dry
  assert.equal(buffer.playingSeq, null);
  pushAll(buffer, range(8, 20));
  pull(buffer, 3 * FRAME);
  assert.equal(buffer.playingSeq, 10);
  buffer.flush(); // barge-in
  assert.equal(buffer.playingSeq, null);
});
