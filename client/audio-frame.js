/**
 * WebSocket fallback audio frames (signaling/PROTOCOL.md, "WebSocket audio"): a 14-byte
 * big-endian header, then 20 ms of mono audio: 22050 Hz s16le PCM or G.711 mu-law, or one
 * Opus packet (RFC 6716), which decodes to 48 kHz.
 *
 * Bit 7 of the codec byte marks a warm-up frame: after a resume an Opus stream starts with up to
 * two frames the listener played already, for a new decoder to start in step with the stream
 * (Opus carries state from frame to frame). They are decoded, not played.
 */

import {
  AUDIO_FRAME_BYTE_ORDER,
  AUDIO_FRAME_CODECS,
  AUDIO_FRAME_FIELDS,
  AUDIO_FRAME_FORMAT_VERSION,
  AUDIO_FRAME_HEADER_BYTES,
  AUDIO_FRAME_WARM_UP_FLAG,
} from './protocol.js';

export const HEADER_BYTES = AUDIO_FRAME_HEADER_BYTES;

/** The codec byte of each codec, by the name `transport` requests use. */
export const CODECS = AUDIO_FRAME_CODECS;
const CODEC_PCM_S16LE = CODECS.pcm_s16le;
const CODEC_MULAW = CODECS.mulaw;

/** Where each header field starts, from the protocol's list of them ("seq:u32", ...). */
const OFFSET = fieldOffsets(AUDIO_FRAME_FIELDS);
const LITTLE_ENDIAN = /** @type {string} */ (AUDIO_FRAME_BYTE_ORDER) === 'little';

/** The rate PCM and mu-law frames are sampled at (the server's synthesis rate). */
export const PCM_RATE = 22050;

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
export function readHeader(message) {
  const view = new DataView(message);
  const version = view.getUint8(OFFSET.version);
  if (version !== AUDIO_FRAME_FORMAT_VERSION) {
    throw new Error(`audio frame format ${version}, expected ${AUDIO_FRAME_FORMAT_VERSION}`);
  }
  const codec = view.getUint8(OFFSET.codec);
  return {
    codec: codec & ~AUDIO_FRAME_WARM_UP_FLAG,
    warmUp: (codec & AUDIO_FRAME_WARM_UP_FLAG) !== 0,
    seq: view.getUint32(OFFSET.seq, LITTLE_ENDIAN),
    utterance: view.getUint32(OFFSET.utterance_id, LITTLE_ENDIAN),
    index: view.getUint32(OFFSET.index, LITTLE_ENDIAN),
  };
}

/**
 * The frame's payload: the bytes after the header.
 * @param {ArrayBuffer} message
 */
export function payload(message) {
  return new Uint8Array(message, HEADER_BYTES);
}

/**
 * The samples of a PCM or mu-law frame, as floats in [-1, 1) at PCM_RATE.
 * @param {ArrayBuffer} message
 * @param {number} codec from its header
 * @returns {Float32Array}
 */
export function decodeSamples(message, codec) {
  const view = new DataView(message, HEADER_BYTES);
  if (codec === CODEC_PCM_S16LE) {
    const samples = new Float32Array(view.byteLength >> 1);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
    return samples;
  }
  if (codec === CODEC_MULAW) {
    const samples = new Float32Array(view.byteLength);
    for (let i = 0; i < samples.length; i++) samples[i] = MULAW[view.getUint8(i)];
    return samples;
  }
  throw new Error(`not a PCM codec: ${codec}`);
}

// G.711 mu-law: each code byte (stored inverted) is a sign, a 3-bit exponent and a 4-bit mantissa.
const MULAW = Float32Array.from({ length: 256 }, (_, byte) => {
  const code = ~byte & 0xff;
  const exponent = (code >> 4) & 0x07;
  const magnitude = ((((code & 0x0f) << 3) + 0x84) << exponent) - 0x84;
  return (code & 0x80 ? -magnitude : magnitude) / 32768;
});

/**
 * @param {readonly string[]} fields "name:u8" or "name:u32", in header order
 * @returns {Record<string, number>} each field's byte offset
 */
function fieldOffsets(fields) {
  /** @type {Record<string, number>} */
  const offsets = {};
  let offset = 0;
  for (const field of fields) {
    const [name, type] = field.split(':');
    offsets[name] = offset;
    offset += Number(type.slice(1)) / 8;
  }
  return offsets;
}
