import assert from 'node:assert/strict';
import { test } from 'node:test';

import { StatsReporter, statsEvent } from '../stats-reporter.js';

test('the summary is in the telemetry schema: milliseconds, counts never negative', () => {
  const event = statsEvent({
    state: 'connected',
    transport: 'webrtc',
    rtt: 0.02,
    jitter: 0.001,
    packetsReceived: 100,
    packetsLost: -1, // a late packet arrived after all
    averageJitterBufferDelay: 0.04,
    currentRoundTripTime: 0.003,
  });
  assert.deepEqual(event, {
    type: 'stats',
    transport: 'webrtc',
    rtt_ms: 3,
    jitter_ms: 1,
    jitter_buffer_ms: 40,
    packets_received: 100,
    packets_lost: 0,
  });
});

test('WebSocket audio: the heartbeat RTT and the jitter buffer target stand in', () => {
  const event = statsEvent({
    state: 'degraded',
    transport: 'websocket',
    rtt: 0.015,
    jitterBufferTarget: 0.2,
  });
  assert.equal(event.rtt_ms, 15);
  assert.equal(event.jitter_buffer_ms, 200);
  assert.equal(event.packets_received, undefined);
});

test('underruns are reported as they grow, and counted anew for a new output', async () => {
  const recorded = [];
  let stats = { state: 'degraded', transport: 'websocket', rtt: null, underruns: 2 };
  const reporter = new StatsReporter({ record: (e) => recorded.push(e), stats: async () => stats });
  await reporter.report();
  await reporter.report();
  stats = { ...stats, underruns: 5 };
  await reporter.report();
  stats = { ...stats, underruns: 1 }; // a new output counts from 0
  await reporter.report();
  assert.deepEqual(
    recorded.filter((e) => e.type === 'underrun').map((e) => e.count),
    [2, 3, 1],
  );
  assert.equal(recorded.filter((e) => e.type === 'stats').length, 4);
});

test('nothing is reported while not connected', async () => {
  const recorded = [];
  const reporter = new StatsReporter({
    record: (e) => recorded.push(e),
    stats: async () => ({ state: 'reconnecting', transport: null, rtt: null }),
  });
  await reporter.report();
  assert.deepEqual(recorded, []);
});
