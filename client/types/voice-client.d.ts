export { ServerError };
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
    /** @param {VoiceClientOptions} [options] */
    constructor({ url, audioElement, iceTransportPolicy, transport, codec, maxReconnectAttempts, token, telemetry, }?: VoiceClientOptions);
    /**
     * Listen for `state`, `transport`, `utterance` or `error` events (see the class comment).
     * @template {keyof VoiceClientEventMap} K
     * @overload
     * @param {K} type
     * @param {(event: VoiceClientEventMap[K]) => void} listener
     * @param {boolean | AddEventListenerOptions} [options]
     * @returns {void}
     */
    addEventListener<K extends keyof VoiceClientEventMap>(type: K, listener: (event: VoiceClientEventMap[K]) => void, options?: boolean | AddEventListenerOptions | undefined): void;
    /**
     * @overload
     * @param {string} type
     * @param {EventListenerOrEventListenerObject | null} listener
     * @param {boolean | AddEventListenerOptions} [options]
     * @returns {void}
     */
    addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions | undefined): void;
    /**
     * @template {keyof VoiceClientEventMap} K
     * @overload
     * @param {K} type
     * @param {(event: VoiceClientEventMap[K]) => void} listener
     * @param {boolean | EventListenerOptions} [options]
     * @returns {void}
     */
    removeEventListener<K extends keyof VoiceClientEventMap>(type: K, listener: (event: VoiceClientEventMap[K]) => void, options?: boolean | EventListenerOptions | undefined): void;
    /**
     * @overload
     * @param {string} type
     * @param {EventListenerOrEventListenerObject | null} listener
     * @param {boolean | EventListenerOptions} [options]
     * @returns {void}
     */
    removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions | undefined): void;
    /**
     * The error body for `code`, from the server's table (GET /api/errors): its message for the
     * user and its `action`, with `fields` (say, a `detail`) over them.
     * @param {string} code
     * @param {object} [fields]
     * @returns {ErrorBody}
     */
    describeError(code: string, fields?: object): ErrorBody;
    /** See the class comment. */
    get state(): ClientState;
    /**
     * Where speech is going, as the last `state` event said, or null when not connected.
     * @returns {TransportKind | null}
     */
    get transport(): TransportKind | null;
    /** The session's id (the same after a resume), or null. @returns {string | null} */
    get sessionId(): string | null;
    /**
     * Whether an app's agent drives the session (welcome's `agent`): then sendInput() reaches
     * it. False before the first welcome.
     */
    get hasAgent(): boolean;
    /** The word being heard now, or null: see `word` events. @returns {Word | null} */
    get currentWord(): Word | null;
    /** Round-trip time of the last heartbeat in seconds, or null before the first. */
    get rtt(): number | null;
    /** The MediaStream received over WebRTC (for an AnalyserNode, say), or null. */
    get remoteStream(): MediaStream | null;
    /** The RTCPeerConnection in use, or null. */
    get pc(): RTCPeerConnection | null;
    /** The AudioNode WebSocket audio plays from (for an AnalyserNode, say), or null. */
    get audioOutput(): AudioWorkletNode | null;
    /**
     * Start the session (or resume it, after `failed`): resolves once speech can play,
     * `connected` or `degraded`; rejects if the first connection fails. Call it in a user
     * gesture's handler (a click), before anything else is awaited: it asks the browser for
     * audio output then, which some browsers allow only within a moment of the gesture.
     * @returns {Promise<void>}
     */
    connect(): Promise<void>;
    /**
     * Queue `text` to be spoken after anything queued before it.
     * @param {string} text
     * @returns {Promise<number>} the server's utterance id, as in `utterance` events
     * @throws {ServerError} when the server refuses it (e.g. code TEXT_TOO_LONG, QUEUE_FULL;
     *   RATE_LIMIT_EXCEEDED, with `body.retry_after_s`: until then, speak() is refused at once)
     * @throws {Error} when not connected (while reconnecting, say), or the connection drops
     *   before the server answers
     */
    speak(text: string): Promise<number>;
    /**
     * Tell the session's agent what the listener typed (or said): it gets a `listener_input`
     * event. For sessions an app made for an agent (`hasAgent`).
     * @param {string} text at most 2000 characters
     * @throws {Error} when not connected
     */
    sendInput(text: string): void;
    /**
     * Barge-in: stop what is playing, now, and drop what is queued; each gets an
     * `utterance_ended` (cancelled). Disconnected, the server is told once reconnected.
     */
    cancel(): void;
    /**
     * After AUDIO_PLAYBACK_FAILED (captions only), play speech again: call it from a user
     * gesture (a click), which is what the browser was waiting for. What was held plays first.
     * @returns {Promise<void>}
     */
    resumeAudio(): Promise<void>;
    /** Hang up and end the session. Requests awaiting a reply reject. */
    close(): void;
    /**
     * What the listener gets, now: `state`, `transport`, `rtt` (heartbeat, seconds), the
     * transport's `codec`, over WebRTC getStats()'s (packetsReceived, packetsLost, jitter,
     * audioLevel, totalAudioEnergy, averageJitterBufferDelay, currentRoundTripTime) and once
     * WebSocket audio has played, its jitter buffer's (underruns, jitterBufferTarget,
     * bufferedAudio, framesPlayed, duplicateFrames, overflowFrames, audioLevel), reconnecting
     * too: it plays on what it holds. Times in seconds; a field is undefined until known.
     * @returns {Promise<ClientStats>}
     */
    stats(): Promise<ClientStats>;
    #private;
}
export type ErrorBody = import("./errors.js").ErrorBody;
export type TransportKind = import("./transport-chain.js").TransportKind;
export type TransportEvent = import("./transport-chain.js").TransportEvent;
export type WebSocketCodec = import("./frame-decoder.js").WebSocketCodec;
export type ClientStats = import("./stats-reporter.js").ClientStats;
export type Word = import("./word-timing.js").Word;
export type ClientState = "new" | "connecting" | "connected" | "degraded" | "reconnecting" | "failed" | "closed";
/**
 * a `state` event's detail (and what `state` says)
 */
export type StateDetail = {
    state: ClientState;
    /**
     * connected or degraded: where speech goes
     */
    transport?: import("./transport-chain.js").TransportKind | undefined;
    /**
     * reconnecting: this attempt...
     */
    attempt?: number | undefined;
    /**
     * ...of so many
     */
    maxAttempts?: number | undefined;
    /**
     * failed or closed: why
     */
    error?: Error | undefined;
};
/**
 * an `utterance` event's detail: the server's message
 */
export type UtteranceEvent = {
    type: "utterance_started" | "utterance_ended";
    event_id: number;
    utterance_id: number;
    text: string;
    /**
     * started: its first frame
     */
    seq?: number | undefined;
    /**
     * ended: frames played
     */
    frames?: number | undefined;
    /**
     * ended: why
     */
    reason?: "failed" | "done" | "cancelled" | undefined;
};
export type VoiceClientEventMap = {
    state: CustomEvent<StateDetail>;
    transport: CustomEvent<TransportEvent>;
    utterance: CustomEvent<UtteranceEvent>;
    word: CustomEvent<Word | null>;
    error: CustomEvent<ErrorBody>;
};
export type TokenSource = string | ((signal: AbortSignal) => string | undefined | Promise<string | undefined>);
export type VoiceClientOptions = {
    /**
     * signaling WebSocket URL; default ws(s)://<this page's host>/ws
     */
    url?: string | undefined;
    /**
     * plays WebRTC speech; default a detached one
     */
    audioElement?: HTMLAudioElement | undefined;
    /**
     * 'all' (default) or 'relay'
     */
    iceTransportPolicy?: RTCIceTransportPolicy | undefined;
    /**
     * 'auto' (default): WebRTC, falling
     * back to the WebSocket; otherwise only that one (unless the server insists on another)
     */
    transport?: "websocket" | "auto" | "webrtc" | undefined;
    /**
     * of WebSocket audio. 'auto' (default): Opus where
     * the browser decodes it (WebCodecs) and the server offers it, ~4 KB/s; else pcm_s16le,
     * 44 KB/s. 'mulaw' halves PCM's bandwidth.
     */
    codec?: import("./frame-decoder.js").WebSocketCodec | "auto" | undefined;
    /**
     * default: the server's `reconnect.max_attempts`
     */
    maxReconnectAttempts?: number | undefined;
    /**
     * the token (a JWT) `hello` carries, or a function giving one,
     * asked before every connection (tokens are short-lived; reconnections may come much later);
     * `signal` aborts when the attempt is given up: pass it to fetch(). Default: a dev-mode
     * server's (dev-tokens.js), or none.
     */
    token?: TokenSource | undefined;
    /**
     * send errors, fallbacks, reconnections and audio statistics
     * to the server's /api/analytics (telemetry.js); default true
     */
    telemetry?: boolean | undefined;
};
import { ServerError } from './signaling.js';
