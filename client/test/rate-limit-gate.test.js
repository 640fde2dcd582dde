import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RateLimitGate, retryAfterMs } from '../rate-limit-gate.js';
import { ServerError } from '../signaling.js';

const describe = (code, fields) => ({ code, message: 'Too many requests.', ...fields });
const rateLimited = (seconds) =>
  new ServerError({ code: 'RATE_LIMIT_EXCEEDED', message: 'x', retry_after_s: seconds });

test('a refusal with retry_after_s closes the gate that long', () => {
  let now = 1000;
  const gate = new RateLimitGate(() => now);
  gate.check(describe); // open
  gate.refused(rateLimited(2.5));
  assert.equal(gate.waitMs, 2500);
  now += 1000;
  assert.throws(
    () => gate.check(describe),
    (error) =>
      error instanceof ServerError &&
      error.code === 'RATE_LIMIT_EXCEEDED' &&
      error.body.retry_after_s === 2 &&
      /retry in 2 s/.test(error.body.detail),
  );
  now += 1500;
  assert.equal(gate.waitMs, 0);
  gate.check(describe);
});

test('other failures leave the gate open', () => {
  const gate = new RateLimitGate(() => 0);
  gate.refused(new ServerError({ code: 'TEXT_TOO_LONG', message: 'x' }));
  gate.refused(new Error('signaling closed (1006)'));
  assert.equal(gate.waitMs, 0);
});

test('how long a refusal says to wait', () => {
  assert.equal(retryAfterMs(rateLimited(3)), 3000);
  assert.equal(retryAfterMs(new Error('no')), 0);
  assert.equal(retryAfterMs(undefined), 0);
});
