/**
 * The word of `utterance` that frame `index` of it is in: the last to begin at or before it.
 * @param {Utterance} utterance
 * @param {number} index
 * @returns {Word | null}
 */
export function wordOf(utterance: Utterance, index: number): Word | null;
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
    /** @param {Sync} sync */
    add(sync: Sync): void;
    /**
     * The seq of the frame the packet with this timestamp carries; null when unknown (no sync
     * of this transport yet) or when it carries silence: past a stretch's end, which the next
     * stretch's seq bounds.
     * @param {number} transportId
     * @param {number} rtpTimestamp
     * @returns {number | null}
     */
    seqAt(transportId: number, rtpTimestamp: number): number | null;
    clear(): void;
    #private;
}
/** The utterances in play and their words; which word a frame is in, and which to tell. */
export class WordTimeline {
    /**
     * @param {(utterance: number) => boolean} [isCancelled] its words are not told (its frames
     *   still playing are being flushed)
     */
    constructor(isCancelled?: (utterance: number) => boolean);
    /** The word being heard, as follow() last told. */
    get current(): Word | null;
    /** How many utterances it holds. */
    get size(): number;
    /** @param {{utterance_id: number, seq: number}} event `utterance_started` */
    started({ utterance_id: id, seq }: {
        utterance_id: number;
        seq: number;
    }): void;
    /** @param {{utterance_id: number, words: TimedWord[]}} event `utterance_words` */
    addWords({ utterance_id: id, words }: {
        utterance_id: number;
        words: TimedWord[];
    }): void;
    /** @param {{utterance_id: number, frames: number}} event `utterance_ended` */
    ended({ utterance_id: id, frames }: {
        utterance_id: number;
        frames: number;
    }): void;
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
    playing(seq: number | null): Word | null;
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
    follow(seq: number | null): (Word | null)[];
    /**
     * Word `index` of an utterance held, or null.
     * @param {number} utteranceId
     * @param {number} index
     * @returns {Word | null}
     */
    word(utteranceId: number, index: number): Word | null;
    /** A new session: its frames count from 0 again. (The next follow() tells the word is over.) */
    clear(): void;
    #private;
}
/**
 * a `sync` message: where a stretch of speech begins in RTP time
 */
export type Sync = {
    transport_id: number;
    /**
     * the packet carrying frame `seq`
     */
    rtp_timestamp: number;
    seq: number;
};
/**
 * a word being heard, as `word` events give it
 */
export type Word = {
    utterance_id: number;
    /**
     * its number within the utterance's words, from 0
     */
    index: number;
    /**
     * character offset into the utterance's text
     */
    start: number;
    /**
     * character offset just after it
     */
    end: number;
    /**
     * the word
     */
    text: string;
};
/**
 * one of
 *   `utterance_words`' words: `frame` is where its audio begins, from the utterance's start
 */
export type TimedWord = {
    text: string;
    start: number;
    end: number;
    frame: number;
};
export type Utterance = {
    id: number;
    /**
     * its first frame; null until it starts (its words come first:
     * synthesis runs ahead of playback)
     */
    seq: number | null;
    /**
     * in order
     */
    words: TimedWord[];
    /**
     * its length, once ended
     */
    frames: number | null;
    /**
     * the last of its words told (follow()), -1 before the first
     */
    told: number;
};
