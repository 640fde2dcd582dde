/**
 * How long a refusal says to wait, in milliseconds (0 when it says nothing).
 * @param {unknown} error a request's rejection: a ServerError, or any other
 */
export function retryAfterMs(error: unknown): number;
export class RateLimitGate {
    /** @param {() => number} [now] milliseconds, monotonic */
    constructor(now?: () => number);
    /** Milliseconds still to wait; 0: go ahead. */
    get waitMs(): number;
    /**
     * @param {(code: string, fields: object) => import('./errors.js').ErrorBody} describe the
     *   error table's
     * @throws {ServerError} RATE_LIMIT_EXCEEDED, with the `retry_after_s` left, while closed
     */
    check(describe: (code: string, fields: object) => import("./errors.js").ErrorBody): void;
    /**
     * A request failed: if a rate limit refused it, close until it said.
     * @param {unknown} error
     */
    refused(error: unknown): void;
    #private;
}
