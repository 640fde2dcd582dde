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
export function backoffDelay(attempt, baseMs, capMs, random = Math.random) {
  return random() * Math.min(capMs, baseMs * 2 ** attempt);
}

/** Counts reconnection attempts; a connection that stayed up long enough starts the count over. */
export class RetrySchedule {
  #baseMs;
  #capMs;
  #maxAttempts;
  #stableAfterMs;
  #random;
  #attempts = 0;
  /** @type {number | null} */
  #upSince = null;

  /**
   * @param {{baseMs: number, capMs: number, maxAttempts: number, stableAfterMs: number}} policy
   * @param {() => number} [random] uniform in [0, 1)
   */
  constructor({ baseMs, capMs, maxAttempts, stableAfterMs }, random = Math.random) {
    this.#baseMs = baseMs;
    this.#capMs = capMs;
    this.#maxAttempts = maxAttempts;
    this.#stableAfterMs = stableAfterMs;
    this.#random = random;
  }

  get maxAttempts() {
    return this.#maxAttempts;
  }

  /**
   * A connection came up at `nowMs`.
   * @param {number} nowMs
   */
  connected(nowMs) {
    this.#upSince = nowMs;
  }

  /**
   * The connection went down at `nowMs`.
   * @param {number} nowMs
   */
  dropped(nowMs) {
    if (this.#upSince !== null && nowMs - this.#upSince >= this.#stableAfterMs) this.#attempts = 0;
    this.#upSince = null;
  }

  /**
   * @returns {{attempt: number, delayMs: number} | null} the next try (attempt counts from 1),
   *   or null: give up
   */
  next() {
    if (this.#attempts >= this.#maxAttempts) return null;
    const attempt = ++this.#attempts;
    return { attempt, delayMs: backoffDelay(attempt - 1, this.#baseMs, this.#capMs, this.#random) };
  }
}
