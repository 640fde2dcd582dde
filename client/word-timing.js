/**
 * Which word the listener hears now, for captions that follow the speech. Two pieces, no Web
 * API:
 * - RtpSeqMap: over WebRTC, the RTP timestamp being played -> the frame's `seq`, from the
 *   server's `sync` messages (one per stretch of speech: this timestamp carries this seq, and
 *   each RTP_TICKS_PER_FRAME ticks after it the next).
 * - WordTimeline: the utterances in play and their words (`utterance_words`: where each word's
 *   audio begins, in frames); a seq -> the utterance, the frame index within it, the word.
 * Both keep little: a few syncs of the current transport, the utterances not yet played out.
 */
import { RTP_TICKS_PER_FRAME } from './protocol.js';

const RTP_MODULUS = 2 ** 32;
const MAX_SYNCS = 16; // stretches of speech remembered, per transport
// Utterances held: synthesized ahead (their words come before they start), or started and not
// played out yet (the server sends up to resume_window_ms, 3 s, ahead of playback).
const MAX_UTTERANCES = 32;

/**
 * @typedef {object} Sync a `sync` message: where a stretch of speech begins in RTP time
 * @property {number} transport_id
 * @property {number} rtp_timestamp the packet carrying frame `seq`
 * @property {number} seq
 *
 * @typedef {object} Word a word being heard, as `word` events give it
 * @property {number} utterance_id
 * @property {number} index its number within the utterance's words, from 0
 * @property {number} start character offset into the utterance's text
 * @property {number} end character offset just after it
 * @property {string} text the word
 *
 * @typedef {{text: string, start: number, end: number, frame: number}} TimedWord one of
 *   `utterance_words`' words: `frame` is where its audio begins, from the utterance's start
 *
 * @typedef {object} Utterance
 * @property {number} id
 * @property {number | null} seq its first frame; null until it starts (its words come first:
 *   synthesis runs ahead of playback)
 * @property {TimedWord[]} words in order
 * @property {number | null} frames its length, once ended
 * @property {number} told the last of its words told (follow()), -1 before the first
 */

/** RTP timestamps -> seqs, for the transport in use. */
export class RtpSeqMap {
  /** @type {Sync[]} in the order sent, which is RTP order */
  #syncs = [];

  /** @param {Sync} sync */
  add(sync) {
    // A new transport's syncs replace the old one's: its RTP clock has another origin.
    if (this.#syncs[0] && this.#syncs[0].transport_id !== sync.transport_id) this.#syncs = [];
    this.#syncs.push(sync);
    if (this.#syncs.length > MAX_SYNCS) this.#syncs.shift();
  }

  /**
   * The seq of the frame the packet with this timestamp carries; null when unknown (no sync
   * of this transport yet) or when it carries silence: past a stretch's end, which the next
   * stretch's seq bounds.
   * @param {number} transportId
   * @param {number} rtpTimestamp
   * @returns {number | null}
   */
  seqAt(transportId, rtpTimestamp) {
    const syncs = this.#syncs;
    if (syncs[0]?.transport_id !== transportId) return null;
    // The latest sync at or before the timestamp: less than half the RTP clock's cycle behind.
    for (let i = syncs.length - 1; i >= 0; i--) {
      const ticks = (rtpTimestamp - syncs[i].rtp_timestamp + RTP_MODULUS) % RTP_MODULUS;
      if (ticks >= RTP_MODULUS / 2) continue;
      const seq = syncs[i].seq + Math.floor(ticks / RTP_TICKS_PER_FRAME);
      const next = syncs[i + 1];
      return next && seq >= next.seq ? null : seq;
    }
    return null;
  }

  clear() {
    this.#syncs = [];
  }
}

/** The utterances in play and their words; which word a frame is in, and which to tell. */
export class WordTimeline {
  #isCancelled;
  /** @type {Map<number, Utterance>} by id, in the order first heard of */
  #utterances = new Map();
  #newestPlayed = -1; // the newest seq seen playing
  /** @type {Word | null} the word told last, or null: none plays */
  #current = null;

  /**
   * @param {(utterance: number) => boolean} [isCancelled] its words are not told (its frames
   *   still playing are being flushed)
   */
  constructor(isCancelled = () => false) {
    this.#isCancelled = isCancelled;
  }

  /** The word being heard, as follow() last told. */
  get current() {
    return this.#current;
  }

  /** How many utterances it holds. */
  get size() {
    return this.#utterances.size;
  }

  /** @param {{utterance_id: number, seq: number}} event `utterance_started` */
  started({ utterance_id: id, seq }) {
    this.#utterance(id).seq = seq;
  }

  /** @param {{utterance_id: number, words: TimedWord[]}} event `utterance_words` */
  addWords({ utterance_id: id, words }) {
    const utterance = this.#utterance(id);
    for (const word of words) {
      const last = utterance.words.at(-1);
      if (!last || word.start > last.start) utterance.words.push(word);
    }
  }

  /** @param {{utterance_id: number, frames: number}} event `utterance_ended` */
  ended({ utterance_id: id, frames }) {
    const utterance = this.#utterances.get(id);
    if (utterance?.seq === null) this.#utterances.delete(id); // cancelled before it started
    else if (utterance) utterance.frames = frames;
  }

  /**
   * Playback is at frame `seq` (null: nothing plays): the word it is in, or null when it is in
   * none (silence, an utterance whose words are unknown — a voice without word timings —, or
   * before its first word). Forgets the utterances played out: ended, and passed. While
   * nothing plays, only those whose last frame was seen playing, for what ended may not have
   * played yet (the server sends ahead): the others go when a later frame plays, or as the
   * oldest beyond MAX_UTTERANCES.
   * @param {number | null} seq
   * @returns {Word | null}
   */
  playing(seq) {
    if (seq !== null) this.#newestPlayed = Math.max(this.#newestPlayed, seq);
    for (const utterance of this.#utterances.values()) {
      if (utterance.frames === null || utterance.seq === null) continue;
      const last = utterance.seq + utterance.frames - 1;
      if (seq === null ? this.#newestPlayed >= last : seq > last) {
        this.#utterances.delete(utterance.id);
      }
    }
    const utterance = seq === null ? null : this.#utteranceAt(seq);
    if (seq === null || utterance?.seq == null) return null;
    return wordOf(utterance, seq - utterance.seq);
  }

  /**
   * Playback is at frame `seq` (null: nothing plays): the words to tell, in order, if the word
   * heard changed (none if not; ending with null when no word plays any more). Each word is
   * told once, in order: those playback passed between two looks too (eSpeak's "a" lasts
   * 60 ms; a browser's jitter buffer may skip ahead), at once, before the one playing; and
   * since a new transport replays a frame or two already heard, an utterance's words only
   * advance. A word is told again only after a pause (the connection dropped inside it).
   * @param {number | null} seq
   * @returns {(Word | null)[]}
   */
  follow(seq) {
    /** @type {(Word | null)[]} */
    const told = [];
    for (const utterance of this.#utterances.values()) {
      if (seq === null || utterance.seq === null || utterance.seq > seq) continue;
      if (this.#isCancelled(utterance.id)) continue; // its frames are being flushed
      // Its words begun by now (or, once it ended, all it played).
      const reached = Math.min(seq - utterance.seq, (utterance.frames ?? Infinity) - 1);
      const { words } = utterance;
      while (utterance.told + 1 < words.length && words[utterance.told + 1].frame <= reached) {
        told.push(this.word(utterance.id, ++utterance.told));
      }
    }
    let word = this.playing(seq);
    if (word && this.#isCancelled(word.utterance_id)) word = null;
    const utterance = word && this.#utterances.get(word.utterance_id);
    if (word && utterance && word.index < utterance.told) {
      word = this.word(word.utterance_id, utterance.told);
    }
    if (!told.length && sameWord(word, this.#current)) return [];
    if (!told.length || !sameWord(word, told[told.length - 1])) told.push(word);
    this.#current = word;
    return told;
  }

  /**
   * Word `index` of an utterance held, or null.
   * @param {number} utteranceId
   * @param {number} index
   * @returns {Word | null}
   */
  word(utteranceId, index) {
    const word = this.#utterances.get(utteranceId)?.words[index];
    if (!word) return null;
    return { utterance_id: utteranceId, index, start: word.start, end: word.end, text: word.text };
  }

  /** A new session: its frames count from 0 again. (The next follow() tells the word is over.) */
  clear() {
    this.#utterances.clear();
    this.#newestPlayed = -1;
  }

  /**
   * The utterance `id`, held from now on (the oldest beyond MAX_UTTERANCES forgotten).
   * @param {number} id
   */
  #utterance(id) {
    let utterance = this.#utterances.get(id);
    if (!utterance) {
      utterance = { id, seq: null, words: [], frames: null, told: -1 };
      this.#utterances.set(id, utterance);
      for (const old of this.#utterances.keys()) {
        if (this.#utterances.size <= MAX_UTTERANCES) break;
        this.#utterances.delete(old);
      }
    }
    return utterance;
  }

  /**
   * The started utterance frame `seq` is in: the latest to start at or before it, unless it
   * ended before it.
   * @param {number} seq
   */
  #utteranceAt(seq) {
    /** @type {Utterance | null} */
    let found = null;
    let foundSeq = -1;
    for (const utterance of this.#utterances.values()) {
      const start = utterance.seq;
      if (start === null || start > seq || start < foundSeq) continue;
      found = utterance;
      foundSeq = start;
    }
    const ended = found?.frames != null && seq >= foundSeq + found.frames;
    return ended ? null : found;
  }
}

/**
 * @param {Word | null} a
 * @param {Word | null} b
 */
function sameWord(a, b) {
  return a?.utterance_id === b?.utterance_id && a?.index === b?.index;
}

/**
 * The word of `utterance` that frame `index` of it is in: the last to begin at or before it.
 * @param {Utterance} utterance
 * @param {number} index
 * @returns {Word | null}
 */
export function wordOf(utterance, index) {
  const words = utterance.words;
  let lo = 0;
  let hi = words.length; // words[lo..hi) begin after index, past the answer
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (words[mid].frame <= index) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return null;
  const { text, start, end } = words[lo - 1];
  return { utterance_id: utterance.id, index: lo - 1, start, end, text };
}
