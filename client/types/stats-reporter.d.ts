/**
 * What VoiceClient.stats() says; every field but `state` may be unknown (undefined, or null).
 * @typedef {object} ClientStats
 * @property {string} state
 * @property {string | null} transport
 * @property {number | null} rtt heartbeat round trip, seconds
 * @property {string} [codec]
 * @property {number} [packetsReceived]
 * @property {number} [packetsLost]
 * @property {number} [jitter]
 * @property {number} [audioLevel]
 * @property {number} [totalAudioEnergy]
 * @property {number} [averageJitterBufferDelay]
 * @property {number} [currentRoundTripTime]
 * @property {number} [underruns]
 * @property {number} [jitterBufferTarget]
 * @property {number} [bufferedAudio]
 * @property {number} [framesPlayed]
 * @property {number} [duplicateFrames]
 * @property {number} [overflowFrames]
 * @property {number} [decodeErrors]
 */
/**
 * The telemetry event summarizing `stats` (telemetry.js; the server's schema).
 * @param {ClientStats} stats of a client with a transport
 */
export function statsEvent(stats: ClientStats): {
    type: string;
    transport: string | null;
    rtt_ms: number | undefined;
    jitter_ms: number | undefined;
    jitter_buffer_ms: number | undefined;
    packets_received: number | undefined;
    packets_lost: number | undefined;
};
export class StatsReporter {
    /**
     * @param {object} options
     * @param {(event: object) => void} options.record Telemetry's record()
     * @param {() => Promise<ClientStats>} options.stats VoiceClient's stats()
     * @param {number} [options.intervalMs]
     */
    constructor({ record, stats, intervalMs }: {
        record: (event: object) => void;
        stats: () => Promise<ClientStats>;
        intervalMs?: number | undefined;
    });
    start(): void;
    stop(): void;
    /** Record a summary now, and any underruns since the last; nothing while not connected. */
    report(): Promise<void>;
    #private;
}
/**
 * What VoiceClient.stats() says; every field but `state` may be unknown (undefined, or null).
 */
export type ClientStats = {
    state: string;
    transport: string | null;
    /**
     * heartbeat round trip, seconds
     */
    rtt: number | null;
    codec?: string | undefined;
    packetsReceived?: number | undefined;
    packetsLost?: number | undefined;
    jitter?: number | undefined;
    audioLevel?: number | undefined;
    totalAudioEnergy?: number | undefined;
    averageJitterBufferDelay?: number | undefined;
    currentRoundTripTime?: number | undefined;
    underruns?: number | undefined;
    jitterBufferTarget?: number | undefined;
    bufferedAudio?: number | undefined;
    framesPlayed?: number | undefined;
    duplicateFrames?: number | undefined;
    overflowFrames?: number | undefined;
    decodeErrors?: number | undefined;
};
