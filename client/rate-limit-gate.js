/**
 * Honours a rate limit's `retry_after_s`: until then, a request of the kind it refused would
 * only be refused again, so it is refused here, at once, without asking the server.
 */
import { ServerError } from './signaling.js';

/**
 * How long a refusal says to wait, in milliseconds (0 when it says nothing).
 * @param {unknown} error a request's rejection: a ServerError, or any other
 */
export function retryAfterMs(error) {
  const seconds = error instanceof ServerError ? error.body.retry_after_s : undefined;
  return typeof seconds === 'number' && seconds > 0 ? seconds * 1000 : 0;
}

export class RateLimitGate {
  #now;
  #notBefore = 0;

  /** @param {() => number} [now] milliseconds, monotonic */
  constructor(now = () => performance.now()) {
    this.#now = now;
  }

  /** Milliseconds still to wait; 0: go ahead. */
  get waitMs() {
    return Math.max(0, this.#notBefore - this.#now());
  }

  /**
   * @param {(code: string, fields: object) => import('./errors.js').ErrorBody} describe the
   *   error table's
   * @throws {ServerError} RATE_LIMIT_EXCEEDED, with the `retry_after_s` left, while closed
   */
  check(describe) {
    const waitMs = this.waitMs;
    if (waitMs === 0) return;
    const retryAfterS = Math.ceil(waitMs / 1000);
    throw new ServerError(
      describe('RATE_LIMIT_EXCEEDED', {
        detail: `too many requests; retry in ${retryAfterS} s`,
        retry_after_s: retryAfterS,
      }),
    );
  }

  /**
   * A request failed: if a rate limit refused it, close until it said.
   * @param {unknown} error
   */
  refused(error) {
    const waitMs = retryAfterMs(error);
    if (waitMs) this.#notBefore = this.#now() + waitMs;
  }
}
