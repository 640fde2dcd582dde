/**
 * @typedef {'ice_timeout' | 'connection_failed' | 'packet_loss'} WebRTCFailure
 * @typedef {import('./session-cursor.js').PlayedPosition} PlayedPosition
 */
export class WebRTCAudio {
    /**
     * @param {object} options
     * @param {RTCIceServer[]} options.iceServers
     * @param {RTCIceTransportPolicy} options.iceTransportPolicy
     * @param {HTMLAudioElement} options.element plays the speech
     * @param {{ice_timeout_ms: number, loss_percent: number, loss_window_s: number}} options.fallback
     * @param {() => void} options.onConnected the first time media can flow
     * @param {(reason: WebRTCFailure, detail: string) => void} options.onFailure at most once; `reason`
     *   as the protocol names it: ice_timeout, connection_failed or packet_loss
     * @param {(stream: MediaStream) => void} options.onAutoplayBlocked the browser refused to
     *   play the speech in the element
     */
    constructor({ iceServers, iceTransportPolicy, element, fallback, onConnected, onFailure, onAutoplayBlocked, }: {
        iceServers: RTCIceServer[];
        iceTransportPolicy: RTCIceTransportPolicy;
        element: HTMLAudioElement;
        fallback: {
            ice_timeout_ms: number;
            loss_percent: number;
            loss_window_s: number;
        };
        onConnected: () => void;
        onFailure: (reason: WebRTCFailure, detail: string) => void;
        onAutoplayBlocked: (stream: MediaStream) => void;
    });
    kind: "webrtc";
    transportId: number;
    get pc(): RTCPeerConnection;
    /** The MediaStream received, or null. */
    get stream(): MediaStream | null;
    /**
     * Offer over `signaling` and apply the answer, all within `ice_timeout_ms` of starting.
     * @param {import('./signaling.js').Signaling} signaling
     * @throws {Error} also when it failed (onFailure) or was closed meanwhile
     */
    negotiate(signaling: import("./signaling.js").Signaling): Promise<void>;
    /** What was last played, as the server wants it reported; null before anything was. */
    position(): import("./session-cursor.js").PlayedPosition | {
        transport_id: number;
        rtp_timestamp: number;
    } | null;
    /**
     * The packet being played now, by its RTP timestamp (the `sync` messages tell its frame), or
     * null when closed or before any.
     * @returns {{transport_id: number, rtp_timestamp: number} | null}
     */
    playing(): {
        transport_id: number;
        rtp_timestamp: number;
    } | null;
    /**
     * A summary of the received audio from getStats(); a field is undefined until known (aiortc
     * may leave currentRoundTripTime unknown). Times are in seconds, audioLevel is 0..1.
     */
    stats(): Promise<{
        codec?: undefined;
        packetsReceived?: undefined;
        packetsLost?: undefined;
        jitter?: undefined;
        audioLevel?: undefined;
        totalAudioEnergy?: undefined;
        averageJitterBufferDelay?: undefined;
        currentRoundTripTime?: undefined;
    } | {
        codec: any;
        packetsReceived: any;
        packetsLost: any;
        jitter: any;
        audioLevel: any;
        totalAudioEnergy: any;
        averageJitterBufferDelay: number | undefined;
        currentRoundTripTime: any;
    }>;
    /**
     * The speech plays elsewhere (an AudioContext): the element plays it muted, which browsers
     * always allow, and which Chromium needs to feed a remote stream to Web Audio at all.
     */
    muteElement(): void;
    /** Hang up; position() keeps what was played last. */
    close(): void;
    #private;
}
export type WebRTCFailure = "ice_timeout" | "connection_failed" | "packet_loss";
export type PlayedPosition = import("./session-cursor.js").PlayedPosition;
