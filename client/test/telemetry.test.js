import assert from 'node:assert/strict';
import { test } from 'node:test';

import { STORAGE_KEY, Telemetry } from '../telemetry.js';

/** localStorage's interface over a Map. */
class MemoryStorage {
  #items = new Map();
  getItem(key) {
    return this.#items.get(key) ?? null;
  }
  setItem(key, value) {
    this.#items.set(key, String(value));
  }
}

/** A server that answers each request with the next of `statuses`, recording what it got. */
function fakeServer(...statuses) {
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url, ...init, body: JSON.parse(init.body) });
    const status = statuses.shift() ?? 202;
    if (status === 'offline') throw new TypeError('Failed to fetch');
    const headers = new Headers(status === 429 ? { 'Retry-After': '30' } : {});
    return new Response(null, { status, headers });
  };
  return { fetch, requests };
}

function telemetry(server, { storage = new MemoryStorage(), clock = { now: 0 }, ...rest } = {}) {
  return new Telemetry({
    url: 'http://server/api/analytics',
    token: async () => 'token-1',
    storage,
    fetch: server.fetch,
    now: () => clock.now,
    ...rest,
  });
}

test('a batch carries the events, their times, the session and the token', async () => {
  const server = fakeServer();
  const clock = { now: 1000 };
  const client = telemetry(server, { clock });
  client.sessionId = 'session-1';
  client.record({ type: 'reconnect', attempt: 1 });
  clock.now = 2000;
  client.record({ type: 'underrun', transport: 'websocket', count: 3 });

  assert.equal(await client.flush(), true);
  const [request] = server.requests;
  assert.equal(request.method, 'POST');
  assert.equal(request.headers.Authorization, 'Bearer token-1');
  assert.deepEqual(request.body, {
    session_id: 'session-1',
    events: [
      { type: 'reconnect', attempt: 1, ts: 1000 },
      { type: 'underrun', transport: 'websocket', count: 3, ts: 2000 },
    ],
  });
  assert.equal(client.pending, 0);
  assert.equal(await client.flush(), false, 'nothing left to send');
  assert.equal(server.requests.length, 1);
});

test('batches hold at most the 100 events the server takes', async () => {
  const server = fakeServer();
  const client = telemetry(server);
  for (let i = 1; i <= 150; i++) client.record({ type: 'reconnect', attempt: i });
  await client.flush();
  await client.flush();
  assert.deepEqual(
    server.requests.map((r) => r.body.events.length),
    [100, 50],
  );
});

test('a failed send keeps the events and backs off before trying again', async () => {
  const server = fakeServer('offline', 503, 202);
  const clock = { now: 0 };
  const client = telemetry(server, { clock });
  client.record({ type: 'error', code: 'WEBSOCKET_CONNECTION_FAILED' });

  assert.equal(await client.flush(), false);
  assert.equal(client.pending, 1);
  assert.equal(await client.flush(), false, 'too soon');
  assert.equal(server.requests.length, 1);

  clock.now = 10000; // the first backoff
  assert.equal(await client.flush(), false); // 503
  clock.now = 25000; // inside the second, doubled
  assert.equal(await client.flush(), false);
  assert.equal(server.requests.length, 2);

  clock.now = 30000;
  assert.equal(await client.flush(), true);
  assert.equal(client.pending, 0);
  assert.equal(server.requests.length, 3);
});

test('rate limited, it waits as long as Retry-After says', async () => {
  const server = fakeServer(429, 202);
  const clock = { now: 0 };
  const client = telemetry(server, { clock });
  client.record({ type: 'reconnect', attempt: 1 });
  await client.flush();
  clock.now = 29999;
  assert.equal(await client.flush(), false);
  assert.equal(server.requests.length, 1);
  clock.now = 30000;
  assert.equal(await client.flush(), true);
});

test('a batch the server refuses as invalid is dropped, not sent forever', async () => {
  const server = fakeServer(400);
  const client = telemetry(server);
  client.record({ type: 'error', code: 'X'.repeat(1000) });
  assert.equal(await client.flush(), false);
  assert.equal(client.pending, 0);
});

test('unsent events survive a reload, and the queue stays bounded', async () => {
  const storage = new MemoryStorage();
  const before = telemetry(fakeServer('offline'), { storage, maxQueued: 3 });
  for (let i = 1; i <= 5; i++) before.record({ type: 'reconnect', attempt: i });
  await before.flush();

  const server = fakeServer();
  const after = telemetry(server, { storage, maxQueued: 3 });
  assert.equal(after.pending, 3);
  await after.flush();
  const attempts = server.requests[0].body.events.map((event) => event.attempt);
  assert.deepEqual(attempts, [3, 4, 5], 'the oldest went first');
  assert.equal(storage.getItem(STORAGE_KEY), '[]');
});

test('events recorded while a batch is in flight wait for the next', async () => {
  let release;
  const requests = [];
  const fetch = (url, init) => {
    requests.push(JSON.parse(init.body));
    return new Promise((resolve) => {
      release = () => resolve(new Response(null, { status: 202 }));
    });
  };
  const client = telemetry({ fetch });
  client.record({ type: 'reconnect', attempt: 1 });
  const first = client.flush();
  await new Promise((resolve) => setTimeout(resolve, 0));
  client.record({ type: 'reconnect', attempt: 2 });
  assert.equal(await client.flush(), false, 'one request at a time');
  release();
  assert.equal(await first, true);
  assert.equal(client.pending, 1);
  assert.equal(requests.length, 1);
});

test('unreadable storage starts an empty queue', () => {
  const storage = new MemoryStorage();
  storage.setItem(STORAGE_KEY, '{not json');
  assert.equal(telemetry(fakeServer(), { storage }).pending, 0);
});
