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
    /** @param {ChainOptions} options */
    constructor(options: ChainOptions);
    /** The transport in use (or the last one), or null. */
    get audio(): AudioTransport | null;
    /** The AudioNode WebSocket audio plays from, or null. */
    get outputNode(): AudioWorkletNode | null;
    /** Stats of the output, once it has started: it plays on what it holds through reconnections. */
    get outputStats(): import("./audio-output.js").OutputStats | undefined;
    /**
     * Create the audio output and ask it to run, now: call it in a user gesture's handler
     * (connect(), resumeAudio()), so that WebSocket audio may play whenever it comes.
     */
    prepareAudio(): void;
    /** A session starts (or resumes, or starts anew): the path, if it has none yet. */
    begin(): void;
    /**
     * Start speech on the path, on this connection.
     * @param {Signaling} signaling open, welcomed
     */
    start(signaling: Signaling): Promise<void>;
    /** @param {ArrayBuffer} message a binary message of the signaling */
    receive(message: ArrayBuffer): void;
    /** Barge-in: drop what is buffered, and what is being decoded. */
    cancel(): void;
    /** Note in the cursor what the transport played last. */
    notePosition(): void;
    /**
     * What plays now: a WebSocket frame's seq, or over WebRTC a packet's RTP timestamp; null
     * when nothing does. WebSocket audio plays on what it holds after its transport closed.
     */
    playing(): {
        transport_id: number;
        rtp_timestamp: number;
    } | {
        seq: number;
    } | null;
    /**
     * Play speech again after AUDIO_PLAYBACK_FAILED: call it from a user gesture (a click). What
     * the output held plays first.
     */
    enableAudio(): Promise<void>;
    /** The connection dropped: its transport is over. */
    dropped(): void;
    /** A new session: frames count from 0 again, nothing of the old one is to be played. */
    forgetSession(): void;
    /** Release everything; with `forgetPath`, the next session starts from WebRTC again. */
    shutdown(forgetPath?: boolean): void;
    #private;
}
/**
 * where speech goes
 */
export type TransportKind = "webrtc" | "websocket" | "captions";
/**
 * why speech is off WebRTC, as `transport` requests say
 */
export type FallbackReason = "forced" | "ice_timeout" | "connection_failed" | "packet_loss" | "unsupported" | "other";
export type WebSocketCodec = import("./frame-decoder.js").WebSocketCodec;
export type Signaling = import("./signaling.js").Signaling;
export type SessionCursor = import("./session-cursor.js").SessionCursor;
export type AudioTransport = WebRTCAudio | WebSocketAudio;
/**
 * a `transport` event's detail
 */
export type TransportEvent = {
    transport: TransportKind;
    /**
     * off WebRTC: why
     */
    reason?: FallbackReason | undefined;
    /**
     * why, in words
     */
    detail?: string | undefined;
};
export type ChainOptions = {
    /**
     * the transport the settings insist on, or null:
     * WebRTC, falling back
     */
    forced: () => TransportKind | null;
    cursor: SessionCursor;
    welcome: () => {
        ice_servers: RTCIceServer[];
        codecs?: string[];
        fallback: {
            ice_timeout_ms: number;
            loss_percent: number;
            loss_window_s: number;
        };
    };
    iceTransportPolicy: RTCIceTransportPolicy;
    /**
     * plays WebRTC speech
     */
    element: HTMLAudioElement;
    /**
     * the option
     */
    codec: "auto" | WebSocketCodec;
    /**
     * speech moved to another transport
     */
    onTransport: (event: TransportEvent) => void;
    /**
     * speech flows on
     * `transport`; `intended`: it is the one meant, not a fallback
     */
    onUp: (transport: TransportKind, intended: boolean) => void;
    /**
     * AUDIO_PLAYBACK_FAILED
     */
    onError: (code: string, detail: string) => void;
    /**
     * tell the server the old transport's final position
     */
    reportPosition: () => void;
    /**
     * give this connection up, to start over
     */
    restart: (reason: string) => void;
    /**
     * for tests: stand-ins for the transports and the output
     */
    make?: {
        webrtc?: ((options: ConstructorParameters<typeof WebRTCAudio>[0]) => WebRTCAudio) | undefined;
        websocket?: ((options: ConstructorParameters<typeof WebSocketAudio>[0]) => WebSocketAudio) | undefined;
        output?: (() => AudioOutput) | undefined;
        canDecodeOpus?: (() => Promise<boolean>) | undefined;
    } | undefined;
};
import { WebRTCAudio } from './webrtc-audio.js';
import { WebSocketAudio } from './websocket-audio.js';
import { AudioOutput } from './audio-output.js';
