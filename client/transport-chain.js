/**
 * The transport chain: where speech goes, and where it goes next when that fails.
 *
 *   webrtc --(ICE timeout, connection failed, packet loss, unsupported, audio refused)-->
 *   websocket --(no Web Audio at all)--> captions
 *
 * Off WebRTC it stays off for the session (a reconnection resumes on the same path). Audio
 * plays through one AudioOutput, created in the user gesture of connect() so that it may play
 * whenever it is needed: WebSocket audio always, WebRTC audio when the browser refuses it to the
 * media element once the gesture has passed (Firefox). While the browser refuses to play
 * WebSocket audio too, the listener gets captions, the output holds the audio, and
 * enableAudio() from a click plays it: nothing is lost. A transport the settings insist on does not fall back: its failure starts a new
 * connection instead.
 */
import { AudioOutput } from './audio-output.js';
import { canDecodeOpus, chooseCodec } from './frame-decoder.js';
import { WebRTCAudio } from './webrtc-audio.js';
import { WebSocketAudio } from './websocket-audio.js';

/**
 * @typedef {'webrtc' | 'websocket' | 'captions'} TransportKind where speech goes
 * @typedef {'forced' | 'ice_timeout' | 'connection_failed' | 'packet_loss' | 'unsupported'
 *   | 'other'} FallbackReason why speech is off WebRTC, as `transport` requests say
 * @typedef {import('./frame-decoder.js').WebSocketCodec} WebSocketCodec
 * @typedef {import('./signaling.js').Signaling} Signaling
 * @typedef {import('./session-cursor.js').SessionCursor} SessionCursor
 * @typedef {WebRTCAudio | WebSocketAudio} AudioTransport
 *
 * @typedef {object} TransportEvent a `transport` event's detail
 * @property {TransportKind} transport
 * @property {FallbackReason} [reason] off WebRTC: why
 * @property {string} [detail] why, in words
 */

/**
 * @typedef {object} ChainOptions
 * @property {() => TransportKind | null} forced the transport the settings insist on, or null:
 *   WebRTC, falling back
 * @property {SessionCursor} cursor
 * @property {() => {ice_servers: RTCIceServer[], codecs?: string[],
 *   fallback: {ice_timeout_ms: number, loss_percent: number, loss_window_s: number}}} welcome
 * @property {RTCIceTransportPolicy} iceTransportPolicy
 * @property {HTMLAudioElement} element plays WebRTC speech
 * @property {'auto' | WebSocketCodec} codec the option
 * @property {(event: TransportEvent) => void} onTransport speech moved to another transport
 * @property {(transport: TransportKind, intended: boolean) => void} onUp speech flows on
 *   `transport`; `intended`: it is the one meant, not a fallback
 * @property {(code: string, detail: string) => void} onError AUDIO_PLAYBACK_FAILED
 * @property {() => void} reportPosition tell the server the old transport's final position
 * @property {(reason: string) => void} restart give this connection up, to start over
 * @property {object} [make] for tests: stand-ins for the transports and the output
 * @property {(options: ConstructorParameters<typeof WebRTCAudio>[0]) => WebRTCAudio} [make.webrtc]
 * @property {(options: ConstructorParameters<typeof WebSocketAudio>[0]) => WebSocketAudio}
 *   [make.websocket]
 * @property {() => AudioOutput} [make.output]
 * @property {() => Promise<boolean>} [make.canDecodeOpus]
 */

export class TransportChain {
  #options;
  /** @type {TransportKind | null} where speech is meant to go; null before the session */
  #path = null;
  /** @type {FallbackReason} */
  #reason = 'other';
  /** @type {AudioTransport | null} the transport in use, or the last one */
  #audio = null;
  /** @type {AudioOutput | null} */
  #output = null;
  #noWebAudio = false; // constructing an AudioContext failed: captions only
  #toldRefused = false; // AUDIO_PLAYBACK_FAILED said, since audio last played
  /** @type {TransportKind | null} the transport of the last `transport` event */
  #announced = null;
  /** @type {Signaling | null} */
  #signaling = null;

  /** @param {ChainOptions} options */
  constructor(options) {
    this.#options = options;
  }

  /** The transport in use (or the last one), or null. */
  get audio() {
    return this.#audio;
  }

  /** The AudioNode WebSocket audio plays from, or null. */
  get outputNode() {
    return this.#output?.output ?? null;
  }

  /** Stats of the output, once it has started: it plays on what it holds through reconnections. */
  get outputStats() {
    return this.#output?.output ? this.#output.stats : undefined;
  }

  /**
   * Create the audio output and ask it to run, now: call it in a user gesture's handler
   * (connect(), resumeAudio()), so that WebSocket audio may play whenever it comes.
   */
  prepareAudio() {
    if (this.#output) {
      this.#output.resume().catch(() => {}); // asks at once, in the gesture
      return;
    }
    try {
      const output = (this.#output = (this.#options.make?.output ?? (() => new AudioOutput()))());
      output.onplaying = () => this.#outputPlaying(output);
      this.#noWebAudio = false;
    } catch {
      this.#noWebAudio = true; // reported when WebSocket audio needs it
    }
  }

  /** A session starts (or resumes, or starts anew): the path, if it has none yet. */
  begin() {
    if (this.#path !== null) return;
    this.#path = this.#options.forced() ?? 'webrtc';
    if (this.#path !== 'webrtc') this.#reason = 'forced';
  }

  /**
   * Start speech on the path, on this connection.
   * @param {Signaling} signaling open, welcomed
   */
  async start(signaling) {
    this.#signaling = signaling;
    await (this.#path === 'webrtc' ? this.#startWebRTC() : this.#startWebSocket());
  }

  /** @param {ArrayBuffer} message a binary message of the signaling */
  receive(message) {
    if (this.#audio instanceof WebSocketAudio) this.#audio.receive(message);
  }

  /** Barge-in: drop what is buffered, and what is being decoded. */
  cancel() {
    this.#output?.flush();
    if (this.#audio instanceof WebSocketAudio) this.#audio.discard();
  }

  /** Note in the cursor what the transport played last. */
  notePosition() {
    this.#options.cursor.notePlayed(this.#audio?.position() ?? null);
  }

  /**
   * What plays now: a WebSocket frame's seq, or over WebRTC a packet's RTP timestamp; null
   * when nothing does. WebSocket audio plays on what it holds after its transport closed.
   */
  playing() {
    return this.#audio?.playing() ?? null;
  }

  /**
   * Play speech again after AUDIO_PLAYBACK_FAILED: call it from a user gesture (a click). What
   * the output held plays first.
   */
  async enableAudio() {
    this.prepareAudio(); // synchronously, while the gesture counts
    const output = this.#output;
    if (!output || !(await this.#startOutput(output))) return;
    if (this.#path === 'captions') this.#path = 'websocket'; // the next connection plays too
    this.#outputPlaying(output);
  }

  /** The connection dropped: its transport is over. */
  dropped() {
    this.notePosition();
    this.#output?.stopStream();
    this.#audio?.close();
  }

  /** A new session: frames count from 0 again, nothing of the old one is to be played. */
  forgetSession() {
    this.#output?.stopStream();
    this.#audio?.close();
    this.#audio = null;
    this.#output?.reset();
  }

  /** Release everything; with `forgetPath`, the next session starts from WebRTC again. */
  shutdown(forgetPath = false) {
    this.notePosition();
    this.#audio?.close();
    this.#audio = null;
    this.#output?.close();
    this.#output = null;
    this.#announced = null;
    this.#toldRefused = false;
    if (forgetPath) {
      this.#path = null;
      this.#reason = 'other';
    }
  }

  async #startWebRTC() {
    const signaling = /** @type {Signaling} */ (this.#signaling);
    const { welcome, iceTransportPolicy, element, make } = this.#options;
    /** @type {WebRTCAudio | null} */
    let audio = null;
    try {
      const { ice_servers: iceServers, fallback } = welcome();
      audio = (make?.webrtc ?? ((options) => new WebRTCAudio(options)))({
        iceServers,
        iceTransportPolicy,
        element,
        fallback,
        onConnected: () => this.#up(/** @type {WebRTCAudio} */ (audio)),
        onFailure: (reason, detail) => this.#webrtcFailed(audio, reason, detail),
        onAutoplayBlocked: (stream) => this.#webrtcRefused(audio, stream),
      });
      this.#replace(audio);
      await audio.negotiate(signaling);
    } catch (error) {
      // It failed meanwhile (the watchdog, during gathering), and was dealt with.
      if (audio !== this.#audio || this.#path !== 'webrtc') return;
      // Unless the connection itself went, WebRTC is unusable here (disabled in this browser,
      // the offer refused): fall back, when allowed.
      if (this.#options.forced() || !signaling.isOpen) throw error;
      this.#path = 'websocket';
      this.#reason = 'unsupported';
      await this.#startWebSocket(`WebRTC unavailable: ${errorMessage(error)}`);
    }
  }

  /** @param {string} [detail] why speech moves here, in words */
  async #startWebSocket(detail) {
    const signaling = /** @type {Signaling} */ (this.#signaling);
    const { cursor, make } = this.#options;
    const codec = await this.#codec();
    const audio = (make?.websocket ?? ((options) => new WebSocketAudio(options)))({
      codec,
      cancellations: cursor,
    });
    this.#replace(audio); // at once: whatever it replaces is over from now on
    if (this.#path === 'websocket') {
      if (!this.#output && !this.#noWebAudio) this.prepareAudio(); // no gesture: it may hold
      const output = this.#output;
      if (!output) this.#refused('this browser has no Web Audio (AudioContext)');
      if (output && (await this.#startOutput(output)) !== null) audio.play(output);
      else this.#path = 'captions';
    }
    const request = { type: 'transport', mode: 'websocket', codec, reason: this.#reason };
    audio.transportId = (await signaling.request(request, 'transport')).transport_id;
    this.#up(audio, detail);
  }

  /** @returns {Promise<WebSocketCodec>} */
  async #codec() {
    const { codec, welcome, make } = this.#options;
    const offered = welcome().codecs;
    if (codec !== 'auto' && codec !== 'opus') return chooseCodec(codec, offered, false);
    return chooseCodec(codec, offered, await (make?.canDecodeOpus ?? canDecodeOpus)());
  }

  /**
   * Get the output playing, if the browser lets it; say so if not.
   * @param {AudioOutput} output
   * @returns {Promise<boolean | null>} whether it plays; null: it never can (no AudioWorklet)
   */
  async #startOutput(output) {
    let playing;
    try {
      playing = await output.start();
    } catch (error) {
      output.close();
      if (this.#output === output) this.#output = null;
      this.#refused(errorMessage(error));
      return null;
    }
    if (playing) this.#toldRefused = false;
    else this.#refused('the browser did not let the AudioContext start (no user gesture yet)');
    return playing;
  }

  /** @param {string} detail */
  #refused(detail) {
    if (this.#toldRefused) return;
    this.#toldRefused = true;
    this.#options.onError('AUDIO_PLAYBACK_FAILED', detail);
  }

  /** @param {AudioOutput} output */
  #outputPlaying(output) {
    this.#toldRefused = false;
    const audio = this.#audio;
    if (output !== this.#output || !(audio instanceof WebSocketAudio)) return;
    audio.play(output);
    if (audio.transportId) this.#up(audio, 'audio enabled');
  }

  /**
   * @param {WebRTCAudio | null} audio
   * @param {FallbackReason} reason
   * @param {string} detail
   */
  #webrtcFailed(audio, reason, detail) {
    if (!audio || audio !== this.#audio) return;
    if (this.#options.forced()) {
      // Try again on a new connection, which negotiates a new peer connection.
      this.#options.restart(`WebRTC: ${reason}`);
      return;
    }
    this.#fallBack(audio, reason, detail);
  }

  /**
   * @param {WebRTCAudio | null} audio
   * @param {MediaStream} stream
   */
  async #webrtcRefused(audio, stream) {
    // The output, started in connect()'s gesture, may play what the element may not.
    if (this.#output && (await this.#output.playStream(stream))) {
      if (audio === this.#audio) audio?.muteElement();
      else this.#output.stopStream(); // replaced meanwhile
      return;
    }
    this.#refused('audio.play() was not allowed');
    if (!audio || audio !== this.#audio || this.#options.forced()) return;
    // WebSocket audio plays where the AudioContext made in connect()'s gesture runs; where it
    // does not either, it holds the speech, with captions meanwhile.
    this.#fallBack(audio, 'other', 'the browser refused to play WebRTC audio');
  }

  /**
   * Move speech to the WebSocket on this connection; the session and its cursor carry over.
   * @param {AudioTransport} from
   * @param {FallbackReason} reason
   * @param {string} detail
   */
  #fallBack(from, reason, detail) {
    if (from !== this.#audio) return;
    this.#path = 'websocket';
    this.#reason = reason;
    this.#options.reportPosition(); // the old transport's final position, before the switch
    this.#startWebSocket(detail).catch((error) => {
      console.warn('voice-rtc: switching transports failed:', errorMessage(error));
      this.#options.restart('switching transports failed'); // the next starts on the fallback
    });
  }

  /** @param {AudioTransport} next */
  #replace(next) {
    this.notePosition();
    this.#output?.stopStream();
    this.#audio?.close();
    this.#audio = next;
  }

  /**
   * Speech flows on `audio`; `detail` says why it moved there, if it did.
   * @param {AudioTransport} audio
   * @param {string} [detail]
   */
  #up(audio, detail) {
    if (audio !== this.#audio) return;
    const transport = audio.kind;
    if (transport !== this.#announced) {
      this.#announced = transport;
      const reason = transport === 'webrtc' ? undefined : this.#reason;
      this.#options.onTransport({ transport, reason, detail });
    }
    const intended = transport === (this.#options.forced() ?? 'webrtc');
    this.#options.onUp(transport, intended);
  }
}

/** @param {unknown} error */
function errorMessage(error) {
  return error instanceof Error ? error.message : String(error);
}
