import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LossMonitor } from '../loss-monitor.js';

/** Feed one sample a second, each interval with `percent`% of 50 packets lost; the verdicts. */
function run(monitor, percents) {
  let lost = 0;
  let received = 0;
  const verdicts = [monitor.sample(0, lost, received)];
  percents.forEach((percent, i) => {
    lost += Math.round(percent / 2);
    received += 50 - Math.round(percent / 2);
    verdicts.push(monitor.sample((i + 1) * 1000, lost, received));
  });
  return verdicts;
}

const policy = { thresholdPercent: 10, windowMs: 3000 };

test('loss above the threshold for the whole window triggers', () => {
  assert.deepEqual(run(new LossMonitor(policy), [40, 40, 40]), [false, false, false, true]);
});

test('loss at or below the threshold never triggers', () => {
  assert.ok(!run(new LossMonitor(policy), Array(20).fill(10)).includes(true));
});

test('one good interval starts the window over', () => {
  const verdicts = run(new LossMonitor(policy), [40, 40, 0, 40, 40, 40]);
  assert.deepEqual(verdicts, [false, false, false, false, false, false, true]);
});

test('an interval with no packets at all counts as lost', () => {
  const monitor = new LossMonitor(policy);
  monitor.sample(0, 5, 100);
  assert.equal(monitor.sample(1000, 5, 100), false);
  assert.equal(monitor.sample(2000, 5, 100), false);
  assert.equal(monitor.sample(3000, 5, 100), true);
});

test('a lost count that goes down (a late packet) is no negative loss', () => {
  const monitor = new LossMonitor({ thresholdPercent: 10, windowMs: 1000 });
  monitor.sample(0, 10, 100);
  assert.equal(monitor.sample(1000, 8, 150), false);
});
