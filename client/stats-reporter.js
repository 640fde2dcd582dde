/**
 * Audio statistics for the operators: every STATS_REPORT_MS a summary of what the listener
 * gets goes to telemetry, with the jitter-buffer underruns since the last report.
 */

const STATS_REPORT_MS = 30000;
const MAX_MS = 600000; // the server's schema bounds durations
const MAX_UNDERRUNS = 10000; // and counts

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
export function statsEvent(stats) {
  /** @param {number | null | undefined} seconds */
  const ms = (seconds) => (seconds == null ? undefined : Math.min(seconds * 1000, MAX_MS));
  /** @param {number | null | undefined} n */
  const count = (n) => (n == null ? undefined : Math.max(0, n)); // packetsLost can be < 0
  return {
    type: 'stats',
    transport: stats.transport,
    rtt_ms: ms(stats.currentRoundTripTime ?? stats.rtt),
    jitter_ms: ms(stats.jitter),
    jitter_buffer_ms: ms(stats.averageJitterBufferDelay ?? stats.jitterBufferTarget),
    packets_received: count(stats.packetsReceived),
    packets_lost: count(stats.packetsLost),
  };
}

export class StatsReporter {
  #record;
  #stats;
  #intervalMs;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;
  #underrunsReported = 0;

  /**
   * @param {object} options
   * @param {(event: object) => void} options.record Telemetry's record()
   * @param {() => Promise<ClientStats>} options.stats VoiceClient's stats()
   * @param {number} [options.intervalMs]
   */
  constructor({ record, stats, intervalMs = STATS_REPORT_MS }) {
    this.#record = record;
    this.#stats = stats;
    this.#intervalMs = intervalMs;
  }

  start() {
    this.stop();
    // A transport closing meanwhile fails a report: the next one comes soon enough.
    this.#timer = setInterval(() => this.report().catch(() => {}), this.#intervalMs);
  }

  stop() {
    clearInterval(this.#timer);
  }

  /** Record a summary now, and any underruns since the last; nothing while not connected. */
  async report() {
    const stats = await this.#stats();
    if (!stats.transport) return;
    this.#record(statsEvent(stats));
    const underruns = stats.underruns ?? 0;
    if (underruns < this.#underrunsReported) this.#underrunsReported = 0; // a new output
    const fresh = Math.min(underruns - this.#underrunsReported, MAX_UNDERRUNS);
    if (fresh > 0) this.#record({ type: 'underrun', transport: 'websocket', count: fresh });
    this.#underrunsReported = underruns;
  }
}
