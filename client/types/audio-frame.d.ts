/**
 * @typedef {object} FrameHeader
 * @property {number} codec the codec (CODECS)
 * @property {boolean} warmUp played already: for the decoder only
 * @property {number} seq the session's frame number: what is reported as played
 * @property {number} utterance the utterance id
 * @property {number} index the frame's position within its utterance
 */
/**
 * A frame decoded: its numbers, and its samples as floats in [-1, 1) at `rate`.
 * @typedef {object} DecodedFrame
 * @property {number} seq
 * @property {number} utterance
 * @property {Float32Array} samples
 * @property {number} rate samples per second
 */
/**
 * @param {ArrayBuffer} message a binary WebSocket message
 * @returns {FrameHeader}
 */
export function readHeader(message: ArrayBuffer): FrameHeader;
/**
 * The frame's payload: the bytes after the header.
 * @param {ArrayBuffer} message
 */
export function payload(message: ArrayBuffer): Uint8Array<ArrayBuffer>;
/**
 * The samples of a PCM or mu-law frame, as floats in [-1, 1) at PCM_RATE.
 * @param {ArrayBuffer} message
 * @param {number} codec from its header
 * @returns {Float32Array}
 */
export function decodeSamples(message: ArrayBuffer, codec: number): Float32Array;
export const HEADER_BYTES: 14;
/** The codec byte of each codec, by the name `transport` requests use. */
export const CODECS: {
    pcm_s16le: number;
    mulaw: number;
    opus: number;
};
/** The rate PCM and mu-law frames are sampled at (the server's synthesis rate). */
export const PCM_RATE: 22050;
export type FrameHeader = {
    /**
     * the codec (CODECS)
     */
    codec: number;
    /**
     * played already: for the decoder only
     */
    warmUp: boolean;
    /**
     * the session's frame number: what is reported as played
     */
    seq: number;
    /**
     * the utterance id
     */
    utterance: number;
    /**
     * the frame's position within its utterance
     */
    index: number;
};
/**
 * A frame decoded: its numbers, and its samples as floats in [-1, 1) at `rate`.
 */
export type DecodedFrame = {
    seq: number;
    utterance: number;
    samples: Float32Array;
    /**
     * samples per second
     */
    rate: number;
};
