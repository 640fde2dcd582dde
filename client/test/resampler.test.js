import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PCM_RATE as SOURCE_RATE } from '../audio-frame.js';
import { Resampler } from '../audio-output.worklet.js';

const QUANTUM = 128; // an AudioWorklet renders 128 frames at a time

function sine(hz, seconds, rate = SOURCE_RATE, amplitude = 0.5) {
  return Float32Array.from(
    { length: Math.round(seconds * rate) },
    (_, n) => amplitude * Math.sin((2 * Math.PI * hz * n) / rate),
  );
}

/** Resample `input` in render quanta until all of it has been pulled. */
function resample(input, outputRate) {
  const resampler = new Resampler(SOURCE_RATE, outputRate);
  let pulled = 0;
  const next = () => (pulled < input.length ? input[pulled++] : 0);
  const out = [];
  const quantum = new Float32Array(QUANTUM);
  while (pulled < input.length) {
    resampler.render(quantum, next);
    out.push(...quantum);
  }
  return Float32Array.from(out);
}

/** Frequency from the first to the last rising zero crossing, each placed by interpolation. */
function frequency(signal, rate) {
  const crossings = [];
  for (let n = 1; n < signal.length; n++) {
    if (signal[n - 1] < 0 && signal[n] >= 0) {
      crossings.push(n - 1 + signal[n - 1] / (signal[n - 1] - signal[n]));
    }
  }
  return ((crossings.length - 1) * rate) / (crossings.at(-1) - crossings[0]);
}

function rms(signal) {
  return Math.sqrt(signal.reduce((sum, s) => sum + s * s, 0) / signal.length);
}

for (const outputRate of [44100, 48000]) {
  test(`at ${outputRate} Hz the duration is kept`, () => {
    // 10 s of output, in render quanta, consumes 10 s of input: no drift, whatever the ratio.
    const resampler = new Resampler(SOURCE_RATE, outputRate);
    let pulled = 0;
    const quantum = new Float32Array(QUANTUM);
    const quanta = Math.ceil((10 * outputRate) / QUANTUM);
    for (let i = 0; i < quanta; i++) resampler.render(quantum, () => pulled++ % 2);
    const expected = (quanta * QUANTUM * SOURCE_RATE) / outputRate;
    assert.ok(Math.abs(pulled - expected) <= 1, `${pulled} pulled, ${expected} expected`);
  });

  for (const hz of [440, 3000]) {
    test(`at ${outputRate} Hz a ${hz} Hz tone keeps its frequency and level`, () => {
      const out = resample(sine(hz, 2), outputRate).subarray(QUANTUM, 2 * outputRate - QUANTUM);
      assert.ok(Math.abs(frequency(out, outputRate) - hz) < 0.05, frequency(out, outputRate));
      assert.ok(Math.abs(rms(out) / (0.5 / Math.SQRT2) - 1) < 0.02, rms(out));
    });
  }
}

test('a reset forgets the samples before it', () => {
  const resampler = new Resampler(SOURCE_RATE, 48000);
  resampler.render(new Float32Array(QUANTUM), () => 1);
  resampler.reset();
  const out = new Float32Array(QUANTUM);
  resampler.render(out, () => 0);
  assert.ok(out.every((s) => s === 0));
});
