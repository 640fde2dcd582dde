/**
 * Client telemetry (POST /api/analytics, voice_rtc/telemetry.py): what a listener met — errors,
 * audio statistics, jitter-buffer underruns, fallbacks, reconnections — sent in batches so
 * operators see what listeners hear.
 *
 * Events wait in a bounded queue, kept in localStorage so that a reload (or a crash) does not
 * lose them; a batch that fails is sent again later, with backoff, or after the Retry-After of a
 * rate limit; a batch the server refuses as invalid is dropped, since it would be refused forever.
 * One queue per origin: two tabs open at once share it, and the last to save wins.
 */
export const STORAGE_KEY: "voice-rtc.telemetry";
export class Telemetry {
    /**
     * @param {object} options
     * @param {string | URL} options.url the server's /api/analytics
     * @param {(signal: AbortSignal) => Promise<string | undefined>} options.token the listener's
     * @param {Storage | null} [options.storage] where unsent events survive a reload; null: nowhere
     * @param {typeof fetch} [options.fetch]
     * @param {() => number} [options.now] milliseconds
     * @param {number} [options.maxQueued]
     */
    constructor({ url, token, storage, fetch, now, maxQueued, }: {
        url: string | URL;
        token: (signal: AbortSignal) => Promise<string | undefined>;
        storage?: Storage | null | undefined;
        fetch?: typeof globalThis.fetch | undefined;
        now?: (() => number) | undefined;
        maxQueued?: number | undefined;
    });
    /** @type {string | null} added to every batch, for the server's logs */
    sessionId: string | null;
    /** Events waiting to be sent. */
    get pending(): number;
    /**
     * Queue an event ({type, ...fields}, as the server's schema has them), stamped now.
     * @param {object} event
     */
    record(event: object): void;
    /** Flush now (what an earlier page left, say), then every `intervalMs` until stop(). */
    start(intervalMs?: number): void;
    stop(): void;
    /**
     * Send one batch of what is queued, unless a send is in flight or a failure says to wait.
     * @param {{keepalive?: boolean}} [options] keepalive: the page is going away; let the browser
     *   finish the request on its own
     * @returns {Promise<boolean>} whether a batch was delivered
     */
    flush({ keepalive }?: {
        keepalive?: boolean;
    }): Promise<boolean>;
    #private;
}
