/**
 * voice-rtc browser client: a listener's session with a voice-rtc server, kept through network
 * trouble. Speech comes over WebRTC; over the signaling WebSocket when WebRTC cannot connect or
 * loses too much; as captions only when the browser will not play audio at all.
 *
 *   const client = new VoiceClient();
 *   client.addEventListener('state', ({ detail }) => console.log(detail.state));
 *   client.addEventListener('utterance', ({ detail }) => console.log(detail));
 *   await client.connect();              // from a click: browsers only play audio after one
 *   const id = await client.speak('Hello there.');
 *
 * Speaks protocol version 1 (signaling/PROTOCOL.md). No dependencies, no build step.
 */
import { RetrySchedule } from './backoff.js';
import { DevTokens } from './dev-tokens.js';
import { ErrorTable } from './errors.js';
import { PcmPlayer } from './pcm-player.js';
import { httpUrl, ServerError, Signaling } from './signaling.js';
import { Telemetry } from './telemetry.js';
import { WebRTCAudio } from './webrtc-audio.js';
import { WebSocketAudio } from './websocket-audio.js';

export { ServerError };

const PROTOCOL_VERSION = 1;
const CONNECT_TIMEOUT_MS = 15000; // one attempt: the socket, hello, and the audio negotiated
const STABLE_AFTER_MS = 10000; // a connection up this long starts the reconnection count over
const CLOSE_REPLACED = 4001; // another connection resumed the session: do not reconnect
const STATS_REPORT_MS = 30000; // how often telemetry gets a summary of the audio statistics

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
 * - `error`: an error body ({code, message, detail, severity, recoverable, action}, the row of
 *   the server's table: errors.js) that answers no request of this client, so no promise
 *   rejected with it. `message` is for the user; `action` says what to do (`reconnect`,
 *   `enable_audio`, `retry_later`, `sign_in`, ...: signaling/PROTOCOL.md). Besides the server's:
 *   `SERVER_DRAINING` (the server is shutting down: speech in progress may finish, then the
 *   client reconnects, to another server behind the load balancer),
 *   `WEBSOCKET_CONNECTION_FAILED` (the connection dropped; reconnecting) and
 *   `AUDIO_PLAYBACK_FAILED` (the browser will not play audio: autoplay refused, or no
 *   AudioWorklet outside a secure context; captions meanwhile: call resumeAudio() from a user
 *   gesture). `SESSION_NOT_FOUND` means the session was gone and a new one started. A server
 *   error refusing a reconnection attempt comes here too (AUTHENTICATION_FAILED: the next
 *   attempt wants a new token).
 */
export class VoiceClient extends EventTarget {
  #url;
  #element;
  #iceTransportPolicy;
  #transportOption;
  #codec;
  #maxAttempts;
  #token;
  #devTokens = null; // without a token of the app's, a dev-mode server's
  #errors;
  #telemetry = null;
  #statsReporter = null; // interval: audio statistics to telemetry, while connected
  #underrunsReported = 0;
  #speakNotBefore = 0; // performance.now() time: a rate limit said to wait until then

  #stateDetail = { state: 'new' }; // the last `state` event's
  #life = null; // AbortController, from connect() until failed or closed
  // The session: it outlives connections.
  #welcome = null;
  #lastEventId = 0;
  #played = null; // the last position known played: {transport_id, seq | rtp_timestamp}
  #latestUtterance = 0; // the highest utterance id heard of
  #cancelledThrough = 0; // utterances up to this id were cancelled: their frames are dropped
  #cancels = 0; // cancel() calls so far
  #cancelOnResume = false; // cancel() while disconnected: send it once reconnected
  #path = null; // where speech goes: 'webrtc' -> 'websocket' -> 'captions' (the chain)
  #pathReason = 'other'; // why it is off WebRTC, as `transport` requests say
  #player = null; // plays WebSocket audio; keeps playing what it holds through a reconnection
  #announced = null; // the transport of the last `transport` event
  // The connection.
  #signaling = null;
  #audio = null; // the transport in use, or the last one
  #reported = null; // the position last reported on this connection
  #drained = null; // the signaling the server announced it is draining

  /**
   * @param {object} [options]
   * @param {string} [options.url] signaling WebSocket URL; default ws(s)://<this page's host>/ws
   * @param {HTMLAudioElement} [options.audioElement] plays WebRTC speech; default a detached one
   * @param {RTCIceTransportPolicy} [options.iceTransportPolicy] 'all' (default) or 'relay'
   * @param {'auto'|'webrtc'|'websocket'} [options.transport] 'auto' (default): WebRTC, falling
   *   back to the WebSocket; otherwise only that one (unless the server insists on another)
   * @param {'pcm_s16le'|'mulaw'} [options.codec] of WebSocket audio; mulaw halves its bandwidth
   * @param {number} [options.maxReconnectAttempts] default: the server's `reconnect.max_attempts`
   * @param {string | ((signal: AbortSignal) => string | undefined | Promise<string | undefined>)}
   *   [options.token] the token (a JWT) `hello` carries, or a function giving one, asked before
   *   every connection (tokens are short-lived; reconnections may come much later); `signal`
   *   aborts when the attempt is given up: pass it to fetch(). Default: a dev-mode server's
   *   (dev-tokens.js), or none.
   * @param {boolean} [options.telemetry] send errors, fallbacks, reconnections and audio
   *   statistics to the server's /api/analytics (telemetry.js); default true
   */
  constructor({
    url,
    audioElement,
    iceTransportPolicy = 'all',
    transport = 'auto',
    codec = 'pcm_s16le',
    maxReconnectAttempts,
    token,
    telemetry = true,
  } = {}) {
    super();
    this.#url = url ?? defaultUrl();
    this.#element = audioElement ?? new Audio();
    this.#iceTransportPolicy = iceTransportPolicy;
    this.#transportOption = transport;
    this.#codec = codec;
    this.#maxAttempts = maxReconnectAttempts;
    this.#token = token;
    if (token === undefined) this.#devTokens = new DevTokens(this.#url);
    this.#errors = new ErrorTable(this.#url);
    if (telemetry) {
      this.#telemetry = new Telemetry({
        url: httpUrl(this.#url, '/api/analytics'),
        token: (signal) => this.#newToken(signal),
        storage: localStorageOrNull(),
      });
      // What is still queued goes as the page does (or at its next load).
      globalThis.addEventListener?.('pagehide', () => this.#telemetry.flush({ keepalive: true }));
    }
  }

  /**
   * The error body for `code`, from the server's table (GET /api/errors): its message for the
   * user and its `action`, with `fields` (say, a `detail`) over them.
   */
  describeError(code, fields = {}) {
    return this.#errors.describe(code, fields);
  }

  /** See the class comment. */
  get state() {
    return this.#stateDetail.state;
  }

  /**
   * Where speech is going, as the last `state` event said: 'webrtc', 'websocket', 'captions',
   * or null when not connected.
   */
  get transport() {
    return this.#isUp ? this.#stateDetail.transport : null;
  }

  /** The session's id (the same after a resume), or null. */
  get sessionId() {
    return this.#welcome?.session_id ?? null;
  }

  /** Round-trip time of the last heartbeat in seconds, or null before the first. */
  get rtt() {
    return this.#signaling?.rtt ?? null;
  }

  /** The MediaStream received over WebRTC (for an AnalyserNode, say), or null. */
  get remoteStream() {
    return this.#audio instanceof WebRTCAudio ? this.#audio.stream : null;
  }

  /** The RTCPeerConnection in use, or null. */
  get pc() {
    return this.#audio instanceof WebRTCAudio ? this.#audio.pc : null;
  }

  /** The AudioNode WebSocket audio plays from (for an AnalyserNode, say), or null. */
  get audioOutput() {
    return this.#player?.output ?? null;
  }

  /**
   * Start the session (or resume it, after `failed`): resolves once speech can play,
   * `connected` or `degraded`; rejects if the first connection fails. Call it from a user
   * gesture: browsers play audio only after one.
   */
  async connect() {
    if (this.#life) throw new Error('VoiceClient is already connecting or connected');
    const life = (this.#life = new AbortController());
    if (this.#telemetry) {
      this.#telemetry.start();
      this.#statsReporter = setInterval(
        () => this.#reportStats().catch(() => {}), // a transport closing meanwhile: next time
        STATS_REPORT_MS,
      );
    }
    if (this.#transportOption === 'websocket') {
      // WebSocket audio is certain: create the AudioContext now, in the caller's gesture.
      try {
        this.#player ??= new PcmPlayer();
      } catch {
        // #startPlayer tries again, and reports why it cannot.
      }
    }
    this.#setState('connecting');
    try {
      await this.#open(life.signal);
    } catch (error) {
      if (!life.signal.aborted) this.#shutdown('failed', error);
      throw error;
    }
    this.#supervise(life.signal);
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
    const waitMs = this.#speakNotBefore - performance.now();
    if (waitMs > 0) {
      // Told to wait: asking sooner would only be refused again.
      const retryAfterS = Math.ceil(waitMs / 1000);
      throw new ServerError(
        this.#errors.describe('RATE_LIMIT_EXCEEDED', {
          detail: `too many requests; retry in ${retryAfterS} s`,
          retry_after_s: retryAfterS,
        }),
      );
    }
    const cancels = this.#cancels;
    let id;
    try {
      ({ utterance_id: id } = await signaling.request({ type: 'speak', text }, 'queued'));
    } catch (error) {
      const retryAfterS = error.body?.retry_after_s;
      if (retryAfterS) this.#speakNotBefore = performance.now() + retryAfterS * 1000;
      throw error;
    }
    this.#latestUtterance = Math.max(this.#latestUtterance, id);
    // The server handles messages in order: a cancel() sent after this speak cancelled it too.
    if (this.#cancels !== cancels) this.#cancelledThrough = Math.max(this.#cancelledThrough, id);
    return id;
  }

  /**
   * Barge-in: stop what is playing, now, and drop what is queued; each gets an
   * `utterance_ended` (cancelled). Disconnected, the server is told once reconnected.
   */
  cancel() {
    this.#cancels++;
    this.#cancelledThrough = this.#latestUtterance;
    this.#player?.flush();
    if (this.#signaling?.isOpen) this.#signaling.send({ type: 'cancel' });
    else if (this.#life) this.#cancelOnResume = true;
  }

  /**
   * On captions only (after AUDIO_PLAYBACK_FAILED), play speech again, over the WebSocket. Call
   * it from a user gesture (a click): that is what the browser was waiting for.
   */
  async resumeAudio() {
    if (this.#path !== 'captions') return;
    const player = await this.#startPlayer();
    if (!player || this.#path !== 'captions') return;
    this.#path = 'websocket'; // reconnecting, the next connection plays it
    if (this.#isUp && this.#audio instanceof WebSocketAudio) {
      this.#audio.play(player);
      this.#audioUp(this.#audio, 'audio enabled');
    }
  }

  /** Hang up and end the session. Requests awaiting a reply reject. */
  close() {
    this.#shutdown('closed', new Error('VoiceClient was closed'));
    this.#telemetry?.flush();
    this.#telemetry?.stop();
    this.#forgetSession();
    this.#path = null;
    this.#pathReason = 'other';
  }

  /**
   * What the listener gets, now: `state`, `transport`, `rtt` (heartbeat, seconds), the
   * transport's `codec`, over WebRTC getStats()'s (packetsReceived, packetsLost, jitter,
   * audioLevel, totalAudioEnergy, averageJitterBufferDelay, currentRoundTripTime) and once
   * WebSocket audio has played, its jitter buffer's (underruns, jitterBufferTarget,
   * bufferedAudio, duplicateFrames, overflowFrames, audioLevel), reconnecting too: it plays on
   * what it holds. Times in seconds; a field is undefined until known.
   */
  async stats() {
    const transport = this.transport;
    // Switching, the next transport is not in use yet: nothing of it to report.
    const audio = this.#audio?.kind === transport ? this.#audio : null;
    return {
      state: this.state,
      transport,
      rtt: this.rtt,
      ...this.#player?.stats,
      ...(audio && (await audio.stats())),
    };
  }

  get #isUp() {
    return this.state === 'connected' || this.state === 'degraded';
  }

  /** The transport the settings insist on, the server's first; null: WebRTC, falling back. */
  get #forcedTransport() {
    const server = this.#welcome?.transport;
    if (server && server !== 'auto') return server;
    return this.#transportOption === 'auto' ? null : this.#transportOption;
  }

  /**
   * One connection: a token, the socket, hello (resuming the session if there is one), the
   * audio; all of it within CONNECT_TIMEOUT_MS.
   */
  async #open(lifeSignal) {
    const attempt = new AbortController();
    const giveUp = () => attempt.abort(new Error(`not connected after ${CONNECT_TIMEOUT_MS} ms`));
    const timer = setTimeout(giveUp, CONNECT_TIMEOUT_MS);
    const stop = () => attempt.abort(lifeSignal.reason);
    lifeSignal.addEventListener('abort', stop);
    let signaling = null;
    this.#errors.load(attempt.signal); // for errors to come; the connection does not wait on it
    try {
      const token = await abortable(this.#newToken(attempt.signal), attempt.signal);
      signaling = new Signaling(this.#url, {
        onMessage: (message) => this.#receive(message),
        onAudio: (message) => this.#receiveAudio(message),
      });
      // Closing it settles whatever waits on it, with an error.
      attempt.signal.addEventListener('abort', () => signaling.close(1000, 'attempt abandoned'));
      await signaling.opened;
      await this.#hello(signaling, token);
      this.#adopt(signaling);
      await (this.#path === 'webrtc' ? this.#startWebRTC() : this.#startWebSocket());
    } catch (error) {
      signaling?.close();
      if (error.code === 'AUTHENTICATION_FAILED') this.#devTokens?.refused();
      throw attempt.signal.reason ?? error;
    } finally {
      clearTimeout(timer);
      lifeSignal.removeEventListener('abort', stop);
    }
  }

  async #newToken(signal) {
    if (this.#devTokens) return this.#devTokens.get(signal);
    return typeof this.#token === 'function' ? this.#token(signal) : this.#token;
  }

  async #hello(signaling, token) {
    const hello = { type: 'hello', version: PROTOCOL_VERSION, ...(token && { token }) };
    if (this.#welcome) {
      this.#notePosition(); // WebSocket audio may have played on since the drop
      const resume = {
        ...hello,
        resume: this.#welcome.resume_token,
        last_event: this.#lastEventId,
        ...(this.#played && { position: this.#played }),
      };
      try {
        this.#welcomed(await signaling.request(resume, 'welcome'));
        return;
      } catch (error) {
        if (error.code !== 'SESSION_NOT_FOUND') throw error;
        this.#emit('error', error.body); // what was queued is gone: the app should know
        this.#forgetSession();
      }
    }
    this.#welcomed(await signaling.request(hello, 'welcome'));
  }

  #welcomed(welcome) {
    this.#welcome = welcome;
    if (this.#telemetry) this.#telemetry.sessionId = welcome.session_id;
    if (this.#path !== null) return;
    this.#path = this.#forcedTransport ?? 'webrtc';
    if (this.#path === 'websocket') this.#pathReason = 'forced';
  }

  /** Start over in a new session: nothing of the old one applies, its positions least of all. */
  #forgetSession() {
    this.#audio?.close();
    this.#audio = null;
    this.#welcome = null;
    this.#lastEventId = 0;
    this.#played = null;
    this.#latestUtterance = 0;
    this.#cancelledThrough = 0;
    this.#cancelOnResume = false;
    this.#player?.reset();
  }

  /** Make `signaling` the connection: heartbeats, position reports, a pending cancel. */
  #adopt(signaling) {
    const { heartbeat, position_interval_ms: positionIntervalMs } = this.#welcome;
    this.#signaling = signaling;
    this.#reported = null;
    signaling.startHeartbeat(heartbeat.interval_ms, heartbeat.timeout_ms);
    const reporter = setInterval(() => this.#reportPosition(), positionIntervalMs);
    signaling.closed.then(() => clearInterval(reporter));
    if (this.#cancelOnResume) {
      signaling.send({ type: 'cancel' });
      this.#cancelOnResume = false;
    }
  }

  async #startWebRTC() {
    const signaling = this.#signaling;
    let audio = null;
    try {
      audio = new WebRTCAudio({
        iceServers: this.#welcome.ice_servers,
        iceTransportPolicy: this.#iceTransportPolicy,
        element: this.#element,
        fallback: this.#welcome.fallback,
        onConnected: () => this.#audioUp(audio),
        onFailure: (reason, detail) => this.#audioFailed(audio, reason, detail),
        onAutoplayBlocked: () => this.#autoplayBlocked(audio),
      });
      this.#replaceAudio(audio);
      await audio.negotiate(signaling);
    } catch (error) {
      if (audio && audio !== this.#audio) return; // it failed meanwhile, and was dealt with
      // Unless the connection itself went, WebRTC is unusable here (disabled in this browser,
      // the offer refused): fall back, when allowed.
      if (this.#forcedTransport || !signaling.isOpen) throw error;
      this.#path = 'websocket';
      this.#pathReason = 'unsupported';
      await this.#startWebSocket(`WebRTC unavailable: ${error.message}`);
    }
  }

  /** @param {string} [detail] why speech moves here, in words */
  async #startWebSocket(detail) {
    const signaling = this.#signaling;
    const audio = new WebSocketAudio(this.#codec);
    this.#replaceAudio(audio); // at once: whatever it replaces is over from now on
    if (this.#path === 'websocket') {
      const player = await this.#startPlayer();
      if (player) audio.play(player);
    }
    const request = {
      type: 'transport',
      mode: 'websocket',
      codec: this.#codec,
      reason: this.#pathReason,
    };
    audio.transportId = (await signaling.request(request, 'transport')).transport_id;
    this.#audioUp(audio, detail);
  }

  /** The player, started; or null, having moved to captions only, if audio cannot play. */
  async #startPlayer() {
    try {
      this.#player ??= new PcmPlayer();
      await this.#player.start();
      return this.#player;
    } catch (error) {
      this.#player?.close();
      this.#player = null;
      this.#path = 'captions';
      this.#emitError('AUDIO_PLAYBACK_FAILED', error.message);
      return null;
    }
  }

  /** Move speech down the chain on this connection; the session and its cursor carry over. */
  async #fallBack(from, path, reason, detail) {
    if (from !== this.#audio) return;
    this.#path = path;
    this.#pathReason = reason;
    this.#reportPosition(); // the old transport's final position, before the switch
    await this.#startWebSocket(detail);
  }

  #audioFailed(audio, reason, detail) {
    const signaling = this.#signaling;
    if (audio !== this.#audio) return;
    if (this.#forcedTransport) {
      // Try again on a new connection, which negotiates a new peer connection.
      signaling.close(1000, `WebRTC: ${reason}`);
      return;
    }
    this.#fallBack(audio, 'websocket', reason, detail).catch((error) =>
      this.#fallbackFailed(signaling, error),
    );
  }

  #autoplayBlocked(audio) {
    const signaling = this.#signaling;
    this.#emitError('AUDIO_PLAYBACK_FAILED', 'audio.play() was not allowed');
    if (audio !== this.#audio || this.#forcedTransport) return;
    // WebSocket audio would be refused too; captions keep the listener informed meanwhile.
    this.#fallBack(audio, 'captions', 'other', 'the browser refused to play audio').catch(
      (error) => this.#fallbackFailed(signaling, error),
    );
  }

  /** Start over on a new connection, which starts on the fallback path. */
  #fallbackFailed(signaling, error) {
    console.warn('voice-rtc: switching transports failed:', error.message);
    signaling.close(1000, 'switching transports failed');
  }

  #replaceAudio(next) {
    this.#notePosition();
    this.#audio?.close();
    this.#audio = next;
  }

  /** Speech flows on `audio`; `detail` says why it moved there, if it did. */
  #audioUp(audio, detail) {
    if (audio !== this.#audio) return;
    const transport = audio.kind;
    if (transport !== this.#announced) {
      this.#announced = transport;
      const reason = transport === 'webrtc' ? undefined : this.#pathReason;
      this.#emit('transport', { transport, reason, detail });
      if (reason) this.#telemetry?.record({ type: 'fallback', to: transport, reason });
    }
    const intended = this.#forcedTransport ?? 'webrtc';
    this.#setState(transport === intended ? 'connected' : 'degraded', { transport });
  }

  /** Reconnect whenever the connection drops, until given up or closed. */
  async #supervise(lifeSignal) {
    const { reconnect } = this.#welcome;
    const schedule = new RetrySchedule({
      baseMs: reconnect.base_ms,
      capMs: reconnect.cap_ms,
      maxAttempts: this.#maxAttempts ?? reconnect.max_attempts,
      stableAfterMs: STABLE_AFTER_MS,
    });
    schedule.connected(performance.now());
    for (;;) {
      const { code, reason } = await this.#signaling.closed;
      if (lifeSignal.aborted) return;
      this.#notePosition();
      this.#audio.close();
      if (code === CLOSE_REPLACED) {
        this.#shutdown('closed', new Error(`the session was resumed elsewhere (${reason})`));
        return;
      }
      // After a drain the close was announced, and told (SERVER_DRAINING).
      if (this.#drained !== this.#signaling) {
        this.#emitError('WEBSOCKET_CONNECTION_FAILED', `closed: ${code} ${reason}`);
      }
      schedule.dropped(performance.now());
      if (!(await this.#reconnect(schedule, lifeSignal))) return;
      schedule.connected(performance.now());
    }
  }

  /** @returns {Promise<boolean>} whether it reconnected; if not, the client is failed or closed */
  async #reconnect(schedule, lifeSignal) {
    let toldToWaitMs = 0; // a rate limit's retry_after_s: not sooner than that
    for (let next = schedule.next(); next; next = schedule.next()) {
      this.#setState('reconnecting', { attempt: next.attempt, maxAttempts: schedule.maxAttempts });
      this.#telemetry?.record({ type: 'reconnect', attempt: next.attempt });
      await sleep(Math.max(next.delayMs, toldToWaitMs), lifeSignal);
      if (lifeSignal.aborted) return false;
      try {
        await this.#open(lifeSignal);
        return true;
      } catch (error) {
        if (lifeSignal.aborted) return false;
        toldToWaitMs = (error.body?.retry_after_s ?? 0) * 1000;
        // The app made no request the server's refusal answers (AUTHENTICATION_FAILED: a new
        // token, say): it hears of it here.
        if (error instanceof ServerError) this.#emit('error', error.body);
        console.info(`voice-rtc: reconnection attempt ${next.attempt} failed:`, error.message);
      }
    }
    const error = new Error(`not reconnected after ${schedule.maxAttempts} attempts`);
    this.#shutdown('failed', error);
    return false;
  }

  #receive(message) {
    if (message.type === 'utterance_started' || message.type === 'utterance_ended') {
      if (message.event_id <= this.#lastEventId) return; // once each, whatever is replayed
      this.#lastEventId = message.event_id;
      this.#latestUtterance = Math.max(this.#latestUtterance, message.utterance_id);
      this.#emit('utterance', message);
    } else if (message.type === 'drain') {
      this.#drained = this.#signaling;
      const seconds = Math.round(message.deadline_ms / 1000);
      const detail = `the server is shutting down within ${seconds} s; speech in progress may finish`;
      this.#emitError('SERVER_DRAINING', detail);
    } else if (message.type === 'error') {
      this.#emit('error', message);
    }
  }

  #receiveAudio(message) {
    if (this.#audio instanceof WebSocketAudio) this.#audio.receive(message, this.#cancelledThrough);
  }

  #notePosition() {
    const position = this.#audio?.position();
    if (position) this.#played = position;
  }

  #reportPosition() {
    this.#notePosition();
    const position = this.#played;
    if (!position || samePosition(position, this.#reported) || !this.#signaling?.isOpen) return;
    this.#signaling.send({ type: 'position', ...position });
    this.#reported = position;
  }

  /** Release everything the connection holds, and settle what waits on it. */
  #shutdown(state, error) {
    this.#life?.abort(error);
    this.#life = null;
    clearInterval(this.#statsReporter);
    this.#notePosition();
    this.#signaling?.close();
    this.#signaling = null;
    this.#audio?.close();
    this.#audio = null;
    this.#player?.close();
    this.#player = null;
    this.#announced = null;
    this.#setState(state, { error });
  }

  /** Resolves once `connected` or `degraded`; rejects on `failed` or `closed`. */
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

  #setState(state, detail = {}) {
    const next = { state, ...detail };
    const previous = this.#stateDetail;
    const same = Object.keys({ ...next, ...previous }).every((key) => next[key] === previous[key]);
    if (same) return;
    this.#stateDetail = next;
    this.#emit('state', next);
  }

  /** An error this client raises itself, described by the server's table. */
  #emitError(code, detail) {
    this.#emit('error', this.#errors.describe(code, { detail }));
  }

  #emit(type, detail) {
    if (type === 'error') {
      const message = (detail.detail ?? detail.message)?.slice(0, 500);
      this.#telemetry?.record({ type: 'error', code: detail.code, message });
    }
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** A summary of the audio statistics, and any new underruns, for telemetry. */
  async #reportStats() {
    const stats = await this.stats();
    if (!this.#telemetry || !stats.transport) return;
    const ms = (seconds) => (seconds == null ? undefined : Math.min(seconds * 1000, 600000));
    const count = (n) => (n == null ? undefined : Math.max(0, n)); // packetsLost can be < 0
    this.#telemetry.record({
      type: 'stats',
      transport: stats.transport,
      rtt_ms: ms(stats.currentRoundTripTime ?? stats.rtt),
      jitter_ms: ms(stats.jitter),
      jitter_buffer_ms: ms(stats.averageJitterBufferDelay ?? stats.jitterBufferTarget),
      packets_received: count(stats.packetsReceived),
      packets_lost: count(stats.packetsLost),
    });
    const underruns = stats.underruns ?? 0;
    if (underruns < this.#underrunsReported) this.#underrunsReported = 0; // a new player
    const fresh = Math.min(underruns - this.#underrunsReported, 10000);
    if (fresh > 0) this.#telemetry.record({ type: 'underrun', transport: 'websocket', count: fresh });
    this.#underrunsReported = underruns;
  }
}

function defaultUrl() {
  const url = new URL('/ws', globalThis.location.href);
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

function samePosition(a, b) {
  return (
    a?.transport_id === b?.transport_id &&
    a?.seq === b?.seq &&
    a?.rtp_timestamp === b?.rtp_timestamp
  );
}

/** `promise`'s outcome, unless `signal` aborts first: then its reason. */
function abortable(promise, signal) {
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) abort();
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
