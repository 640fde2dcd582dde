/**
 * Resolves after `ms`, or at once when `signal` aborts.
 * @param {number} ms
 * @param {AbortSignal} signal
 * @returns {Promise<void>}
 */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void>;
export const GOING_AWAY_JITTER_MS: 250;
/**
 * @typedef {{code: number, reason: string}} CloseInfo how a connection ended
 * @typedef {{closed: Promise<CloseInfo>}} Connection a Signaling, say
 */
/**
 * @template {Connection} C
 * @typedef {object} SupervisorOptions
 * @property {{baseMs: number, capMs: number, maxAttempts: number, stableAfterMs: number}} policy
 *   the server's welcome.reconnect, and how long a connection must stay up to count as stable
 * @property {(signal: AbortSignal) => Promise<C>} connect one attempt; rejects if it fails
 * @property {(close: CloseInfo) => boolean} onDrop the connection dropped: whether to reconnect
 * @property {(close: CloseInfo) => boolean} [goingAway] the server closed it to hand the
 *   session to another process, which waits for it: the first attempt comes at once
 * @property {(attempt: number, maxAttempts: number) => void} onAttempt before each wait
 * @property {(error: unknown, attempt: number) => void} onAttemptFailed
 * @property {(error: Error) => void} onGiveUp the attempts ran out
 * @property {() => number} [now] milliseconds, monotonic
 * @property {(ms: number, signal: AbortSignal) => Promise<void>} [sleep]
 * @property {() => number} [random] uniform in [0, 1), for the jitter
 */
/** @template {Connection} C */
export class ReconnectionSupervisor<C extends Connection> {
    /** @param {SupervisorOptions<C>} options */
    constructor(options: SupervisorOptions<C>);
    /**
     * Watch `connection`, and each one that replaces it, until `signal` aborts, a drop is not to
     * be reconnected, or reconnection gives up.
     * @param {C} connection
     * @param {AbortSignal} signal
     */
    run(connection: C, signal: AbortSignal): Promise<void>;
    #private;
}
/**
 * how a connection ended
 */
export type CloseInfo = {
    code: number;
    reason: string;
};
/**
 * a Signaling, say
 */
export type Connection = {
    closed: Promise<CloseInfo>;
};
export type SupervisorOptions<C extends Connection> = {
    /**
     *   the server's welcome.reconnect, and how long a connection must stay up to count as stable
     */
    policy: {
        baseMs: number;
        capMs: number;
        maxAttempts: number;
        stableAfterMs: number;
    };
    /**
     * one attempt; rejects if it fails
     */
    connect: (signal: AbortSignal) => Promise<C>;
    /**
     * the connection dropped: whether to reconnect
     */
    onDrop: (close: CloseInfo) => boolean;
    /**
     * the server closed it to hand the
     * session to another process, which waits for it: the first attempt comes at once
     */
    goingAway?: ((close: CloseInfo) => boolean) | undefined;
    /**
     * before each wait
     */
    onAttempt: (attempt: number, maxAttempts: number) => void;
    onAttemptFailed: (error: unknown, attempt: number) => void;
    /**
     * the attempts ran out
     */
    onGiveUp: (error: Error) => void;
    /**
     * milliseconds, monotonic
     */
    now?: (() => number) | undefined;
    sleep?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
    /**
     * uniform in [0, 1), for the jitter
     */
    random?: (() => number) | undefined;
};
