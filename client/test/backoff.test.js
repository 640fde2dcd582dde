import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay, RetrySchedule } from '../backoff.js';

const POLICY = { baseMs: 1000, capMs: 30000, maxAttempts: 4, stableAfterMs: 10000 };

test('the window doubles with each attempt up to the cap', () => {
  const top = () => 1 - Number.EPSILON;
  const windows = [0, 1, 2, 3, 4, 5, 6].map((n) => Math.round(backoffDelay(n, 1000, 30000, top)));
  assert.deepEqual(windows, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
});

test('full jitter: the delay is uniform over the whole window', () => {
  assert.equal(backoffDelay(3, 1000, 30000, () => 0), 0);
  assert.equal(backoffDelay(3, 1000, 30000, () => 0.25), 2000);
  for (let i = 0; i < 1000; i++) {
    const delay = backoffDelay(2, 1000, 30000);
    assert.ok(delay >= 0 && delay < 4000, delay);
  }
});

test('attempts count from 1 up to the maximum, then the schedule gives up', () => {
  const schedule = new RetrySchedule(POLICY, () => 0.5);
  schedule.connected(0);
  schedule.dropped(1000);
  const tries = [1, 2, 3, 4].map(() => schedule.next());
  assert.deepEqual(tries, [
    { attempt: 1, delayMs: 500 },
    { attempt: 2, delayMs: 1000 },
    { attempt: 3, delayMs: 2000 },
    { attempt: 4, delayMs: 4000 },
  ]);
  assert.equal(schedule.next(), null);
});

test('a connection that stays up long enough starts the count over', () => {
  const schedule = new RetrySchedule(POLICY, () => 0.5);
  schedule.next();
  schedule.next();
  schedule.connected(0);
  schedule.dropped(10000);
  assert.equal(schedule.next().attempt, 1);
});

test('a connection that drops again soon keeps counting', () => {
  const schedule = new RetrySchedule(POLICY, () => 0.5);
  schedule.next();
  schedule.next();
  schedule.connected(0);
  schedule.dropped(9999);
  assert.equal(schedule.next().attempt, 3);
});
