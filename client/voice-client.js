/**
 * voice-rtc browser client: signaling over a WebSocket, speech over WebRTC.
 *
 *   const client = new VoiceClient();
 *   client.addEventListener('utterance', (event) => console.log(event.detail));
 *   await client.connect();              // from a click: browsers only autoplay audio after one
 *   const id = await client.speak('Hello there.');
 *
 * Speaks protocol version 1 (signaling/PROTOCOL.md). No dependencies, no build step.
 */

const PROTOCOL_VERSION = 1;
// aiortc does not trickle ICE, so the offer must carry every candidate: wait for gathering to
// finish, but no longer than this (a STUN or TURN server that does not answer stalls it).
const ICE_GATHERING_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 15000;

/** The server answered a request with an `error`: `code` is from its table (GET /api/errors). */
export class ServerError extends Error {
  /** @param {{code: string, message: string, detail?: string}} body the server's error message */
  constructor(body) {
    super(`${body.code}: ${body.detail ?? body.message}`);
    this.name = 'ServerError';
    this.code = body.code;
    this.body = body;
  }
}

/**
 * A listener's connection to a voice-rtc server.
 *
 * Events (CustomEvent, payload in `detail`):
 * - `state`: `connecting`, `connected`, `disconnected` (the media path dropped; ICE may restore
 *   it), `failed` (connecting or the connection failed; connect() again) or `closed` (close()).
 * - `utterance`: the server's `utterance_started` / `utterance_ended` message.
 * - `error`: an error body ({code, message, detail, severity, recoverable}) that answers no
 *   request of this client, so no promise rejected with it. Besides the server's codes it may be
 *   `AUTOPLAY_BLOCKED`: the browser refused to play the audio (connect from a user gesture).
 */
export class VoiceClient extends EventTarget {
  #url;
  #audio;
  #iceTransportPolicy;
  #state = 'new';
  #ws = null;
  #pc = null;
  #remoteStream = null;
  #pending = []; // requests awaiting their reply, oldest first: {replyType, resolve, reject}
  #connection = null; // AbortController of the current connection; aborting detaches it all

  /**
   * @param {object} [options]
   * @param {string} [options.url] signaling WebSocket URL; default ws(s)://<this page's host>/ws
   * @param {HTMLAudioElement} [options.audioElement] plays the speech; default a detached one
   * @param {RTCIceTransportPolicy} [options.iceTransportPolicy] 'all' (default) or 'relay'
   */
  constructor({ url, audioElement, iceTransportPolicy = 'all' } = {}) {
    super();
    this.#url = url ?? defaultUrl();
    this.#audio = audioElement ?? new Audio();
    this.#iceTransportPolicy = iceTransportPolicy;
  }

  /** `new` until the first connect(), then the last `state` event's value. */
  get state() {
    return this.#state;
  }

  /** The MediaStream being received (for an AnalyserNode, say), or null when not connected. */
  get remoteStream() {
    return this.#remoteStream;
  }

  /** The RTCPeerConnection, or null when not connected. */
  get pc() {
    return this.#pc;
  }

  /**
   * Open signaling, negotiate WebRTC and start playing what arrives.
   * Resolves once the peer connection is connected; rejects (state `failed`) otherwise.
   */
  async connect() {
    if (this.#connection) throw new Error('VoiceClient is already connecting or connected');
    const connection = (this.#connection = new AbortController());
    this.#setState('connecting');
    const timer = setTimeout(
      () => this.#shutdown('failed', new Error(`not connected after ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    try {
      await this.#negotiate(connection.signal);
    } catch (error) {
      // A shutdown already happened if the connection was aborted; its reason says more.
      if (connection.signal.aborted) throw connection.signal.reason;
      this.#shutdown('failed', error);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Queue `text` to be spoken after anything queued before it.
   * @param {string} text
   * @returns {Promise<number>} the server's utterance id, as in `utterance` events
   * @throws {ServerError} when the server refuses it (e.g. code TEXT_TOO_LONG, QUEUE_FULL)
   */
  async speak(text) {
    const reply = await this.#request({ type: 'speak', text }, 'queued');
    return reply.utterance_id;
  }

  /** Stop what is playing and drop what is queued; each gets an `utterance_ended` (cancelled). */
  cancel() {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#send({ type: 'cancel' });
  }

  /** Hang up: close the peer connection and the socket. Requests awaiting a reply reject. */
  close() {
    this.#shutdown('closed', new Error('VoiceClient was closed'));
  }

  /**
   * A summary of the received audio from getStats(); a field is undefined until known (aiortc
   * may leave currentRoundTripTime unknown). Times are in seconds, audioLevel is 0..1.
   * @returns {Promise<{codec?: string, packetsReceived?: number, packetsLost?: number,
   *   jitter?: number, audioLevel?: number, totalAudioEnergy?: number,
   *   averageJitterBufferDelay?: number, currentRoundTripTime?: number}>}
   */
  async stats() {
    const report = this.#pc ? await this.#pc.getStats() : new Map();
    let inbound;
    let pair;
    for (const stat of report.values()) {
      if (stat.type === 'inbound-rtp' && stat.kind === 'audio') inbound = stat;
      if (stat.type === 'candidate-pair' && stat.nominated && stat.state === 'succeeded') {
        pair = stat;
      }
    }
    return {
      codec: report.get(inbound?.codecId)?.mimeType,
      packetsReceived: inbound?.packetsReceived,
      packetsLost: inbound?.packetsLost,
      jitter: inbound?.jitter,
      audioLevel: inbound?.audioLevel,
      totalAudioEnergy: inbound?.totalAudioEnergy,
      // getStats() sums the delay of every sample played out; the average is the latency the
      // jitter buffer adds.
      averageJitterBufferDelay: inbound?.jitterBufferEmittedCount
        ? inbound.jitterBufferDelay / inbound.jitterBufferEmittedCount
        : undefined,
      currentRoundTripTime: pair?.currentRoundTripTime,
    };
  }

  async #negotiate(signal) {
    const ws = (this.#ws = new WebSocket(this.#url));
    ws.addEventListener('message', (event) => this.#receive(event), { signal });
    ws.addEventListener(
      'close',
      ({ code, reason }) =>
        this.#shutdown('failed', new Error(`signaling closed (${code}${reason && `: ${reason}`})`)),
      { signal },
    );
    await until(ws, 'open', () => ws.readyState === WebSocket.OPEN, signal);
    const welcome = await this.#request({ type: 'hello', version: PROTOCOL_VERSION }, 'welcome');

    const pc = (this.#pc = new RTCPeerConnection({
      iceServers: welcome.ice_servers,
      iceTransportPolicy: this.#iceTransportPolicy,
    }));
    pc.addEventListener('track', ({ track }) => this.#play(new MediaStream([track])), { signal });
    pc.addEventListener('connectionstatechange', () => this.#onPeerState(pc.connectionState), {
      signal,
    });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, ICE_GATHERING_TIMEOUT_MS);
    signal.throwIfAborted(); // gathering ignores shutdowns: send no stale offer on a new socket
    const answer = await this.#request({ type: 'offer', sdp: pc.localDescription.sdp }, 'answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    await until(pc, 'connectionstatechange', () => pc.connectionState === 'connected', signal);
  }

  #onPeerState(peerState) {
    if (peerState === 'connected' || peerState === 'disconnected') {
      this.#setState(peerState);
    } else if (peerState === 'failed') {
      this.#shutdown('failed', new Error('WebRTC connection failed'));
    }
  }

  #play(stream) {
    this.#remoteStream = stream;
    this.#audio.srcObject = stream;
    this.#audio.play().catch((error) => {
      // Other rejections (AbortError) only mean the source changed before playback began.
      if (error.name !== 'NotAllowedError') return;
      this.#emit('error', {
        code: 'AUTOPLAY_BLOCKED',
        severity: 'warning',
        category: 'media',
        recoverable: true,
        message: 'The browser blocked audio playback.',
        detail: 'audio.play() was not allowed: call connect() from a user gesture',
      });
    });
  }

  /** Send a request; resolve with its `replyType` reply or reject with the `error` answering it. */
  #request(body, replyType) {
    this.#send(body);
    return new Promise((resolve, reject) => this.#pending.push({ replyType, resolve, reject }));
  }

  #send(body) {
    if (this.#ws?.readyState !== WebSocket.OPEN) throw new Error('VoiceClient is not connected');
    this.#ws.send(JSON.stringify(body));
  }

  #receive({ data }) {
    if (typeof data !== 'string') return; // binary messages are reserved for fallback audio
    const message = JSON.parse(data);
    if (message.type === 'utterance_started' || message.type === 'utterance_ended') {
      this.#emit('utterance', message);
      return;
    }
    // The server answers requests one at a time, in order, each with its reply or an error.
    const oldest = this.#pending[0];
    if (oldest && (message.type === oldest.replyType || message.type === 'error')) {
      this.#pending.shift();
      if (message.type === 'error') oldest.reject(new ServerError(message));
      else oldest.resolve(message);
    } else if (message.type === 'error') {
      this.#emit('error', message);
    }
  }

  /** Release the connection (if any) and settle everything waiting on it with `reason`. */
  #shutdown(state, reason) {
    this.#connection?.abort(reason); // detaches our listeners, so the close below reports nothing
    this.#connection = null;
    for (const { reject } of this.#pending.splice(0)) reject(reason);
    this.#ws?.close(1000);
    this.#pc?.close();
    this.#ws = this.#pc = this.#remoteStream = null;
    this.#audio.srcObject = null;
    this.#setState(state);
  }

  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    this.#emit('state', state);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function defaultUrl() {
  const url = new URL('/ws', globalThis.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** Resolves once `ready()` holds, checked now and on each `type` event; rejects on abort. */
function until(target, type, ready, signal) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (ready()) {
        done();
        resolve();
      }
    };
    const abort = () => {
      done();
      reject(signal.reason);
    };
    const done = () => {
      target.removeEventListener(type, check);
      signal.removeEventListener('abort', abort);
    };
    target.addEventListener(type, check);
    signal.addEventListener('abort', abort);
    if (signal.aborted) abort();
    else check();
  });
}

/** Resolves when ICE gathering completes, or after `timeoutMs` with the candidates found so far. */
function iceGathered(pc, timeoutMs) {
  return until(
    pc,
    'icegatheringstatechange',
    () => pc.iceGatheringState === 'complete',
    AbortSignal.timeout(timeoutMs),
  ).catch(() => {});
}
