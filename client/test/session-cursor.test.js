import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SessionCursor } from '../session-cursor.js';

const started = (eventId, utteranceId) => ({ event_id: eventId, utterance_id: utteranceId });

test('each event is accepted once, whatever a resumed server replays', () => {
  const cursor = new SessionCursor();
  assert.equal(cursor.acceptEvent(started(1, 1)), true);
  assert.equal(cursor.acceptEvent(started(2, 1)), true);
  assert.equal(cursor.acceptEvent(started(1, 1)), false);
  assert.equal(cursor.acceptEvent(started(2, 1)), false);
  assert.equal(cursor.acceptEvent(started(3, 2)), true);
  assert.equal(cursor.lastEventId, 3);
});

test('a position is reported once per connection, and again on the next one', () => {
  const cursor = new SessionCursor();
  assert.equal(cursor.takeReport(), null); // nothing played yet
  cursor.notePlayed({ transport_id: 1, seq: 10 });
  assert.deepEqual(cursor.takeReport(), { transport_id: 1, seq: 10 });
  assert.equal(cursor.takeReport(), null);
  cursor.notePlayed(null); // a transport that knows nothing keeps the last known
  assert.equal(cursor.takeReport(), null);
  cursor.notePlayed({ transport_id: 1, seq: 11 });
  assert.deepEqual(cursor.takeReport(), { transport_id: 1, seq: 11 });
  cursor.connected();
  assert.deepEqual(cursor.takeReport(), { transport_id: 1, seq: 11 });
});

test('a resuming hello carries the last event and the last position played', () => {
  const cursor = new SessionCursor();
  assert.deepEqual(cursor.resumeFields(), { last_event: 0 });
  cursor.acceptEvent(started(4, 2));
  cursor.notePlayed({ transport_id: 2, rtp_timestamp: 96000 });
  assert.deepEqual(cursor.resumeFields(), {
    last_event: 4,
    position: { transport_id: 2, rtp_timestamp: 96000 },
  });
  cursor.forget(); // a new session: nothing of the old one applies
  assert.deepEqual(cursor.resumeFields(), { last_event: 0 });
  assert.equal(cursor.acceptEvent(started(1, 1)), true);
});

test('a cancel covers every utterance heard of, not those queued after it', () => {
  const cursor = new SessionCursor();
  cursor.queued(1, cursor.speaking());
  cursor.acceptEvent(started(1, 2)); // another client's speech, heard of through an event
  cursor.cancel(true);
  assert.equal(cursor.isCancelled(1), true);
  assert.equal(cursor.isCancelled(2), true);
  cursor.queued(3, cursor.speaking());
  assert.equal(cursor.isCancelled(3), false);
});

test('a cancel sent while a speak awaited its reply cancelled that utterance too', () => {
  const cursor = new SessionCursor();
  const ticket = cursor.speaking();
  cursor.cancel(true); // the server gets it after the speak: it cancels what that queued
  cursor.queued(5, ticket);
  assert.equal(cursor.isCancelled(5), true);
});

test('a cancel while disconnected is sent by the next connection, once', () => {
  const cursor = new SessionCursor();
  cursor.cancel(false);
  assert.equal(cursor.connected(), true);
  assert.equal(cursor.connected(), false);
  cursor.cancel(true);
  assert.equal(cursor.connected(), false);
});
