/**
 * The AudioWorklet side of AudioOutput (audio-output.js), the playout of WebSocket audio: an
 * adaptive jitter buffer of numbered frames (22050 Hz PCM, or 48 kHz decoded Opus), a resampler
 * to the context's rate, and the processor that runs them and reports what it played.
 *
 * Port messages in: a frame {seq, utterance, samples: Float32Array, rate} (its buffer
 * transferred), {command: 'flush'} (barge-in) or {command: 'reset', epoch} (a new session). Out:
 * a status every STATUS_MS of output, and at once after a command: {epoch, playedSeq,
 * playingSeq, framesPlayed, underruns, targetMs, bufferedMs, duplicates, overflows, level},
 * playingSeq being the frame playing (for captions, which follow it: between statuses, each
 * time it changes, {epoch, playingSeq} alone), level the
 * RMS of the output since the last status, epoch the last reset's (statuses from before a reset
 * describe the old session).
 *
 * Self-contained, with no imports: a bundler copies a worklet as a file of its own (it is
 * loaded by URL), without what it would import. The jitter buffer and the resampler use no Web
 * API: node's tests import them from here (registerProcessor exists only in a worklet).
 */

/** @typedef {{seq: number, utterance: number, samples: Float32Array}} Frame */

/**
 * Frames in `seq` order, played out one sample per `pull()`. Each pull is one sample period of
 * the frames' rate (1/22050 s, say) of playback, whether it returns audio or silence: pulls are
 * this buffer's clock. Durations are kept in samples at that rate; setSampleRate() rescales them.
 *
 * It waits until it holds `target` ms (or has waited that long: a short utterance is all there
 * is) before it plays. Running dry in the middle of an utterance is an underrun, known when the
 * utterance's next frame arrives (running dry at its end is just the end): the target then grows
 * by half, quickly out of trouble; each `steadyMs` of playback without one, it shrinks by
 * `shrinkMs`, slowly, since each step trades safety for latency. The buffer empties at the end
 * of each utterance (the server sends no silence), so a new target applies from the next one.
 */
export class JitterBuffer {
  #rate;
  #min;
  #max;
  #target;
  #capacity;
  #steadyAfter;
  #shrinkStep;
  /** @type {Frame[]} queued, in ascending seq */
  #frames = [];
  #queued = 0; // samples in #frames
  /** @type {Frame | null} the frame playing */
  #current = null;
  #offset = 0; // its next sample
  #playing = false;
  #waited = 0; // samples of time spent waiting with something queued
  #steady = 0; // samples played since the last underrun or shrink
  /** @type {number | null} of the last frame played */
  #lastUtterance = null;
  /** @type {number | null} the utterance that ran dry while playing */
  #starvedIn = null;
  #lastTaken = -1; // seq of the newest frame played or playing: anything older is late
  /** @type {number | null} */
  #playedSeq = null;
  /** @type {number | null} the frame playing (the last taken), until the buffer runs dry */
  #playingSeq = null;
  #underruns = 0;
  #duplicates = 0;
  #overflows = 0;
  #played = 0; // frames played to the end

  /**
   * @param {object} [options] durations in milliseconds
   * @param {number} [options.sampleRate] of the frames, until setSampleRate() says otherwise
   * @param {number} [options.targetMs] where the target starts
   * @param {number} [options.minMs] the least it shrinks to
   * @param {number} [options.maxMs] the most it grows to
   * @param {number} [options.capacityMs] hard cap on what is held; the oldest frames go first.
   *   Room for what arrives at once: audio held while the browser would not play yet, or the
   *   replay of a resumed session (at most the server's resume_window_ms, 3 s by default)
   * @param {number} [options.steadyMs] playback without underrun before the target shrinks
   * @param {number} [options.shrinkMs] how much it shrinks by
   */
  constructor({
    sampleRate = 22050,
    targetMs = 200,
    minMs = 100,
    maxMs = 400,
    capacityMs = 5000,
    steadyMs = 10000,
    shrinkMs = 20,
  } = {}) {
    this.#rate = sampleRate;
    /** @param {number} ms */
    const samples = (ms) => Math.round((ms * sampleRate) / 1000);
    this.#target = samples(targetMs);
    this.#min = samples(minMs);
    this.#max = samples(maxMs);
    this.#capacity = samples(capacityMs);
    this.#steadyAfter = samples(steadyMs);
    this.#shrinkStep = samples(shrinkMs);
  }

  /**
   * Queue a frame. Frames already played or queued (a resumed server replays what it was not
   * told was played) and frames older than what is playing are dropped.
   * @param {Frame} frame at the buffer's rate
   * @returns {boolean} whether it was queued
   */
  push(frame) {
    let i = this.#frames.length;
    while (i > 0 && this.#frames[i - 1].seq > frame.seq) i--;
    if (frame.seq <= this.#lastTaken || this.#frames[i - 1]?.seq === frame.seq) {
      this.#duplicates++;
      return false;
    }
    this.#frames.splice(i, 0, frame);
    this.#queued += frame.samples.length;
    if (this.#starvedIn !== null) {
      if (frame.utterance === this.#starvedIn) this.#underrun();
      this.#starvedIn = null;
    }
    while (this.#queued > this.#capacity) {
      const oldest = /** @type {Frame} */ (this.#frames.shift());
      this.#queued -= oldest.samples.length;
      this.#lastTaken = Math.max(this.#lastTaken, oldest.seq); // keep playback in seq order
      this.#overflows++;
    }
    return true;
  }

  /** The next sample (0 when there is nothing to play, or while buffering). */
  pull() {
    if (!this.#playing && !this.#start()) return 0;
    if (this.#current === null) {
      if (this.#frames.length === 0) {
        this.#playing = false;
        this.#playingSeq = null;
        this.#starvedIn = this.#lastUtterance;
        return 0;
      }
      const next = /** @type {Frame} */ (this.#frames.shift());
      this.#current = next;
      this.#queued -= next.samples.length;
      this.#offset = 0;
      this.#lastTaken = next.seq;
      this.#playingSeq = next.seq;
    }
    const frame = this.#current;
    const sample = frame.samples[this.#offset++];
    if (this.#offset === frame.samples.length) {
      this.#played++;
      this.#playedSeq = frame.seq;
      this.#lastUtterance = frame.utterance;
      this.#current = null;
    }
    if (++this.#steady >= this.#steadyAfter) {
      this.#target = Math.max(this.#min, this.#target - this.#shrinkStep);
      this.#steady = 0;
    }
    return sample;
  }

  /** Drop everything queued and playing (barge-in); what was played stays played. */
  flush() {
    this.#frames = [];
    this.#queued = 0;
    this.#current = null;
    this.#playing = false;
    this.#playingSeq = null;
    this.#waited = 0;
    this.#starvedIn = null;
  }

  /**
   * Frames from now on come at `rate` (another codec: decoded Opus is 48 kHz): durations keep
   * their length. Frames at the old rate still held cannot play at the new one: they are
   * dropped (a codec changes only with the transport, between utterances as a rule).
   * @param {number} rate
   */
  setSampleRate(rate) {
    if (rate === this.#rate) return;
    /** @param {number} n */
    const scale = (n) => Math.round((n * rate) / this.#rate);
    this.#min = scale(this.#min);
    this.#max = scale(this.#max);
    this.#target = scale(this.#target);
    this.#capacity = scale(this.#capacity);
    this.#steadyAfter = scale(this.#steadyAfter);
    this.#shrinkStep = scale(this.#shrinkStep);
    this.#steady = scale(this.#steady);
    this.#rate = rate;
    this.flush();
  }

  /** Flush, and forget which seqs were played: a new session numbers its frames from 0. */
  reset() {
    this.flush();
    this.#lastTaken = -1;
    this.#playedSeq = null;
  }

  /** Seq of the last frame played to the end, or null. */
  get playedSeq() {
    return this.#playedSeq;
  }

  /** Seq of the frame playing now (or just played, when the next follows), or null. */
  get playingSeq() {
    return this.#playingSeq;
  }

  /** The rate of the frames, samples per second: pulls are this many a second. */
  get sampleRate() {
    return this.#rate;
  }

  get targetMs() {
    return (this.#target * 1000) / this.#rate;
  }

  /** Audio held: queued, and the rest of the frame playing. */
  get bufferedMs() {
    return (this.#buffered() * 1000) / this.#rate;
  }

  /** Frames played to the end. */
  get framesPlayed() {
    return this.#played;
  }

  get underruns() {
    return this.#underruns;
  }

  /** Frames dropped as already played or queued. */
  get duplicates() {
    return this.#duplicates;
  }

  /** Frames dropped because the buffer was full. */
  get overflows() {
    return this.#overflows;
  }

  #buffered() {
    return this.#queued + (this.#current ? this.#current.samples.length - this.#offset : 0);
  }

  /** Whether to start playing, on a pull while not playing. */
  #start() {
    if (this.#frames.length === 0) return false;
    if (this.#buffered() < this.#target && ++this.#waited < this.#target) return false;
    this.#playing = true;
    this.#waited = 0;
    return true;
  }

  #underrun() {
    this.#underruns++;
    this.#target = Math.min(this.#max, Math.round(this.#target * 1.5));
    this.#steady = 0;
  }
}

/**
 * Streaming sample-rate conversion by 4-point cubic (Catmull-Rom) interpolation: flat enough
 * through the speech band, and images of the 22050 Hz source well down, for 4 taps. Positions
 * are kept as exact integer fractions, so the output never drifts from the input's duration.
 */
export class Resampler {
  #inputRate;
  #outputRate;
  #phase = 0; // position between x1 and x2, in 1/outputRate of an input sample
  #x0 = 0;
  #x1 = 0;
  #x2 = 0;
  #x3 = 0;

  /**
   * @param {number} inputRate
   * @param {number} outputRate
   */
  constructor(inputRate, outputRate) {
    this.#inputRate = inputRate;
    this.#outputRate = outputRate;
  }

  /**
   * Fill `out` with samples at the output rate, calling `next()` for each input sample needed.
   * @param {Float32Array} out
   * @param {() => number} next
   */
  render(out, next) {
    for (let i = 0; i < out.length; i++) {
      while (this.#phase >= this.#outputRate) {
        this.#x0 = this.#x1;
        this.#x1 = this.#x2;
        this.#x2 = this.#x3;
        this.#x3 = next();
        this.#phase -= this.#outputRate;
      }
      const t = this.#phase / this.#outputRate;
      const x0 = this.#x0;
      const x1 = this.#x1;
      const x2 = this.#x2;
      const x3 = this.#x3;
      out[i] =
        x1 +
        0.5 *
          t *
          (x2 - x0 + t * (2 * x0 - 5 * x1 + 4 * x2 - x3 + t * (3 * (x1 - x2) + x3 - x0)));
      this.#phase += this.#inputRate;
    }
  }

  /** Forget the input's last samples (after a flush: they belong to audio that was dropped). */
  reset() {
    this.#phase = 0;
    this.#x0 = this.#x1 = this.#x2 = this.#x3 = 0;
  }
}


const STATUS_MS = 50;

// Outside a worklet (node's tests), a stand-in base class: the processor is not used there.
/** @type {typeof AudioWorkletProcessor} */
const Processor = globalThis.AudioWorkletProcessor ?? /** @type {any} */ (class {});

class OutputProcessor extends Processor {
  /** @type {JitterBuffer} */
  #buffer;
  /** @type {Resampler} */
  #resampler;
  /** @type {() => number} */
  #pull;
  #statusEvery = Math.round((STATUS_MS * sampleRate) / 1000);
  #rendered = 0; // output samples since the last status
  /** @type {number | null} */
  #toldPlaying = null; // the playingSeq last posted
  #energy = 0; // their sum of squares
  #epoch = 0;

  /** @param {{processorOptions: {jitterBuffer: object}}} options */
  constructor({ processorOptions }) {
    super();
    const buffer = (this.#buffer = new JitterBuffer(processorOptions.jitterBuffer));
    this.#resampler = new Resampler(buffer.sampleRate, sampleRate);
    this.#pull = () => buffer.pull();
    this.port.onmessage = (/** @type {MessageEvent} */ { data }) => this.#receive(data);
  }

  /** @param {any} data */
  #receive(data) {
    if (data.command === undefined) {
      if (data.rate !== this.#buffer.sampleRate) {
        this.#buffer.setSampleRate(data.rate);
        this.#resampler = new Resampler(data.rate, sampleRate);
      }
      this.#buffer.push(data);
      return;
    }
    if (data.command === 'reset') {
      this.#buffer.reset();
      this.#epoch = data.epoch;
    } else {
      this.#buffer.flush();
    }
    this.#resampler.reset();
    this.#report();
  }

  /**
   * @param {Float32Array[][]} _inputs
   * @param {Float32Array[][]} outputs
   */
  process(_inputs, outputs) {
    const out = outputs[0][0];
    this.#resampler.render(out, this.#pull);
    for (let i = 0; i < out.length; i++) this.#energy += out[i] * out[i];
    this.#rendered += out.length;
    if (this.#rendered >= this.#statusEvery) this.#report();
    else if (this.#buffer.playingSeq !== this.#toldPlaying) this.#reportPlaying();
    return true; // silence between utterances too, as long as the node lives
  }

  #reportPlaying() {
    this.#toldPlaying = this.#buffer.playingSeq;
    this.port.postMessage({ epoch: this.#epoch, playingSeq: this.#toldPlaying });
  }

  #report() {
    const buffer = this.#buffer;
    this.#toldPlaying = buffer.playingSeq;
    this.port.postMessage({
      epoch: this.#epoch,
      playedSeq: buffer.playedSeq,
      playingSeq: buffer.playingSeq,
      framesPlayed: buffer.framesPlayed,
      underruns: buffer.underruns,
      targetMs: buffer.targetMs,
      bufferedMs: buffer.bufferedMs,
      duplicates: buffer.duplicates,
      overflows: buffer.overflows,
      level: this.#rendered ? Math.sqrt(this.#energy / this.#rendered) : 0,
    });
    this.#rendered = 0;
    this.#energy = 0;
  }
}

// Only in an AudioWorkletGlobalScope: node's tests import the classes above.
if (typeof registerProcessor === 'function') {
  registerProcessor('voice-rtc-output', OutputProcessor);
}
