/**
 * Speech over the signaling WebSocket (the fallback transport): its binary frames are decoded
 * and go to an AudioOutput, which plays them, or holds them while the browser will not play yet.
 * With no output at all (the browser has no Web Audio it lets us use: captions are all there
 * is), a frame counts as played when it arrives, so that the server's playout, which waits for
 * what was played, moves on with the captions.
 */
import { readHeader } from './audio-frame.js';
import { FrameDecoder } from './frame-decoder.js';

/**
 * @typedef {import('./frame-decoder.js').WebSocketCodec} WebSocketCodec
 * @typedef {import('./audio-frame.js').DecodedFrame} DecodedFrame
 * @typedef {{push(frame: DecodedFrame): void, readonly playing: boolean,
 *   readonly playedSeq: number | null, readonly playingSeq: number | null}} FrameSink what
 *   plays the frames: an AudioOutput
 * @typedef {{isCancelled(utterance: number): boolean}} Cancellations a SessionCursor
 */

export class WebSocketAudio {
  transportId = 0; // from the server's `transport` reply
  #codec;
  #cancellations;
  #decoder;
  /** @type {FrameSink | null} */
  #output = null;
  /** @type {number | null} */
  #arrivedSeq = null;
  #closed = false;

  /**
   * @param {object} options
   * @param {WebSocketCodec} options.codec as requested
   * @param {Cancellations} options.cancellations frames of cancelled utterances, already on
   *   their way, are dropped
   * @param {ConstructorParameters<typeof FrameDecoder>[1]} [options.webCodecs] for tests
   */
  constructor({ codec, cancellations, webCodecs }) {
    this.#codec = codec;
    this.#cancellations = cancellations;
    this.#decoder = new FrameDecoder((frame) => this.#decoded(frame), webCodecs);
  }

  /** 'websocket' while the output plays, 'captions' otherwise. */
  get kind() {
    return this.#output?.playing ? 'websocket' : 'captions';
  }

  get codec() {
    return this.#codec;
  }

  /**
   * Play from the next frame on (leaving captions only).
   * @param {FrameSink} output
   */
  play(output) {
    this.#output = output;
  }

  /**
   * A binary message from the server.
   * @param {ArrayBuffer} message
   */
  receive(message) {
    if (this.#closed) return;
    const header = readHeader(message);
    if (this.#output) {
      // A warm-up frame is decoded whatever it was: the next frames decode in step with it.
      if (header.warmUp || !this.#cancellations.isCancelled(header.utterance)) {
        this.#decoder.decode(message, header);
      }
    } else if (!header.warmUp && !this.#cancellations.isCancelled(header.utterance)) {
      this.#arrivedSeq = header.seq;
    }
  }

  /** Barge-in: what is being decoded is of cancelled utterances. */
  discard() {
    this.#decoder.discard();
  }

  /**
   * What was last played, as the server wants it reported; null before anything was.
   * @returns {{transport_id: number, seq: number} | null}
   */
  position() {
    const seq = this.#output ? this.#output.playedSeq : this.#arrivedSeq;
    return seq === null || !this.transportId ? null : { transport_id: this.transportId, seq };
  }

  /**
   * The frame being played now (captions only: the last arrived), or null.
   * @returns {{seq: number} | null}
   */
  playing() {
    const seq = this.#output ? this.#output.playingSeq : this.#arrivedSeq;
    return seq === null ? null : { seq };
  }

  async stats() {
    return { codec: this.#codec, decodeErrors: this.#decoder.errors };
  }

  /** Take no more frames. The output (not this transport's) plays out what it holds. */
  close() {
    this.#closed = true;
    this.#decoder.close();
  }

  /** @param {DecodedFrame} frame */
  #decoded(frame) {
    if (!this.#cancellations.isCancelled(frame.utterance)) this.#output?.push(frame);
  }
}
