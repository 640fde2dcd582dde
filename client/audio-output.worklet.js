/**
 * The AudioWorklet side of AudioOutput (audio-output.js): plays decoded frames through the
 * jitter buffer, resampled from their rate (22050 Hz PCM, 48 kHz Opus) to the context's, and
 * reports what it played.
 *
 * Port messages in: a frame {seq, utterance, samples: Float32Array, rate} (its buffer
 * transferred), {command: 'flush'} (barge-in) or {command: 'reset', epoch} (a new session). Out:
 * a status every STATUS_MS of output, and at once after a command: {epoch, playedSeq,
 * framesPlayed, underruns, targetMs, bufferedMs, duplicates, overflows, level}, level being the
 * RMS of the output since the last status, epoch the last reset's (statuses from before a reset
 * describe the old session).
 */
import { JitterBuffer, Resampler } from './jitter-buffer.js';

const STATUS_MS = 50;

class OutputProcessor extends AudioWorkletProcessor {
  /** @type {JitterBuffer} */
  #buffer;
  /** @type {Resampler} */
  #resampler;
  /** @type {() => number} */
  #pull;
  #statusEvery = Math.round((STATUS_MS * sampleRate) / 1000);
  #rendered = 0; // output samples since the last status
  #energy = 0; // their sum of squares
  #epoch = 0;

  /** @param {{processorOptions: {jitterBuffer: object}}} options */
  constructor({ processorOptions }) {
    super();
    const buffer = (this.#buffer = new JitterBuffer(processorOptions.jitterBuffer));
    this.#resampler = new Resampler(buffer.sampleRate, sampleRate);
    this.#pull = () => buffer.pull();
    this.port.onmessage = ({ data }) => this.#receive(data);
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
    return true; // silence between utterances too, as long as the node lives
  }

  #report() {
    const buffer = this.#buffer;
    this.port.postMessage({
      epoch: this.#epoch,
      playedSeq: buffer.playedSeq,
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

registerProcessor('voice-rtc-output', OutputProcessor);
