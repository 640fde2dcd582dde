import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ReconnectionSupervisor } from '../reconnection.js';
import { ServerError } from '../signaling.js';

/** A connection the test drops when it likes. */
function connection() {
  let drop;
  const closed = new Promise((resolve) => {
    drop = (code = 1006, reason = '') => resolve({ code, reason });
  });
  return { closed, drop };
}

/**
 * A supervisor on a fake clock; `attempts` decides each connection attempt: a connection, or
 * an error to throw. Returns what happened, in order.
 */
function supervise(attempts, { maxAttempts = 3, onDrop = () => true, goingAway } = {}) {
  const log = [];
  let now = 0;
  const supervisor = new ReconnectionSupervisor({
    policy: { baseMs: 1000, capMs: 30000, maxAttempts, stableAfterMs: 10000 },
    random: () => 0.5,
    now: () => now,
    sleep: async (ms) => {
      log.push(`sleep ${ms}`);
      now += ms;
    },
    connect: async () => {
      const next = attempts.shift();
      if (next instanceof Error) throw next;
      log.push('connected');
      return next;
    },
    onDrop: (close) => {
      log.push(`dropped ${close.code}`);
      return onDrop(close);
    },
    goingAway,
    onAttempt: (attempt, max) => log.push(`attempt ${attempt}/${max}`),
    onAttemptFailed: (error) => log.push(`failed: ${error.message}`),
    onGiveUp: (error) => log.push(`gave up: ${error.message}`),
  });
  return { supervisor, log, advance: (ms) => (now += ms) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('a drop is reconnected with backoff, and the new connection watched in turn', async () => {
  const first = connection();
  const second = connection();
  const third = connection();
  const { supervisor, log } = supervise([new Error('refused'), second, third]);
  const running = supervisor.run(first, new AbortController().signal);
  first.drop();
  await settle();
  second.drop(1001);
  await settle();
  assert.deepEqual(log, [
    'dropped 1006',
    'attempt 1/3',
    'sleep 500', // uniform in [0, 1000): half of it, with random() = 0.5
    'failed: refused',
    'attempt 2/3',
    'sleep 1000', // [0, 2000)
    'connected',
    'dropped 1001',
    'attempt 3/3', // the second connection did not stay up long enough to start over
    'sleep 2000',
    'connected',
  ]);
  assert.equal(typeof running.then, 'function');
});

test('a server going away is reconnected at once, then with backoff again', async () => {
  const first = connection();
  const { supervisor, log } = supervise([new Error('refused'), connection()], {
    goingAway: ({ code }) => code === 1001,
  });
  supervisor.run(first, new AbortController().signal);
  first.drop(1001);
  await settle();
  assert.deepEqual(log, [
    'dropped 1001',
    'attempt 1/3',
    'sleep 125', // a jitter of [0, 250) ms only: the session waits on another server
    'failed: refused',
    'attempt 2/3',
    'sleep 1000', // and backoff as usual after that
    'connected',
  ]);
});

test('it gives up when the attempts run out', async () => {
  const first = connection();
  const { supervisor, log } = supervise([new Error('a'), new Error('b')], { maxAttempts: 2 });
  const running = supervisor.run(first, new AbortController().signal);
  first.drop();
  await running;
  assert.deepEqual(log.slice(-2), ['failed: b', 'gave up: not reconnected after 2 attempts']);
});

test('a connection that stayed up starts the count over', async () => {
  const first = connection();
  const second = connection();
  const { supervisor, log, advance } = supervise([second, connection()], { maxAttempts: 1 });
  supervisor.run(first, new AbortController().signal);
  first.drop();
  await settle();
  advance(10000);
  second.drop();
  await settle();
  assert.deepEqual(
    log.filter((line) => line.startsWith('attempt')),
    ['attempt 1/1', 'attempt 1/1'],
  );
});

test('a rate limit that refused an attempt is waited out', async () => {
  const first = connection();
  const limited = new ServerError({ code: 'RATE_LIMIT_EXCEEDED', message: 'x', retry_after_s: 7 });
  const { supervisor, log } = supervise([limited, connection()]);
  supervisor.run(first, new AbortController().signal);
  first.drop();
  await settle();
  assert.deepEqual(log.slice(3, 6), ['failed: RATE_LIMIT_EXCEEDED: x', 'attempt 2/3', 'sleep 7000']);
});

test('a drop not to be reconnected ends it; so does the signal', async () => {
  const first = connection();
  const { supervisor, log } = supervise([], { onDrop: ({ code }) => code !== 4001 });
  const running = supervisor.run(first, new AbortController().signal);
  first.drop(4001);
  await running;
  assert.deepEqual(log, ['dropped 4001']);

  const other = connection();
  const stopped = supervise([]);
  const life = new AbortController();
  const done = stopped.supervisor.run(other, life.signal);
  life.abort();
  other.drop();
  await done;
  assert.deepEqual(stopped.log, []);
});
