/**
 * Plays WebSocket fallback audio: an AudioContext running pcm-player.worklet.js, which holds the
 * jitter buffer. This side decodes frames, hands them over and keeps the worklet's last status.
 */
import { decodeSamples } from './audio-frame.js';

const WORKLET_URL = new URL('./pcm-player.worklet.js', import.meta.url);
// Without a user gesture, resume() neither resolves nor rejects: it waits for one.
const RESUME_TIMEOUT_MS = 1000;

export class PcmPlayer {
  #context;
  #jitterBuffer;
  #node = null;
  #started = null;
  #epoch = 0;
  #status = {
    playedSeq: null,
    underruns: 0,
    targetMs: 0,
    bufferedMs: 0,
    duplicates: 0,
    overflows: 0,
    level: 0,
  };

  /**
   * Creates the AudioContext at once: construct it in a user gesture's handler when you can,
   * which is what browsers want before they play audio.
   * @param {object} [jitterBuffer] JitterBuffer options (jitter-buffer.js)
   */
  constructor(jitterBuffer = {}) {
    this.#context = new AudioContext({ latencyHint: 'interactive' });
    this.#jitterBuffer = jitterBuffer;
  }

  /**
   * Load the worklet and get the context running.
   * @throws {Error} when the browser will not play audio: no AudioWorklet (an insecure
   *   context), or autoplay refused
   */
  start() {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start() {
    const context = this.#context;
    if (!context.audioWorklet) {
      throw new Error('AudioWorklet is not available: the page needs a secure context (https)');
    }
    await context.audioWorklet.addModule(WORKLET_URL);
    this.#node = new AudioWorkletNode(context, 'pcm-player', {
      numberOfInputs: 0,
      outputChannelCount: [1],
      processorOptions: { jitterBuffer: this.#jitterBuffer },
    });
    this.#node.port.onmessage = ({ data }) => {
      if (data.epoch === this.#epoch) this.#status = data;
    };
    this.#node.connect(context.destination);
    if (context.state !== 'running') await settled(context.resume(), RESUME_TIMEOUT_MS);
    if (context.state !== 'running') {
      throw new Error('the AudioContext was not allowed to start (no user gesture yet)');
    }
  }

  /**
   * Queue a frame for playing.
   * @param {ArrayBuffer} message the binary WebSocket message
   * @param {{codec: number, seq: number, utterance: number}} header its header
   */
  push(message, { codec, seq, utterance }) {
    const samples = decodeSamples(message, codec);
    this.#node.port.postMessage({ seq, utterance, samples }, [samples.buffer]);
  }

  /** Barge-in: drop what is buffered, now. */
  flush() {
    this.#node?.port.postMessage({ command: 'flush' });
  }

  /** A new session: its frames count from 0 again. */
  reset() {
    if (!this.#node) return; // not started: nothing played yet
    this.#epoch++;
    this.#status = { ...this.#status, playedSeq: null };
    this.#node.port.postMessage({ command: 'reset', epoch: this.#epoch });
  }

  /** The node playing the audio, e.g. for an AnalyserNode; null until started. */
  get output() {
    return this.#node;
  }

  /** Seq of the last frame played out, or null. */
  get playedSeq() {
    return this.#status.playedSeq;
  }

  /** From the worklet's last status (at most ~50 ms old); times in seconds, level an RMS 0..1. */
  get stats() {
    const status = this.#status;
    return {
      underruns: status.underruns,
      jitterBufferTarget: status.targetMs / 1000,
      bufferedAudio: status.bufferedMs / 1000,
      duplicateFrames: status.duplicates,
      overflowFrames: status.overflows,
      audioLevel: status.level,
    };
  }

  close() {
    if (this.#node) {
      this.#node.port.onmessage = null;
      this.#node.disconnect();
    }
    this.#context.close();
  }
}

/** Resolves when `promise` settles or after `ms`, whichever is first; never rejects. */
function settled(promise, ms) {
  let timer;
  return Promise.race([
    promise.catch(() => {}),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
