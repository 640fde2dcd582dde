/**
 * WebSocket fallback audio frames (signaling/PROTOCOL.md, "WebSocket audio"): a 14-byte
 * big-endian header, then 20 ms of 22050 Hz mono audio as s16le PCM or G.711 mu-law.
 */

export const HEADER_BYTES = 14;
const FORMAT_VERSION = 1;
const CODEC_PCM_S16LE = 0;
const CODEC_MULAW = 1;

/**
 * @typedef {{codec: number, seq: number, utterance: number, index: number}} FrameHeader
 * `seq` numbers the session's frames (what is reported as played); `index` is the frame's
 * position within utterance `utterance`.
 */

/**
 * @param {ArrayBuffer} message a binary WebSocket message
 * @returns {FrameHeader}
 */
export function readHeader(message) {
  const view = new DataView(message);
  const version = view.getUint8(0);
  if (version !== FORMAT_VERSION) throw new Error(`audio frame format ${version}, expected 1`);
  return {
    codec: view.getUint8(1),
    seq: view.getUint32(2),
    utterance: view.getUint32(6),
    index: view.getUint32(10),
  };
}

/**
 * The frame's samples as floats in [-1, 1).
 * @param {ArrayBuffer} message
 * @param {number} codec from its header
 * @returns {Float32Array}
 */
export function decodeSamples(message, codec) {
  const payload = new DataView(message, HEADER_BYTES);
  if (codec === CODEC_PCM_S16LE) {
    const samples = new Float32Array(payload.byteLength >> 1);
    for (let i = 0; i < samples.length; i++) samples[i] = payload.getInt16(2 * i, true) / 32768;
    return samples;
  }
  if (codec === CODEC_MULAW) {
    const samples = new Float32Array(payload.byteLength);
    for (let i = 0; i < samples.length; i++) samples[i] = MULAW[payload.getUint8(i)];
    return samples;
  }
  throw new Error(`unknown audio codec ${codec}`);
}

// G.711 mu-law: each code byte (stored inverted) is a sign, a 3-bit exponent and a 4-bit mantissa.
const MULAW = Float32Array.from({ length: 256 }, (_, byte) => {
  const code = ~byte & 0xff;
  const exponent = (code >> 4) & 0x07;
  const magnitude = ((((code & 0x0f) << 3) + 0x84) << exponent) - 0x84;
  return (code & 0x80 ? -magnitude : magnitude) / 32768;
});
