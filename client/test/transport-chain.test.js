import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SessionCursor } from '../session-cursor.js';
import { TransportChain } from '../transport-chain.js';
import { audioMessage } from './fakes.js';

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** The signaling socket: answers `transport` requests, records what was asked. */
class FakeSignaling {
  isOpen = true;
  requests = [];

  async request(body) {
    this.requests.push(body);
    return { transport_id: this.requests.length };
  }
}

/** WebRTCAudio: negotiates at once; the test calls its handlers. */
class FakeWebRTC {
  kind = 'webrtc';
  transportId = 0;
  closed = false;

  constructor(options, { fails = false } = {}) {
    this.options = options;
    this.fails = fails;
  }

  async negotiate() {
    await null; // as a real one, it settles later
    if (this.fails) throw new Error('RTCPeerConnection is not defined');
    this.transportId = 1;
  }

  position() {
    return { transport_id: this.transportId, rtp_timestamp: 960 };
  }

  muteElement() {
    this.muted = true;
  }

  close() {
    this.closed = true;
  }
}

/** AudioOutput: plays, or (refused) holds, what it is given. */
class FakeOutput {
  frames = [];
  playedSeq = null;
  onplaying = () => {};
  starts = 0;
  resumes = 0;

  constructor({ allowed = true } = {}) {
    this.allowed = allowed;
  }

  get playing() {
    return this.allowed && this.starts > 0;
  }

  async start() {
    this.starts++;
    return this.playing;
  }

  resume() {
    this.resumes++;
    return this.start();
  }

  push(frame) {
    this.frames.push(frame);
  }

  async playStream(stream) {
    if (this.allowed) this.stream = stream;
    return this.allowed;
  }

  stopStream() {
    this.stream = null;
  }

  flush() {}
  reset() {}
  close() {}
}

/** A chain on fakes; `log` has what it told its owner, in order. */
function chain({ forced = null, output = () => new FakeOutput(), webrtc = {}, codecs, opus = false } = {}) {
  const log = [];
  const signaling = new FakeSignaling();
  const made = { webrtc: [], outputs: [] };
  const cursor = new SessionCursor();
  const transports = new TransportChain({
    forced: () => forced,
    cursor,
    welcome: () => ({
      ice_servers: [],
      codecs,
      fallback: { ice_timeout_ms: 5000, loss_percent: 10, loss_window_s: 5 },
    }),
    iceTransportPolicy: 'all',
    element: /** @type {any} */ ({}),
    codec: 'auto',
    onTransport: (event) => log.push(['transport', event]),
    onUp: (transport, intended) => log.push(['up', transport, intended]),
    onError: (code) => log.push(['error', code]),
    reportPosition: () => log.push(['report']),
    restart: (reason) => log.push(['restart', reason]),
    make: {
      webrtc: (options) => {
        const audio = new FakeWebRTC(options, webrtc);
        made.webrtc.push(audio);
        return /** @type {any} */ (audio);
      },
      output: () => {
        const made_ = output();
        made.outputs.push(made_);
        return made_;
      },
      canDecodeOpus: async () => opus,
    },
  });
  return { transports, signaling, log, made, cursor };
}

test('WebRTC is where speech goes first', async () => {
  const { transports, signaling, log, made } = chain();
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  made.webrtc[0].options.onConnected();
  assert.deepEqual(log, [
    ['transport', { transport: 'webrtc', reason: undefined, detail: undefined }],
    ['up', 'webrtc', true],
  ]);
  assert.deepEqual(signaling.requests, []);
});

test('ICE that does not connect moves speech to the WebSocket, in the output made at connect()', async () => {
  const { transports, signaling, log, made } = chain();
  transports.prepareAudio(); // in the gesture
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  made.webrtc[0].options.onFailure('ice_timeout', 'ICE not connected after 5000 ms');
  await settle();
  assert.equal(made.outputs.length, 1); // no second output, made without a gesture
  assert.deepEqual(signaling.requests, [
    { type: 'transport', mode: 'websocket', codec: 'pcm_s16le', reason: 'ice_timeout' },
  ]);
  assert.deepEqual(log, [
    ['report'], // WebRTC's final position first
    [
      'transport',
      { transport: 'websocket', reason: 'ice_timeout', detail: 'ICE not connected after 5000 ms' },
    ],
    ['up', 'websocket', false],
  ]);
  assert.equal(made.webrtc[0].closed, true);
});

test('Opus is asked for where the server offers it and the browser decodes it', async () => {
  const { transports, signaling } = chain({ forced: 'websocket', codecs: ['pcm_s16le', 'opus'], opus: true });
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  assert.deepEqual(signaling.requests, [
    { type: 'transport', mode: 'websocket', codec: 'opus', reason: 'forced' },
  ]);
});

test('refused audio: captions, the speech held, and one click plays it from where it stopped', async () => {
  const { transports, signaling, log, made } = chain({
    forced: 'websocket',
    output: () => new FakeOutput({ allowed: false }),
  });
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  assert.deepEqual(log, [
    ['error', 'AUDIO_PLAYBACK_FAILED'],
    ['transport', { transport: 'captions', reason: 'forced', detail: undefined }],
    ['up', 'captions', false],
  ]);
  transports.receive(audioMessage({ seq: 0 }));
  transports.receive(audioMessage({ seq: 1 }));
  const [output] = made.outputs;
  assert.deepEqual(
    output.frames.map((frame) => frame.seq),
    [0, 1],
  ); // held, not counted as played
  transports.notePosition();

  output.allowed = true; // the click
  await transports.enableAudio();
  assert.equal(output.resumes, 1);
  assert.deepEqual(log.slice(3), [
    ['transport', { transport: 'websocket', reason: 'forced', detail: 'audio enabled' }],
    ['up', 'websocket', true],
  ]);
});

test('refused again on a reconnection, it is said once', async () => {
  const { transports, signaling, log } = chain({
    forced: 'websocket',
    output: () => new FakeOutput({ allowed: false }),
  });
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  transports.dropped();
  await transports.start(/** @type {any} */ (new FakeSignaling()));
  assert.equal(log.filter(([kind]) => kind === 'error').length, 1);
});

test('without Web Audio, captions only: frames count as played when they arrive', async () => {
  const { transports, signaling, log, cursor } = chain({
    forced: 'websocket',
    output: () => {
      throw new ReferenceError('AudioContext is not defined');
    },
  });
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  assert.deepEqual(log[0], ['error', 'AUDIO_PLAYBACK_FAILED']);
  assert.deepEqual(log.at(-1), ['up', 'captions', false]);
  transports.receive(audioMessage({ seq: 3 }));
  transports.notePosition();
  assert.deepEqual(cursor.played, { transport_id: 1, seq: 3 });
});

test('a transport the settings insist on does not fall back: a new connection retries it', async () => {
  const { transports, signaling, log, made } = chain({ forced: 'webrtc' });
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  made.webrtc[0].options.onFailure('connection_failed', 'the WebRTC connection failed');
  assert.deepEqual(log, [['restart', 'WebRTC: connection_failed']]);
  assert.deepEqual(signaling.requests, []);
});

test('WebRTC that cannot even start falls back as unsupported', async () => {
  const { transports, signaling, log } = chain({ webrtc: { fails: true } });
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  assert.equal(signaling.requests[0].reason, 'unsupported');
  assert.match(log[0][1].detail, /^WebRTC unavailable: RTCPeerConnection is not defined/);
});

test('WebRTC audio refused to the element plays through the output made in the gesture', async () => {
  const { transports, signaling, log, made } = chain();
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  made.webrtc[0].options.onConnected();
  const stream = { id: 'remote' };
  made.webrtc[0].options.onAutoplayBlocked(stream);
  await settle();
  assert.equal(made.outputs[0].stream, stream);
  assert.equal(made.webrtc[0].muted, true); // the element plays on, muted
  assert.deepEqual(log.at(-1), ['up', 'webrtc', true]);
  assert.deepEqual(signaling.requests, []);
});

test('WebRTC audio refused everywhere moves to the WebSocket, which holds it', async () => {
  const { transports, signaling, log, made } = chain({
    output: () => new FakeOutput({ allowed: false }),
  });
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  made.webrtc[0].options.onConnected();
  made.webrtc[0].options.onAutoplayBlocked({ id: 'remote' });
  await settle();
  assert.deepEqual(log[2], ['error', 'AUDIO_PLAYBACK_FAILED']);
  assert.equal(signaling.requests[0].reason, 'other');
  assert.deepEqual(log.at(-1), ['up', 'captions', false]);
});

test('off WebRTC, a reconnection resumes on the WebSocket', async () => {
  const { transports, signaling, made } = chain();
  transports.prepareAudio();
  transports.begin();
  await transports.start(/** @type {any} */ (signaling));
  made.webrtc[0].options.onFailure('packet_loss', 'packet loss above 10% for 5 s');
  await settle();
  transports.dropped();
  const next = new FakeSignaling();
  transports.begin(); // a resumed session keeps its path
  await transports.start(/** @type {any} */ (next));
  assert.equal(made.webrtc.length, 1);
  assert.deepEqual(next.requests, [
    { type: 'transport', mode: 'websocket', codec: 'pcm_s16le', reason: 'packet_loss' },
  ]);
});

test('WebRTC given up while still gathering falls back once, for the reason that gave it up', async () => {
  const { transports, signaling, made } = chain();
  transports.prepareAudio();
  transports.begin();
  const starting = transports.start(/** @type {any} */ (signaling));
  const [webrtc] = made.webrtc;
  webrtc.fails = true; // negotiate() rejects, as when its watchdog fired while gathering
  webrtc.options.onFailure('ice_timeout', 'ICE not connected after 2000 ms');
  await starting;
  await settle();
  assert.deepEqual(
    signaling.requests.map((request) => request.reason),
    ['ice_timeout'],
  );
});
