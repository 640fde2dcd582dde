/**
 * WebSocket audio frames to samples: PCM and mu-law at once, Opus through WebCodecs'
 * AudioDecoder (asynchronous: its output comes a moment later, in order). And the choice of
 * codec: Opus needs about a tenth of PCM's bandwidth (~4 KB/s instead of 44), where the browser
 * can decode it and the server offers it.
 */
import { CODECS, decodeSamples, payload, PCM_RATE } from './audio-frame.js';

/**
 * A codec of WebSocket audio, as `transport` requests name it.
 * @typedef {'pcm_s16le' | 'mulaw' | 'opus'} WebSocketCodec
 * @typedef {import('./audio-frame.js').FrameHeader} FrameHeader
 * @typedef {import('./audio-frame.js').DecodedFrame} DecodedFrame
 */

/** One 20 ms Opus packet a frame, mono, decoded at Opus's own rate. */
export const OPUS_CONFIG = { codec: 'opus', sampleRate: 48000, numberOfChannels: 1 };
const FRAME_US = 20000;
const MAX_DECODING = 500;

/**
 * Whether this browser decodes Opus with WebCodecs.
 * @param {Pick<typeof AudioDecoder, 'isConfigSupported'> | undefined} [Decoder]
 * @returns {Promise<boolean>}
 */
export async function canDecodeOpus(Decoder = globalThis.AudioDecoder) {
  if (typeof Decoder?.isConfigSupported !== 'function') return false;
  try {
    return (await Decoder.isConfigSupported(OPUS_CONFIG)).supported === true;
  } catch {
    return false;
  }
}

/**
 * The codec to ask for: 'auto' (or 'opus') is Opus where the server offers it and the browser
 * decodes it, else PCM; 'mulaw' is mu-law where offered. PCM is the one every server has.
 * @param {'auto' | WebSocketCodec} requested the `codec` option
 * @param {readonly string[] | undefined} offered the server's (welcome.codecs)
 * @param {boolean} opusDecodes canDecodeOpus()
 * @returns {WebSocketCodec}
 */
export function chooseCodec(requested, offered = ['pcm_s16le', 'mulaw'], opusDecodes) {
  if (requested === 'mulaw' && offered.includes('mulaw')) return 'mulaw';
  const opus = requested === 'auto' || requested === 'opus';
  if (opus && opusDecodes && offered.includes('opus')) return 'opus';
  return 'pcm_s16le';
}

export class FrameDecoder {
  #onFrame;
  #Decoder;
  #Chunk;
  /** @type {AudioDecoder | null} */
  #opus = null;
  /** @type {Map<number, FrameHeader>} frames being decoded, by seq */
  #decoding = new Map();
  #errors = 0;

  /**
   * @param {(frame: DecodedFrame) => void} onFrame each frame decoded, in order
   * @param {object} [webCodecs] for tests: stand-ins for the browser's classes
   * @param {typeof AudioDecoder} [webCodecs.AudioDecoder]
   * @param {typeof EncodedAudioChunk} [webCodecs.EncodedAudioChunk]
   */
  constructor(onFrame, webCodecs = {}) {
    this.#onFrame = onFrame;
    this.#Decoder = webCodecs.AudioDecoder ?? globalThis.AudioDecoder;
    this.#Chunk = webCodecs.EncodedAudioChunk ?? globalThis.EncodedAudioChunk;
  }

  /** Frames whose decoding failed (an Opus packet the decoder refused). */
  get errors() {
    return this.#errors;
  }

  /**
   * @param {ArrayBuffer} message a binary WebSocket message
   * @param {FrameHeader} header its header
   */
  decode(message, header) {
    const { codec, seq, utterance, warmUp } = header;
    if (codec !== CODECS.opus) {
      if (warmUp) return; // PCM has no state to warm up
      this.#onFrame({ seq, utterance, samples: decodeSamples(message, codec), rate: PCM_RATE });
      return;
    }
    this.#decoding.set(seq, header);
    // Bounded, should a decoder ever swallow a packet; room for a burst (a resumed session's
    // replay is up to its resume window: 3 s, 150 frames).
    if (this.#decoding.size > MAX_DECODING) {
      this.#decoding.delete(this.#decoding.keys().next().value ?? 0);
    }
    const timestamp = seq * FRAME_US; // seq < 2^32: exact in a double
    this.#decoder().decode(new this.#Chunk({ type: 'key', timestamp, data: payload(message) }));
  }

  /** Drop what is being decoded (barge-in): it would come out after the flush. */
  discard() {
    this.#decoding.clear();
  }

  close() {
    if (this.#opus && this.#opus.state !== 'closed') this.#opus.close();
    this.#opus = null;
    this.#decoding.clear();
  }

  /** The Opus decoder; a new one after an error closed the last. */
  #decoder() {
    if (this.#opus?.state === 'configured') return this.#opus;
    this.#decoding = new Map([...this.#decoding].slice(-1)); // the frame about to be decoded
    const decoder = new this.#Decoder({
      output: (data) => this.#output(data),
      error: (error) => {
        this.#errors++;
        console.warn('voice-rtc: Opus decoding failed:', error.message);
      },
    });
    decoder.configure(OPUS_CONFIG);
    return (this.#opus = decoder);
  }

  /** @param {AudioData} data */
  #output(data) {
    try {
      // Chromium stamps some outputs a microsecond early (its own sums of durations).
      const seq = Math.round(data.timestamp / FRAME_US);
      const header = this.#decoding.get(seq);
      if (!header) return; // discarded meanwhile
      this.#decoding.delete(seq);
      if (header.warmUp) return; // it has done its work: the decoder is in step
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
      this.#onFrame({ seq: header.seq, utterance: header.utterance, samples, rate: data.sampleRate });
    } finally {
      data.close();
    }
  }
}
