import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RTP_TICKS_PER_FRAME as TICKS } from '../protocol.js';
import { RtpSeqMap, WordTimeline, wordOf } from '../word-timing.js';

const TEXT = 'Hello there, world.';
// As eSpeak NG places them: offsets into TEXT, the frame each word's audio begins at.
const WORDS = [
  { text: 'Hello', start: 0, end: 5, frame: 1 },
  { text: 'there', start: 6, end: 11, frame: 14 },
  { text: 'world', start: 13, end: 18, frame: 30 },
];

/** A timeline holding one utterance (id 7, from seq 100) with WORDS. */
function timeline() {
  const words = new WordTimeline();
  words.started({ utterance_id: 7, seq: 100 });
  words.addWords({ utterance_id: 7, words: WORDS });
  return words;
}

test('a frame index is in the last word to begin at or before it', () => {
  const utterance = { id: 7, seq: 0, words: WORDS, frames: null };
  assert.equal(wordOf(utterance, 0), null); // the silence before the first word
  const hello = { utterance_id: 7, index: 0, start: 0, end: 5, text: 'Hello' };
  assert.deepEqual(wordOf(utterance, 1), hello);
  assert.equal(wordOf(utterance, 13)?.text, 'Hello');
  assert.equal(wordOf(utterance, 14)?.index, 1);
  assert.equal(wordOf(utterance, 29)?.text, 'there');
  assert.equal(wordOf(utterance, 30)?.index, 2);
  assert.equal(wordOf(utterance, 500)?.text, 'world'); // until the utterance ends
  assert.equal(wordOf({ ...utterance, words: [] }, 5), null); // a voice without word timings
});

test('a seq names the utterance and the frame within it', () => {
  const words = timeline();
  assert.equal(words.playing(100), null);
  assert.equal(words.playing(101)?.text, 'Hello');
  assert.equal(words.playing(114)?.text, 'there');
  assert.equal(words.playing(99), null); // before the utterance
  words.started({ utterance_id: 8, seq: 150 });
  words.addWords({ utterance_id: 8, words: [{ text: 'Next', start: 0, end: 4, frame: 0 }] });
  const next = { utterance_id: 8, index: 0, start: 0, end: 4, text: 'Next' };
  assert.deepEqual(words.playing(150), next);
});

test('words arriving in several events, or again, are kept once and in order', () => {
  const words = new WordTimeline();
  words.started({ utterance_id: 7, seq: 100 });
  words.addWords({ utterance_id: 7, words: WORDS.slice(0, 2) });
  assert.equal(words.playing(135)?.text, 'there'); // the rest is not known yet
  words.addWords({ utterance_id: 7, words: WORDS.slice(1) }); // 'there' again
  assert.deepEqual(
    [101, 114, 130].map((seq) => words.playing(seq)?.index),
    [0, 1, 2],
  );
});

test('words come before their utterance starts (synthesis runs ahead) and apply once it does', () => {
  const words = new WordTimeline();
  words.addWords({ utterance_id: 7, words: WORDS });
  assert.equal(words.playing(101), null); // where it starts is not known yet
  words.started({ utterance_id: 7, seq: 100 });
  assert.equal(words.playing(101)?.text, 'Hello');
  words.addWords({ utterance_id: 8, words: WORDS });
  words.ended({ utterance_id: 8, frames: 0 }); // cancelled before it started: nothing to play
  assert.equal(words.size, 1);
});

test('an ended utterance has no word past its last frame, and is forgotten once played out', () => {
  const words = timeline();
  words.ended({ utterance_id: 7, frames: 40 }); // seqs 100..139
  assert.equal(words.playing(139)?.text, 'world');
  assert.equal(words.size, 1);
  assert.equal(words.playing(140), null);
  assert.equal(words.size, 0);
});

test('what ended before it played is kept while nothing plays', () => {
  const words = timeline();
  words.ended({ utterance_id: 7, frames: 40 }); // the server sends ahead of playback
  assert.equal(words.playing(null), null); // the jitter buffer is still filling
  assert.equal(words.size, 1);
  assert.equal(words.playing(101)?.text, 'Hello');
  assert.equal(words.playing(139)?.text, 'world');
  assert.equal(words.playing(null), null); // ran dry after its last frame: played out
  assert.equal(words.size, 0);
});

test('a cancelled utterance goes once a later one plays; the oldest go beyond the cap', () => {
  const words = timeline();
  words.ended({ utterance_id: 7, frames: 20 }); // cut short; its frames flushed, never played
  words.playing(null);
  assert.equal(words.size, 1);
  words.started({ utterance_id: 8, seq: 120 });
  words.playing(120);
  assert.equal(words.size, 1); // only 8

  const many = new WordTimeline();
  for (let id = 1; id <= 100; id++) many.started({ utterance_id: id, seq: id * 10 });
  assert.equal(many.size, 32);
  many.addWords({ utterance_id: 100, words: WORDS });
  assert.equal(many.playing(1001)?.utterance_id, 100);
  many.clear();
  assert.equal(many.size, 0);
});

test('an RTP timestamp plays the seq of its stretch of speech, a frame per 960 ticks', () => {
  const syncs = new RtpSeqMap();
  assert.equal(syncs.seqAt(1, 5000), null); // no sync yet
  syncs.add({ transport_id: 1, rtp_timestamp: 5000, seq: 40 });
  assert.equal(syncs.seqAt(1, 5000), 40);
  assert.equal(syncs.seqAt(1, 5000 + TICKS - 1), 40);
  assert.equal(syncs.seqAt(1, 5000 + 10 * TICKS), 50);
  assert.equal(syncs.seqAt(1, 4999), null); // before the first stretch
  assert.equal(syncs.seqAt(2, 5000), null); // another transport's clock
});

test('the latest sync at or before the timestamp applies; the next bounds the stretch', () => {
  const syncs = new RtpSeqMap();
  syncs.add({ transport_id: 1, rtp_timestamp: 0, seq: 0 }); // frames 0..9, then silence
  syncs.add({ transport_id: 1, rtp_timestamp: 100 * TICKS, seq: 10 });
  assert.equal(syncs.seqAt(1, 9 * TICKS), 9);
  assert.equal(syncs.seqAt(1, 10 * TICKS), null); // the silence between the stretches
  assert.equal(syncs.seqAt(1, 99 * TICKS), null);
  assert.equal(syncs.seqAt(1, 100 * TICKS), 10);
  assert.equal(syncs.seqAt(1, 105 * TICKS), 15); // the last stretch runs on, unbounded
});

test('RTP timestamps wrap around 2^32', () => {
  const syncs = new RtpSeqMap();
  const before = 2 ** 32 - 2 * TICKS; // two frames before the wrap
  syncs.add({ transport_id: 3, rtp_timestamp: before, seq: 7 });
  assert.equal(syncs.seqAt(3, before + TICKS), 8);
  assert.equal(syncs.seqAt(3, 0), 9); // wrapped
  assert.equal(syncs.seqAt(3, 5 * TICKS), 14);
  syncs.add({ transport_id: 3, rtp_timestamp: 10 * TICKS, seq: 20 }); // after the wrap
  assert.equal(syncs.seqAt(3, 2 ** 32 - TICKS), 8); // the first applies, before the wrap
  assert.equal(syncs.seqAt(3, 11 * TICKS), 21);
});

test('a new transport replaces the old one\'s syncs; only a few are kept', () => {
  const syncs = new RtpSeqMap();
  syncs.add({ transport_id: 1, rtp_timestamp: 0, seq: 0 });
  syncs.add({ transport_id: 2, rtp_timestamp: 777, seq: 30 });
  assert.equal(syncs.seqAt(1, 0), null);
  assert.equal(syncs.seqAt(2, 777), 30);
  for (let i = 1; i <= 40; i++) {
    syncs.add({ transport_id: 2, rtp_timestamp: 777 + i * 100 * TICKS, seq: 30 + i * 10 });
  }
  assert.equal(syncs.seqAt(2, 777 + 40 * 100 * TICKS + TICKS), 431);
  assert.equal(syncs.seqAt(2, 777 + TICKS), null); // long forgotten
});

test('RTP time, sync and timeline together: the word an RTP timestamp plays', () => {
  const syncs = new RtpSeqMap();
  const words = timeline();
  const origin = 2 ** 32 - 20 * TICKS; // the utterance's audio wraps the RTP clock
  syncs.add({ transport_id: 1, rtp_timestamp: origin, seq: 100 });
  const wordAt = (/** @type {number} */ rtp) => words.playing(syncs.seqAt(1, rtp))?.text;
  assert.equal(wordAt(origin + TICKS), 'Hello');
  assert.equal(wordAt((origin + 14 * TICKS) % 2 ** 32), 'there');
  assert.equal(wordAt((origin + 31 * TICKS) % 2 ** 32), 'world');
});

test('follow() tells each word once, in order, even those passed between two looks', () => {
  const words = timeline();
  const told = (/** @type {number | null} */ seq) => words.follow(seq).map((w) => w?.text ?? null);
  assert.deepEqual(told(null), []); // nothing played, nothing told
  assert.deepEqual(told(100), []); // before the first word
  assert.deepEqual(told(101), ['Hello']);
  assert.deepEqual(told(105), []); // the same word
  assert.deepEqual(told(135), ['there', 'world']); // 'there' passed unseen
  assert.deepEqual(told(133), []); // a frame replayed by a new transport: no going back
  assert.equal(words.current?.text, 'world');
  assert.deepEqual(told(null), [null]); // paused
  assert.deepEqual(told(136), ['world']);
  words.clear(); // a new session
  assert.deepEqual(told(null), [null]);
  assert.deepEqual(told(null), []);
});

test('the words of a cancelled utterance are not told', () => {
  let cancelled = false;
  const words = new WordTimeline(() => cancelled);
  words.started({ utterance_id: 7, seq: 100 });
  words.addWords({ utterance_id: 7, words: WORDS });
  assert.equal(words.follow(101)[0]?.text, 'Hello');
  cancelled = true; // its frames are being flushed
  assert.deepEqual(words.follow(102), [null]);
});

test('playback that skips past an utterance\'s end tells the words it passed, then none', () => {
  const words = timeline();
  words.ended({ utterance_id: 7, frames: 40 }); // seqs 100..139
  const told = (/** @type {number | null} */ seq) => words.follow(seq).map((w) => w?.text ?? null);
  assert.deepEqual(told(101), ['Hello']);
  // A jitter buffer that skipped ahead, then silence: 'there' and 'world' were heard, at speed.
  assert.deepEqual(told(180), ['there', 'world', null]);
  assert.deepEqual(told(181), []);
});

test('the next utterance starts after the words left in the last; a cut one keeps its unplayed', () => {
  const words = timeline();
  words.ended({ utterance_id: 7, frames: 20 }); // stopped after frame 19: 'world' never played
  words.started({ utterance_id: 8, seq: 120 });
  words.addWords({ utterance_id: 8, words: [{ text: 'Next', start: 0, end: 4, frame: 0 }] });
  const told = (/** @type {number | null} */ seq) =>
    words.follow(seq).map((w) => w && `${w.utterance_id}:${w.text}`);
  assert.deepEqual(told(101), ['7:Hello']);
  assert.deepEqual(told(121), ['7:there', '8:Next']);
});
