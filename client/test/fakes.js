/** Stand-ins for browser classes, for the library's tests under node. */
import { HEADER_BYTES } from '../audio-frame.js';

/**
 * A binary WebSocket audio message, as the server packs it.
 * @param {{codec?: number, seq?: number, utterance?: number, index?: number,
 *   payload?: Uint8Array, warmUp?: boolean}} fields
 */
export function audioMessage({
  codec = 0,
  seq = 0,
  utterance = 1,
  index = 0,
  payload,
  warmUp = false,
}) {
  const bytes = payload ?? new Uint8Array(codec === 0 ? 882 : codec === 1 ? 441 : 60);
  const message = new ArrayBuffer(HEADER_BYTES + bytes.length);
  const view = new DataView(message);
  view.setUint8(0, 1);
  view.setUint8(1, codec | (warmUp ? 0x80 : 0));
  view.setUint32(2, seq);
  view.setUint32(6, utterance);
  view.setUint32(10, index);
  new Uint8Array(message, HEADER_BYTES).set(bytes);
  return message;
}

/** WebCodecs' AudioData, as an Opus decoder outputs it: 20 ms at 48 kHz, mono. */
export class FakeAudioData {
  sampleRate = 48000;
  closed = false;

  constructor(timestamp, samples = new Float32Array(960).fill(0.25)) {
    this.timestamp = timestamp;
    this.numberOfFrames = samples.length;
    this.samples = samples;
  }

  copyTo(destination, { planeIndex, format }) {
    if (planeIndex !== 0 || format !== 'f32-planar') throw new Error(`copyTo ${format}`);
    destination.set(this.samples);
  }

  close() {
    this.closed = true;
  }
}

export class FakeEncodedAudioChunk {
  constructor({ type, timestamp, data }) {
    this.type = type;
    this.timestamp = timestamp;
    this.data = Uint8Array.from(data);
  }
}

/** WebCodecs' AudioDecoder: records what it is given; the test says when output comes. */
export class FakeAudioDecoder {
  static supported = true;
  static instances = [];
  state = 'unconfigured';
  config = null;
  chunks = [];

  static async isConfigSupported(config) {
    return { supported: FakeAudioDecoder.supported, config };
  }

  constructor({ output, error }) {
    this.output = output;
    this.error = error;
    FakeAudioDecoder.instances.push(this);
  }

  configure(config) {
    this.config = config;
    this.state = 'configured';
  }

  decode(chunk) {
    if (this.state !== 'configured') throw new Error(`decode() while ${this.state}`);
    this.chunks.push(chunk);
  }

  /**
   * Output what the chunks decode to, in order, and forget them.
   * @param {number} [skewUs] added to each output's timestamp (Chromium's are 1 µs off at times)
   */
  flushOutput(skewUs = 0) {
    const outputs = this.chunks.map((chunk) => new FakeAudioData(chunk.timestamp + skewUs));
    this.chunks = [];
    for (const data of outputs) this.output(data);
    return outputs;
  }

  /** Fail, as a decoder given a corrupt packet does: it closes. */
  fail() {
    this.state = 'closed';
    this.error(new Error('corrupt packet'));
  }

  close() {
    this.state = 'closed';
  }
}

export const webCodecs = {
  AudioDecoder: FakeAudioDecoder,
  EncodedAudioChunk: FakeEncodedAudioChunk,
};

/** Stands in for AudioOutput: takes decoded frames, says what it played. */
export class FakeOutput {
  frames = [];
  playing = true;
  playedSeq = null;

  push(frame) {
    this.frames.push(frame);
  }
}
