/**
 * Speech over the signaling WebSocket (the fallback transport): its binary frames go to a
 * PcmPlayer, or, with no player (captions only: the browser will not play audio), count as
 * played when they arrive, so that the server's playout, which waits for what was played,
 * moves on with the captions.
 */
import { readHeader } from './audio-frame.js';

export class WebSocketAudio {
  transportId = 0; // from the server's `transport` reply
  #codec;
  #player = null;
  #arrivedSeq = null;
  #closed = false;

  /** @param {string} codec as requested: pcm_s16le or mulaw */
  constructor(codec) {
    this.#codec = codec;
  }

  /** 'websocket', or 'captions' until it has a player. */
  get kind() {
    return this.#player ? 'websocket' : 'captions';
  }

  /**
   * Play from the next frame on (leaving captions only).
   * @param {import('./pcm-player.js').PcmPlayer} player
   */
  play(player) {
    this.#player = player;
  }

  /**
   * A binary message from the server.
   * @param {ArrayBuffer} message
   * @param {number} cancelledThrough frames of utterances up to this id are dropped: cancel()
   *   stopped them, but they were already on their way
   */
  receive(message, cancelledThrough) {
    if (this.#closed) return;
    const header = readHeader(message);
    if (header.utterance <= cancelledThrough) return;
    if (this.#player) this.#player.push(message, header);
    else this.#arrivedSeq = header.seq;
  }

  /** What was last played, as the server wants it reported; null before anything was. */
  position() {
    const seq = this.#player ? this.#player.playedSeq : this.#arrivedSeq;
    return seq === null || !this.transportId ? null : { transport_id: this.transportId, seq };
  }

  async stats() {
    return { codec: this.#codec };
  }

  /** Take no more frames. The player (not this transport's) plays out what it holds. */
  close() {
    this.#closed = true;
  }
}
