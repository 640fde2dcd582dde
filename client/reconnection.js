/**
 * The reconnection supervisor: keeps a session connected. Whenever the connection drops it
 * reconnects, with exponential backoff and full jitter (backoff.js), never sooner than a rate
 * limit's refusal said, until an attempt succeeds, the attempts run out, or it is stopped.
 */
import { RetrySchedule } from './backoff.js';
import { retryAfterMs } from './rate-limit-gate.js';

// After a server going away (a deploy), come back at once, spread over this much so that its
// listeners do not all arrive at the next server together.
export const GOING_AWAY_JITTER_MS = 250;

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
export class ReconnectionSupervisor {
  #options;

  /** @param {SupervisorOptions<C>} options */
  constructor(options) {
    this.#options = options;
  }

  /**
   * Watch `connection`, and each one that replaces it, until `signal` aborts, a drop is not to
   * be reconnected, or reconnection gives up.
   * @param {C} connection
   * @param {AbortSignal} signal
   */
  async run(connection, signal) {
    const { policy, onDrop, goingAway, now = () => performance.now() } = this.#options;
    const schedule = new RetrySchedule(policy, this.#options.random);
    schedule.connected(now());
    for (let current = connection; ; ) {
      const close = await current.closed;
      if (signal.aborted || !onDrop(close)) return;
      schedule.dropped(now());
      const next = await this.#reconnect(schedule, signal, goingAway?.(close) ?? false);
      if (!next) return;
      current = next;
      schedule.connected(now());
    }
  }

  /**
   * @param {RetrySchedule} schedule
   * @param {AbortSignal} signal
   * @param {boolean} atOnce the first attempt without backoff (a short jitter only)
   * @returns {Promise<C | null>} the new connection; null if stopped or given up
   */
  async #reconnect(schedule, signal, atOnce) {
    const { connect, onAttempt, onAttemptFailed, onGiveUp, sleep = abortableSleep } = this.#options;
    const random = this.#options.random ?? Math.random;
    let toldToWaitMs = 0;
    for (let next = schedule.next(); next; next = schedule.next()) {
      onAttempt(next.attempt, schedule.maxAttempts);
      const delayMs = atOnce ? random() * GOING_AWAY_JITTER_MS : next.delayMs;
      atOnce = false;
      await sleep(Math.max(delayMs, toldToWaitMs), signal);
      if (signal.aborted) return null;
      try {
        return await connect(signal);
      } catch (error) {
        if (signal.aborted) return null;
        toldToWaitMs = retryAfterMs(error);
        onAttemptFailed(error, next.attempt);
      }
    }
    onGiveUp(new Error(`not reconnected after ${schedule.maxAttempts} attempts`));
    return null;
  }
}

/**
 * Resolves after `ms`, or at once when `signal` aborts.
 * @param {number} ms
 * @param {AbortSignal} signal
 * @returns {Promise<void>}
 */
export function abortableSleep(ms, signal) {
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
