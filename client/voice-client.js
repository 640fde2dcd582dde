/**
 * voice-rtc browser client: a listener's session with a voice-rtc server, kept through network
 * trouble. Speech comes over WebRTC; over the signaling WebSocket when WebRTC cannot connect or
 * loses too much; as captions only when the browser will not play audio.
 *
 *   const client = new VoiceClient();
 *   client.addEventListener('state', ({ detail }) => console.log(detail.state));
 *   client.addEventListener('utterance', ({ detail }) => console.log(detail));
 *   client.addEventListener('word', ({ detail }) => highlight(detail)); // as it is heard; or null
 *   button.onclick = async () => {
 *     await client.connect();            // in a click: browsers play audio only after one
 *     const id = await client.speak('Hello there.');
 *   };
 *
 * Speaks the protocol of signaling/PROTOCOL.md (its constants: protocol.js, generated from the
 * server's definition). No dependencies, no build step. The parts: reconnection.js (the
 * supervisor), transport-chain.js (WebRTC -> WebSocket -> captions), session-cursor.js (played
 * position, last event, cancels), word-timing.js (the word being heard), rate-limit-gate.js,
 * stats-reporter.js; telemetry.js, errors.js, signaling.js beneath them.
 */
import { DevTokens } from './dev-tokens.js';
import { ErrorTable } from './errors.js';
import {
  CLOSE_CODES_GOING_AWAY,
  CLOSE_CODES_NORMAL,
  CLOSE_CODES_REPLACED,
  PATHS_LISTENER,
  RECONNECT_BASE_MS,
  RECONNECT_CAP_MS,
  RECONNECT_STABLE_AFTER_MS,
  VERSION,
} from './protocol.js';
import { RateLimitGate } from './rate-limit-gate.js';
import { ReconnectionSupervisor } from './reconnection.js';
import { SessionCursor } from './session-cursor.js';
import { httpUrl, ServerError, Signaling } from './signaling.js';
import { StatsReporter } from './stats-reporter.js';
import { Telemetry } from './telemetry.js';
import { TransportChain } from './transport-chain.js';
import { WebRTCAudio } from './webrtc-audio.js';
import { RtpSeqMap, WordTimeline } from './word-timing.js';

export { ServerError };

const CONNECT_TIMEOUT_MS = 15000; // one attempt: the socket, hello, and the audio negotiated
// How often the word being heard is looked up: a frame. Words last 40-500 ms (eSpeak NG's "a",
// or a browser playing faster to catch up); one passed between two looks is told all the same.
const WORD_POLL_MS = 20;

/**
 * @typedef {import('./errors.js').ErrorBody} ErrorBody
 * @typedef {import('./transport-chain.js').TransportKind} TransportKind
 * @typedef {import('./transport-chain.js').TransportEvent} TransportEvent
 * @typedef {import('./frame-decoder.js').WebSocketCodec} WebSocketCodec
 * @typedef {import('./stats-reporter.js').ClientStats} ClientStats
 * @typedef {import('./word-timing.js').Word} Word
 *
 * @typedef {'new' | 'connecting' | 'connected' | 'degraded' | 'reconnecting' | 'failed'
 *   | 'closed'} ClientState
 *
 * @typedef {object} StateDetail a `state` event's detail (and what `state` says)
 * @property {ClientState} state
 * @property {TransportKind} [transport] connected or degraded: where speech goes
 * @property {number} [attempt] reconnecting: this attempt...
 * @property {number} [maxAttempts] ...of so many
 * @property {Error} [error] failed or closed: why
 *
 * @typedef {object} UtteranceEvent an `utterance` event's detail: the server's message
 * @property {'utterance_started' | 'utterance_ended'} type
 * @property {number} event_id
 * @property {number} utterance_id
 * @property {string} text
 * @property {number} [seq] started: its first frame
 * @property {number} [frames] ended: frames played
 * @property {'done' | 'cancelled' | 'failed'} [reason] ended: why
 *
 * @typedef {object} VoiceClientEventMap
 * @property {CustomEvent<StateDetail>} state
 * @property {CustomEvent<TransportEvent>} transport
 * @property {CustomEvent<UtteranceEvent>} utterance
 * @property {CustomEvent<Word | null>} word
 * @property {CustomEvent<ErrorBody>} error
 *
 * @typedef {string | ((signal: AbortSignal) => string | undefined | Promise<string | undefined>)}
 *   TokenSource
 *
 * @typedef {object} VoiceClientOptions
 * @property {string} [url] signaling WebSocket URL; default ws(s)://<this page's host>/ws
 * @property {HTMLAudioElement} [audioElement] plays WebRTC speech; default a detached one
 * @property {RTCIceTransportPolicy} [iceTransportPolicy] 'all' (default) or 'relay'
 * @property {'auto' | 'webrtc' | 'websocket'} [transport] 'auto' (default): WebRTC, falling
 *   back to the WebSocket; otherwise only that one (unless the server insists on another)
 * @property {'auto' | WebSocketCodec} [codec] of WebSocket audio. 'auto' (default): Opus where
 *   the browser decodes it (WebCodecs) and the server offers it, ~4 KB/s; else pcm_s16le,
 *   44 KB/s. 'mulaw' halves PCM's bandwidth.
 * @property {number} [maxReconnectAttempts] default: the server's `reconnect.max_attempts`
 * @property {TokenSource} [token] the token (a JWT) `hello` carries, or a function giving one,
 *   asked before every connection (tokens are short-lived; reconnections may come much later);
 *   `signal` aborts when the attempt is given up: pass it to fetch(). Default: a dev-mode
 *   server's (dev-tokens.js), or none.
 * @property {boolean} [telemetry] send errors, fallbacks, reconnections and audio statistics
 *   to the server's /api/analytics (telemetry.js); default true
 */

/**
 * A listener's connection to a voice-rtc server.
 *
 * `state` (the getter, and `state` events with detail {state, ...}):
 * - `new`: connect() not called yet.
 * - `connecting`: connect() is starting the session.
 * - `connected`: speech plays on the intended transport: WebRTC, or the one the `transport`
 *   option or the server insists on. detail.transport names it.
 * - `degraded`: speech plays on a fallback path, because the intended one failed:
 *   detail.transport is `websocket` (WebSocket audio) or `captions` (no audio; utterance events
 *   carry the text).
 * - `reconnecting`: the connection dropped; detail.attempt of detail.maxAttempts. The session
 *   resumes where the listener left off.
 * - `failed`: connect() failed or reconnection gave up (detail.error). connect() again resumes
 *   the session if the server still has it.
 * - `closed`: close() was called, or another connection took the session over (detail.error).
 *
 * Other events (CustomEvent, payload in `detail`):
 * - `transport`: {transport, reason, detail}: speech moved to `webrtc`, `websocket` or
 *   `captions`; off WebRTC, `reason` says why as the protocol does (`forced`, `ice_timeout`,
 *   `connection_failed`, `packet_loss`, `unsupported`, `other`), `detail` in words.
 * - `utterance`: the server's `utterance_started` (with the `text`, for captions) or
 *   `utterance_ended` message; each `event_id` once, across reconnections.
 * - `word`: playback reached a word: {utterance_id, index (its number in the utterance, from
 *   0), start, end (character offsets into the utterance's text), text}; or null: no word is
 *   playing now (silence, or a voice that gives no word timings). From what plays, not what
 *   arrived: over WebSocket the frame leaving the jitter buffer, over WebRTC the RTP timestamp
 *   played out. `currentWord` says the same.
 * - `error`: an error body ({code, message, detail, severity, recoverable, action}, the row of
 *   the server's table: errors.js) that answers no request of this client, so no promise
 *   rejected with it. `message` is for the user; `action` says what to do (`reconnect`,
 *   `enable_audio`, `retry_later`, `sign_in`, ...: signaling/PROTOCOL.md). Besides the server's:
 *   `SERVER_DRAINING` (the server is shutting down: speech in progress may finish, then the
 *   client reconnects, to another server behind the load balancer),
 *   `WEBSOCKET_CONNECTION_FAILED` (the connection dropped; reconnecting) and
 *   `AUDIO_PLAYBACK_FAILED` (action `enable_audio`: the browser will not play audio — no user
 *   gesture yet, or no AudioWorklet outside a secure context; captions meanwhile, and the
 *   speech waits: call resumeAudio() from a click and it plays from where it stopped).
 *   `SESSION_NOT_FOUND` means the session was gone and a new one started. A server error
 *   refusing a reconnection attempt comes here too (AUTHENTICATION_FAILED: the next attempt
 *   wants a new token).
 */
export class VoiceClient extends EventTarget {
  #url;
  #element;
  #transportOption;
  #maxAttempts;
  #token;
  /** @type {DevTokens | null} without a token of the app's, a dev-mode server's */
  #devTokens = null;
  #errors;
  /** @type {Telemetry | null} */
  #telemetry = null;
  /** @type {StatsReporter | null} */
  #statsReporter = null;
  #speakGate = new RateLimitGate();
  #cursor = new SessionCursor();
  #chain;
  #words = new WordTimeline((utterance) => this.#cursor.isCancelled(utterance));
  #syncs = new RtpSeqMap();
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #wordPoller;

  /** @type {StateDetail} the last `state` event's */
  #stateDetail = { state: 'new' };
  /** @type {AbortController | null} from connect() until failed or closed */
  #life = null;
  /** @type {any} the server's welcome: the session, which outlives connections */
  #welcome = null;
  /** @type {Signaling | null} the connection */
  #signaling = null;
  /** @type {Signaling | null} the one the server announced it is draining */
  #drained = null;

  /** @param {VoiceClientOptions} [options] */
  constructor({
    url,
    audioElement,
    iceTransportPolicy = 'all',
    transport = 'auto',
    codec = 'auto',
    maxReconnectAttempts,
    token,
    telemetry = true,
  } = {}) {
    super();
    this.#url = url ?? defaultUrl();
    this.#element = audioElement ?? new Audio();
    this.#transportOption = transport;
    this.#maxAttempts = maxReconnectAttempts;
    this.#token = token;
    if (token === undefined) this.#devTokens = new DevTokens(this.#url);
    this.#errors = new ErrorTable(this.#url);
    this.#chain = new TransportChain({
      forced: () => this.#forcedTransport,
      cursor: this.#cursor,
      welcome: () => this.#welcome,
      iceTransportPolicy,
      element: this.#element,
      codec,
      onTransport: (event) => {
        this.#emit('transport', event);
        if (event.reason) {
          this.#telemetry?.record({ type: 'fallback', to: event.transport, reason: event.reason });
        }
      },
      onUp: (transport, intended) =>
        this.#setState(intended ? 'connected' : 'degraded', { transport }),
      onError: (code, detail) => this.#emitError(code, detail),
      reportPosition: () => this.#reportPosition(),
      restart: (reason) => this.#signaling?.close(CLOSE_CODES_NORMAL, reason),
    });
    if (telemetry) {
      const events = (this.#telemetry = new Telemetry({
        url: httpUrl(this.#url, '/api/analytics'),
        token: (signal) => this.#newToken(signal),
        storage: localStorageOrNull(),
      }));
      this.#statsReporter = new StatsReporter({
        record: (event) => events.record(event),
        stats: () => this.stats(),
      });
      // What is still queued goes as the page does (or at its next load).
      globalThis.addEventListener?.('pagehide', () => events.flush({ keepalive: true }));
    }
  }

  /**
   * Listen for `state`, `transport`, `utterance` or `error` events (see the class comment).
   * @template {keyof VoiceClientEventMap} K
   * @overload
   * @param {K} type
   * @param {(event: VoiceClientEventMap[K]) => void} listener
   * @param {boolean | AddEventListenerOptions} [options]
   * @returns {void}
   */
  /**
   * @overload
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | AddEventListenerOptions} [options]
   * @returns {void}
   */
  /**
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | AddEventListenerOptions} [options]
   */
  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
  }

  /**
   * @template {keyof VoiceClientEventMap} K
   * @overload
   * @param {K} type
   * @param {(event: VoiceClientEventMap[K]) => void} listener
   * @param {boolean | EventListenerOptions} [options]
   * @returns {void}
   */
  /**
   * @overload
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | EventListenerOptions} [options]
   * @returns {void}
   */
  /**
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | EventListenerOptions} [options]
   */
  removeEventListener(type, listener, options) {
    super.removeEventListener(type, listener, options);
  }

  /**
   * The error body for `code`, from the server's table (GET /api/errors): its message for the
   * user and its `action`, with `fields` (say, a `detail`) over them.
   * @param {string} code
   * @param {object} [fields]
   * @returns {ErrorBody}
   */
  describeError(code, fields = {}) {
    return this.#errors.describe(code, fields);
  }

  /** See the class comment. */
  get state() {
    return this.#stateDetail.state;
  }

  /**
   * Where speech is going, as the last `state` event said, or null when not connected.
   * @returns {TransportKind | null}
   */
  get transport() {
    return this.#isUp ? (this.#stateDetail.transport ?? null) : null;
  }

  /** The session's id (the same after a resume), or null. @returns {string | null} */
  get sessionId() {
    return this.#welcome?.session_id ?? null;
  }

  /**
   * Whether an app's agent drives the session (welcome's `agent`): then sendInput() reaches
   * it. False before the first welcome.
   */
  get hasAgent() {
    return this.#welcome?.agent === true;
  }

  /** The word being heard now, or null: see `word` events. @returns {Word | null} */
  get currentWord() {
    return this.#words.current;
  }

  /** Round-trip time of the last heartbeat in seconds, or null before the first. */
  get rtt() {
    return this.#signaling?.rtt ?? null;
  }

  /** The MediaStream received over WebRTC (for an AnalyserNode, say), or null. */
  get remoteStream() {
    const audio = this.#chain.audio;
    return audio instanceof WebRTCAudio ? audio.stream : null;
  }

  /** The RTCPeerConnection in use, or null. */
  get pc() {
    const audio = this.#chain.audio;
    return audio instanceof WebRTCAudio ? audio.pc : null;
  }

  /** The AudioNode WebSocket audio plays from (for an AnalyserNode, say), or null. */
  get audioOutput() {
    return this.#chain.outputNode;
  }

  /**
   * Start the session (or resume it, after `failed`): resolves once speech can play,
   * `connected` or `degraded`; rejects if the first connection fails. Call it in a user
   * gesture's handler (a click), before anything else is awaited: it asks the browser for
   * audio output then, which some browsers allow only within a moment of the gesture.
   * @returns {Promise<void>}
   */
  async connect() {
    if (this.#life) throw new Error('VoiceClient is already connecting or connected');
    const life = (this.#life = new AbortController());
    this.#chain.prepareAudio(); // first, while the gesture counts
    this.#telemetry?.start();
    this.#statsReporter?.start();
    this.#wordPoller = setInterval(() => this.#followWords(), WORD_POLL_MS);
    this.#setState('connecting');
    let signaling;
    try {
      signaling = await this.#open(life.signal);
    } catch (error) {
      if (!life.signal.aborted) this.#shutdown('failed', asError(error));
      throw error;
    }
    this.#supervise(signaling, life.signal);
    await this.#untilUp();
  }

  /**
   * Queue `text` to be spoken after anything queued before it.
   * @param {string} text
   * @returns {Promise<number>} the server's utterance id, as in `utterance` events
   * @throws {ServerError} when the server refuses it (e.g. code TEXT_TOO_LONG, QUEUE_FULL;
   *   RATE_LIMIT_EXCEEDED, with `body.retry_after_s`: until then, speak() is refused at once)
   * @throws {Error} when not connected (while reconnecting, say), or the connection drops
   *   before the server answers
   */
  async speak(text) {
    const signaling = this.#signaling;
    if (!signaling?.isOpen) throw new Error(`VoiceClient is ${this.state}, not connected`);
    this.#speakGate.check((code, fields) => this.#errors.describe(code, fields));
    const ticket = this.#cursor.speaking();
    let reply;
    try {
      reply = await signaling.request({ type: 'speak', text }, 'queued');
    } catch (error) {
      this.#speakGate.refused(error);
      throw error;
    }
    this.#cursor.queued(reply.utterance_id, ticket);
    return reply.utterance_id;
  }

  /**
   * Tell the session's agent what the listener typed (or said): it gets a `listener_input`
   * event. For sessions an app made for an agent (`hasAgent`).
   * @param {string} text at most 2000 characters
   * @throws {Error} when not connected
   */
  sendInput(text) {
    const signaling = this.#signaling;
    if (!signaling?.isOpen) throw new Error(`VoiceClient is ${this.state}, not connected`);
    signaling.send({ type: 'input', text });
  }

  /**
   * Barge-in: stop what is playing, now, and drop what is queued; each gets an
   * `utterance_ended` (cancelled). Disconnected, the server is told once reconnected.
   */
  cancel() {
    const sent = this.#signaling?.isOpen ?? false;
    this.#cursor.cancel(sent || !this.#life);
    this.#chain.cancel();
    if (sent) this.#signaling?.send({ type: 'cancel' });
  }

  /**
   * After AUDIO_PLAYBACK_FAILED (captions only), play speech again: call it from a user
   * gesture (a click), which is what the browser was waiting for. What was held plays first.
   * @returns {Promise<void>}
   */
  resumeAudio() {
    return this.#chain.enableAudio();
  }

  /** Hang up and end the session. Requests awaiting a reply reject. */
  close() {
    this.#shutdown('closed', new Error('VoiceClient was closed'), true);
    this.#telemetry?.flush();
    this.#telemetry?.stop();
    this.#forgetSession();
  }

  /**
   * What the listener gets, now: `state`, `transport`, `rtt` (heartbeat, seconds), the
   * transport's `codec`, over WebRTC getStats()'s (packetsReceived, packetsLost, jitter,
   * audioLevel, totalAudioEnergy, averageJitterBufferDelay, currentRoundTripTime) and once
   * WebSocket audio has played, its jitter buffer's (underruns, jitterBufferTarget,
   * bufferedAudio, framesPlayed, duplicateFrames, overflowFrames, audioLevel), reconnecting
   * too: it plays on what it holds. Times in seconds; a field is undefined until known.
   * @returns {Promise<ClientStats>}
   */
  async stats() {
    const transport = this.transport;
    // Switching, the next transport is not in use yet: nothing of it to report.
    const audio = this.#chain.audio;
    const current = audio?.kind === transport ? audio : null;
    return {
      state: this.state,
      transport,
      rtt: this.rtt,
      ...this.#chain.outputStats,
      ...(current && (await current.stats())),
    };
  }

  get #isUp() {
    return this.state === 'connected' || this.state === 'degraded';
  }

  /**
   * The transport the settings insist on, the server's first; null: WebRTC, falling back.
   * @returns {TransportKind | null}
   */
  get #forcedTransport() {
    const server = this.#welcome?.transport;
    if (server && server !== 'auto') return server;
    return this.#transportOption === 'auto' ? null : this.#transportOption;
  }

  /**
   * One connection: a token, the socket, hello (resuming the session if there is one), the
   * audio; all of it within CONNECT_TIMEOUT_MS.
   * @param {AbortSignal} lifeSignal
   * @returns {Promise<Signaling>}
   */
  async #open(lifeSignal) {
    const attempt = new AbortController();
    const giveUp = () => attempt.abort(new Error(`not connected after ${CONNECT_TIMEOUT_MS} ms`));
    const timer = setTimeout(giveUp, CONNECT_TIMEOUT_MS);
    const stop = () => attempt.abort(lifeSignal.reason);
    lifeSignal.addEventListener('abort', stop);
    /** @type {Signaling | null} */
    let signaling = null;
    this.#errors.load(attempt.signal); // for errors to come; the connection does not wait on it
    try {
      const token = await abortable(this.#newToken(attempt.signal), attempt.signal);
      const opened = (signaling = new Signaling(this.#url, {
        onMessage: (message) => this.#receive(message),
        onAudio: (message) => this.#chain.receive(message),
      }));
      // Closing it settles whatever waits on it, with an error.
      const abandon = () => opened.close(CLOSE_CODES_NORMAL, 'attempt abandoned');
      attempt.signal.addEventListener('abort', abandon);
      await signaling.opened;
      await this.#hello(signaling, token);
      this.#adopt(signaling);
      await this.#chain.start(signaling);
      return signaling;
    } catch (error) {
      signaling?.close();
      if (error instanceof ServerError && error.code === 'AUTHENTICATION_FAILED') {
        this.#devTokens?.refused();
      }
      throw attempt.signal.reason ?? error;
    } finally {
      clearTimeout(timer);
      lifeSignal.removeEventListener('abort', stop);
    }
  }

  /**
   * @param {AbortSignal} signal
   * @returns {Promise<string | undefined>}
   */
  async #newToken(signal) {
    if (this.#devTokens) return this.#devTokens.get(signal);
    return typeof this.#token === 'function' ? this.#token(signal) : this.#token;
  }

  /**
   * @param {Signaling} signaling
   * @param {string | undefined} token
   */
  async #hello(signaling, token) {
    const hello = { type: 'hello', version: VERSION, ...(token && { token }) };
    if (this.#welcome) {
      this.#chain.notePosition(); // WebSocket audio may have played on since the drop
      const resume = { ...hello, resume: this.#welcome.resume_token, ...this.#cursor.resumeFields() };
      try {
        this.#welcomed(await signaling.request(resume, 'welcome'));
        return;
      } catch (error) {
        if (!(error instanceof ServerError && error.code === 'SESSION_NOT_FOUND')) throw error;
        this.#emit('error', error.body); // what was queued is gone: the app should know
        this.#forgetSession();
      }
    }
    this.#welcomed(await signaling.request(hello, 'welcome'));
  }

  /** @param {any} welcome */
  #welcomed(welcome) {
    this.#welcome = welcome;
    if (this.#telemetry) this.#telemetry.sessionId = welcome.session_id;
    this.#chain.begin();
  }

  /** Start over in a new session: nothing of the old one applies, its positions least of all. */
  #forgetSession() {
    this.#chain.forgetSession();
    this.#welcome = null;
    this.#cursor.forget();
    this.#words.clear();
    this.#syncs.clear();
    this.#followWords();
  }

  /**
   * Make `signaling` the connection: heartbeats, position reports, a cancel made meanwhile.
   * @param {Signaling} signaling
   */
  #adopt(signaling) {
    const { heartbeat, position_interval_ms: positionIntervalMs } = this.#welcome;
    this.#signaling = signaling;
    signaling.startHeartbeat(heartbeat.interval_ms, heartbeat.timeout_ms);
    const reporter = setInterval(() => this.#reportPosition(), positionIntervalMs);
    signaling.closed.then(() => clearInterval(reporter));
    if (this.#cursor.connected()) signaling.send({ type: 'cancel' });
  }

  /**
   * Reconnect whenever the connection drops, until given up or closed.
   * @param {Signaling} signaling
   * @param {AbortSignal} lifeSignal
   */
  #supervise(signaling, lifeSignal) {
    const { reconnect } = this.#welcome;
    const supervisor = new ReconnectionSupervisor({
      policy: {
        baseMs: reconnect.base_ms ?? RECONNECT_BASE_MS,
        capMs: reconnect.cap_ms ?? RECONNECT_CAP_MS,
        maxAttempts: this.#maxAttempts ?? reconnect.max_attempts,
        stableAfterMs: RECONNECT_STABLE_AFTER_MS,
      },
      connect: (signal) => this.#open(signal),
      onDrop: ({ code, reason }) => {
        this.#chain.dropped();
        // Another connection resumed the session: do not reconnect.
        if (code === CLOSE_CODES_REPLACED) {
          this.#shutdown('closed', new Error(`the session was resumed elsewhere (${reason})`));
          return false;
        }
        // After a drain the close was announced, and told (SERVER_DRAINING).
        if (this.#drained !== this.#signaling) {
          this.#emitError('WEBSOCKET_CONNECTION_FAILED', `closed: ${code} ${reason}`);
        }
        return true;
      },
      goingAway: ({ code }) => code === CLOSE_CODES_GOING_AWAY,
      onAttempt: (attempt, maxAttempts) => {
        this.#setState('reconnecting', { attempt, maxAttempts });
        this.#telemetry?.record({ type: 'reconnect', attempt });
      },
      onAttemptFailed: (error, attempt) => {
        // The app made no request the server's refusal answers (AUTHENTICATION_FAILED: a new
        // token, say): it hears of it here.
        if (error instanceof ServerError) this.#emit('error', error.body);
        console.info(`voice-rtc: reconnection attempt ${attempt} failed:`, asError(error).message);
      },
      onGiveUp: (error) => this.#shutdown('failed', error),
    });
    supervisor.run(signaling, lifeSignal);
  }

  /** @param {any} message a JSON message of the server's that answers no request */
  #receive(message) {
    if (message.type === 'utterance_started' || message.type === 'utterance_ended') {
      if (!this.#cursor.acceptEvent(message)) return;
      if (message.type === 'utterance_started') this.#words.started(message);
      else this.#words.ended(message);
      this.#emit('utterance', message);
    } else if (message.type === 'utterance_words') {
      if (this.#cursor.acceptEvent(message)) this.#words.addWords(message);
    } else if (message.type === 'sync') {
      this.#syncs.add(message);
    } else if (message.type === 'drain') {
      this.#drained = this.#signaling;
      // Where playback is, before the server hands the session on: the next server starts there.
      this.#reportPosition();
      const seconds = Math.round(message.deadline_ms / 1000);
      const detail = `the server is shutting down within ${seconds} s; speech in progress may finish`;
      this.#emitError('SERVER_DRAINING', detail);
    } else if (message.type === 'error') {
      this.#emit('error', message);
    }
  }

  /** Look up the word playing now; tell it when it changed. */
  #followWords() {
    const playing = this.#chain.playing();
    let seq = null;
    if (playing && 'seq' in playing) seq = playing.seq;
    else if (playing) seq = this.#syncs.seqAt(playing.transport_id, playing.rtp_timestamp);
    for (const word of this.#words.follow(seq)) this.#emit('word', word);
  }

  #reportPosition() {
    this.#chain.notePosition();
    if (!this.#signaling?.isOpen) return;
    const position = this.#cursor.takeReport();
    if (position) this.#signaling.send({ type: 'position', ...position });
  }

  /**
   * Release everything the connection holds, and settle what waits on it.
   * @param {'failed' | 'closed'} state
   * @param {Error} error
   * @param {boolean} [forgetPath] the next connect() starts from WebRTC again
   */
  #shutdown(state, error, forgetPath = false) {
    this.#life?.abort(error);
    this.#life = null;
    this.#statsReporter?.stop();
    clearInterval(this.#wordPoller);
    this.#chain.shutdown(forgetPath);
    this.#followWords(); // nothing plays now
    this.#signaling?.close();
    this.#signaling = null;
    this.#setState(state, { error });
  }

  /**
   * Resolves once `connected` or `degraded`; rejects on `failed` or `closed`.
   * @returns {Promise<void>}
   */
  #untilUp() {
    return new Promise((resolve, reject) => {
      const check = () => {
        const { state, error } = this.#stateDetail;
        if (this.#isUp) resolve();
        else if (state === 'failed' || state === 'closed') reject(error);
        else return;
        this.removeEventListener('state', check);
      };
      this.addEventListener('state', check);
      check();
    });
  }

  /**
   * @param {ClientState} state
   * @param {Omit<StateDetail, 'state'>} [detail]
   */
  #setState(state, detail = {}) {
    /** @type {Record<string, unknown>} */
    const next = { state, ...detail };
    /** @type {Record<string, unknown>} */
    const previous = this.#stateDetail;
    const same = Object.keys({ ...next, ...previous }).every((key) => next[key] === previous[key]);
    if (same) return;
    this.#stateDetail = /** @type {StateDetail} */ (next);
    this.#emit('state', this.#stateDetail);
  }

  /**
   * An error this client raises itself, described by the server's table.
   * @param {string} code
   * @param {string} detail
   */
  #emitError(code, detail) {
    this.#emit('error', this.#errors.describe(code, { detail }));
  }

  /**
   * @template {keyof VoiceClientEventMap} K
   * @param {K} type
   * @param {VoiceClientEventMap[K]['detail']} detail
   */
  #emit(type, detail) {
    if (type === 'error') {
      const body = /** @type {ErrorBody} */ (detail);
      const message = (body.detail ?? body.message)?.slice(0, 500);
      this.#telemetry?.record({ type: 'error', code: body.code, message });
    }
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function defaultUrl() {
  const url = new URL(PATHS_LISTENER, globalThis.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** The page's localStorage, or null where it is unavailable (node, a sandboxed frame). */
function localStorageOrNull() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/** @param {unknown} error */
function asError(error) {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * `promise`'s outcome, unless `signal` aborts first: then its reason.
 * @template T
 * @param {Promise<T>} promise
 * @param {AbortSignal} signal
 * @returns {Promise<T>}
 */
function abortable(promise, signal) {
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) abort();
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
