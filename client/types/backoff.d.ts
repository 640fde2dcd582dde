/**
 * When to try reconnecting: exponential backoff with full jitter (signaling/PROTOCOL.md).
 *
 * Full jitter spreads the reconnections of many clients dropped at once (a server restart) over
 * the whole window instead of synchronizing them into waves.
 */
/**
 * The wait before retry number `attempt` (0 for the first): uniform in
 * [0, min(capMs, baseMs * 2^attempt)).
 * @param {number} attempt
 * @param {number} baseMs
 * @param {number} capMs
 * @param {() => number} [random] uniform in [0, 1)
 */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random?: () => number): number;
/** Counts reconnection attempts; a connection that stayed up long enough starts the count over. */
export class RetrySchedule {
    /**
     * @param {{baseMs: number, capMs: number, maxAttempts: number, stableAfterMs: number}} policy
     * @param {() => number} [random] uniform in [0, 1)
     */
    constructor({ baseMs, capMs, maxAttempts, stableAfterMs }: {
        baseMs: number;
        capMs: number;
        maxAttempts: number;
        stableAfterMs: number;
    }, random?: () => number);
    get maxAttempts(): number;
    /**
     * A connection came up at `nowMs`.
     * @param {number} nowMs
     */
    connected(nowMs: number): void;
    /**
     * The connection went down at `nowMs`.
     * @param {number} nowMs
     */
    dropped(nowMs: number): void;
    /**
     * @returns {{attempt: number, delayMs: number} | null} the next try (attempt counts from 1),
     *   or null: give up
     */
    next(): {
        attempt: number;
        delayMs: number;
    } | null;
    #private;
}
