/**
 * Plays WebSocket fallback audio: an AudioContext running audio-output.worklet.js, which holds
 * the jitter buffer. This side hands decoded frames over and keeps the worklet's last status.
 *
 * Browsers let a page play audio only after a user gesture, and some (Firefox, Safari) only
 * within a few seconds of one: the context is created and asked to run at construction, which
 * belongs in the gesture's handler (VoiceClient.connect() does it), so that a fallback to the
 * WebSocket long after still plays. Refused all the same, it holds what it is given until
 * resume() is called from another gesture, and then plays it: nothing is lost.
 */

const WORKLET_URL = new URL('./audio-output.worklet.js', import.meta.url);
// Without a user gesture, resume() neither resolves nor rejects: it waits for one. With one, the
// audio device may take a while to open (seen: 0.3-0.7 s, Firefox on PulseAudio).
const RESUME_TIMEOUT_MS = 3000;
// What is held while the browser will not play yet: 5 s, more than the server sends unplayed
// (its resume_window_ms) before it waits for the listener.
const MAX_HELD_FRAMES = 250;

/**
 * @typedef {import('./audio-frame.js').DecodedFrame} DecodedFrame
 *
 * @typedef {object} OutputStats the jitter buffer's, from the worklet's last status (at most
 *   ~50 ms old); times in seconds
 * @property {number} underruns times it ran dry mid-utterance
 * @property {number} jitterBufferTarget what it fills to before it plays
 * @property {number} bufferedAudio what it holds now
 * @property {number} framesPlayed frames played to the end, this session
 * @property {number} duplicateFrames frames dropped as already played or queued
 * @property {number} overflowFrames frames dropped because it was full
 * @property {number} audioLevel RMS of the output, 0..1
 */

export class AudioOutput {
  /** @type {AudioContext} */
  #context;
  #jitterBuffer;
  /** @type {AudioWorkletNode | null} */
  #node = null;
  /** @type {Promise<void> | null} */
  #loading = null;
  /** @type {Promise<void>} settles once the context runs, or the browser has had its time */
  #resumed;
  /** @type {MediaStreamAudioSourceNode | null} WebRTC's stream, when played here */
  #stream = null;
  /** @type {DecodedFrame[]} frames given while not playing */
  #held = [];
  #heldDropped = 0;
  #epoch = 0;
  #status = {
    playedSeq: /** @type {number | null} */ (null),
    playingSeq: /** @type {number | null} */ (null),
    framesPlayed: 0,
    underruns: 0,
    targetMs: 0,
    bufferedMs: 0,
    duplicates: 0,
    overflows: 0,
    level: 0,
  };
  /** Called when the context starts running again, or at last, once the worklet is loaded. */
  onplaying = () => {};

  /**
   * Creates the AudioContext and asks it to run, at once: construct it in a user gesture's
   * handler.
   * @param {object} [jitterBuffer] JitterBuffer options (audio-output.worklet.js)
   * @throws {Error} where there is no Web Audio
   */
  constructor(jitterBuffer = {}) {
    this.#context = new AudioContext({ latencyHint: 'interactive' });
    this.#resumed = settled(this.#context.resume(), RESUME_TIMEOUT_MS);
    this.#jitterBuffer = jitterBuffer;
    // The browser may let it run later by itself (a click anywhere on the page, say).
    this.#context.addEventListener('statechange', () => {
      if (!this.playing) return;
      this.#release();
      this.onplaying();
    });
  }

  /** Whether audio plays: the worklet is loaded and the context runs. */
  get playing() {
    return this.#node !== null && this.#context.state === 'running';
  }

  /**
   * Load the worklet and wait (a moment) for the context to run.
   * @returns {Promise<boolean>} whether it plays; if not (no user gesture yet), what it is given
   *   is held until resume()
   * @throws {Error} when it never can: no AudioWorklet (outside a secure context)
   */
  async start() {
    this.#loading ??= this.#load();
    await this.#loading;
    await this.#resumed;
    this.#release();
    return this.playing;
  }

  /**
   * Ask again to play, and play what is held: call it from a user gesture's handler (it asks
   * at once, before anything is awaited, while the gesture counts).
   * @returns {Promise<boolean>} whether it plays now
   */
  resume() {
    this.#resumed = settled(this.#context.resume(), RESUME_TIMEOUT_MS);
    return this.start();
  }

  /**
   * Queue a frame for playing (or hold it, while the browser will not play).
   * @param {DecodedFrame} frame
   */
  push(frame) {
    if (!this.playing) {
      this.#held.push(frame);
      if (this.#held.length > MAX_HELD_FRAMES) {
        this.#held.shift();
        this.#heldDropped++;
      }
      return;
    }
    this.#post(frame);
  }

  /**
   * Play a MediaStream through this context instead of a media element: for WebRTC speech a
   * browser refuses to play in an element after the gesture has passed, while this context,
   * started in the gesture, runs.
   * @param {MediaStream} stream
   * @returns {Promise<boolean>} whether it plays
   */
  async playStream(stream) {
    const context = this.#context;
    await this.#resumed;
    if (context.state !== 'running') return false;
    this.stopStream();
    this.#stream = context.createMediaStreamSource(stream);
    this.#stream.connect(context.destination);
    return true;
  }

  stopStream() {
    this.#stream?.disconnect();
    this.#stream = null;
  }

  /** Barge-in: drop what is buffered, now. */
  flush() {
    this.#held = [];
    this.#node?.port.postMessage({ command: 'flush' });
  }

  /** A new session: its frames count from 0 again. */
  reset() {
    this.#held = [];
    if (!this.#node) return; // nothing played yet
    this.#epoch++;
    this.#status = { ...this.#status, playedSeq: null, playingSeq: null, framesPlayed: 0 };
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

  /**
   * Seq of the frame playing now, or null when nothing plays: as the worklet said (it tells
   * each change), not counting the audio device's own latency.
   */
  get playingSeq() {
    return this.playing ? this.#status.playingSeq : null;
  }

  /** @returns {OutputStats} */
  get stats() {
    const status = this.#status;
    return {
      underruns: status.underruns,
      jitterBufferTarget: status.targetMs / 1000,
      bufferedAudio: status.bufferedMs / 1000,
      framesPlayed: status.framesPlayed,
      duplicateFrames: status.duplicates,
      overflowFrames: status.overflows + this.#heldDropped,
      audioLevel: status.level,
    };
  }

  close() {
    this.#held = [];
    this.stopStream();
    if (this.#node) {
      this.#node.port.onmessage = null;
      this.#node.disconnect();
    }
    this.#context.close().catch(() => {});
  }

  async #load() {
    const context = this.#context;
    if (!context.audioWorklet) {
      throw new Error('AudioWorklet is not available: the page needs a secure context (https)');
    }
    await context.audioWorklet.addModule(WORKLET_URL);
    const node = new AudioWorkletNode(context, 'voice-rtc-output', {
      numberOfInputs: 0,
      outputChannelCount: [1],
      processorOptions: { jitterBuffer: this.#jitterBuffer },
    });
    node.port.onmessage = ({ data }) => {
      // A status, or between two, the frame playing now.
      if (data.epoch === this.#epoch) this.#status = { ...this.#status, ...data };
    };
    node.connect(context.destination);
    this.#node = node;
  }

  /** Hand what is held to the worklet, once it plays. */
  #release() {
    if (!this.playing) return;
    const held = this.#held;
    this.#held = [];
    for (const frame of held) this.#post(frame);
  }

  /** @param {DecodedFrame} frame */
  #post(frame) {
    const { seq, utterance, samples, rate } = frame;
    this.#node?.port.postMessage({ seq, utterance, samples, rate }, [samples.buffer]);
  }
}

/**
 * Resolves when `promise` settles or after `ms`, whichever is first; never rejects.
 * @param {Promise<unknown>} promise
 * @param {number} ms
 */
function settled(promise, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  return Promise.race([
    promise.catch(() => {}),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
