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

export const STORAGE_KEY = 'voice-rtc.telemetry';
const MAX_QUEUED = 500; // the oldest go first; ~150 bytes each in localStorage
const MAX_BATCH = 100; // the server's limit per request
const FLUSH_INTERVAL_MS = 10000;
const MAX_BACKOFF_MS = 300000;

export class Telemetry {
  #url;
  #token;
  #storage;
  #fetch;
  #now;
  #maxQueued;
  #queue;
  #failures = 0;
  #retryAt = 0; // #now() time before which nothing is sent
  /** @type {Promise<boolean> | null} the flush in flight */
  #sending = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;
  /** @type {string | null} added to every batch, for the server's logs */
  sessionId = null;

  /**
   * @param {object} options
   * @param {string | URL} options.url the server's /api/analytics
   * @param {(signal: AbortSignal) => Promise<string | undefined>} options.token the listener's
   * @param {Storage | null} [options.storage] where unsent events survive a reload; null: nowhere
   * @param {typeof fetch} [options.fetch]
   * @param {() => number} [options.now] milliseconds
   * @param {number} [options.maxQueued]
   */
  constructor({
    url,
    token,
    storage = null,
    fetch = globalThis.fetch.bind(globalThis),
    now = Date.now,
    maxQueued = MAX_QUEUED,
  }) {
    this.#url = url;
    this.#token = token;
    this.#storage = storage;
    this.#fetch = fetch;
    this.#now = now;
    this.#maxQueued = maxQueued;
    this.#queue = this.#load();
  }

  /** Events waiting to be sent. */
  get pending() {
    return this.#queue.length;
  }

  /**
   * Queue an event ({type, ...fields}, as the server's schema has them), stamped now.
   * @param {object} event
   */
  record(event) {
    this.#queue.push({ ...event, ts: this.#now() });
    this.#queue.splice(0, this.#queue.length - this.#maxQueued);
    this.#save();
  }

  /** Flush now (what an earlier page left, say), then every `intervalMs` until stop(). */
  start(intervalMs = FLUSH_INTERVAL_MS) {
    this.stop();
    this.#timer = setInterval(() => this.flush(), intervalMs);
    this.flush();
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Send one batch of what is queued, unless a send is in flight or a failure says to wait.
   * @param {{keepalive?: boolean}} [options] keepalive: the page is going away; let the browser
   *   finish the request on its own
   * @returns {Promise<boolean>} whether a batch was delivered
   */
  flush({ keepalive = false } = {}) {
    if (this.#sending || this.#queue.length === 0 || this.#now() < this.#retryAt) {
      return Promise.resolve(false);
    }
    this.#sending = this.#send(this.#queue.slice(0, MAX_BATCH), keepalive).finally(() => {
      this.#sending = null;
    });
    return this.#sending;
  }

  /**
   * @param {object[]} batch
   * @param {boolean} keepalive
   */
  async #send(batch, keepalive) {
    let response;
    try {
      const token = await this.#token(AbortSignal.timeout(10000));
      const body = JSON.stringify({
        ...(this.sessionId && { session_id: this.sessionId }),
        events: batch,
      });
      response = await this.#fetch(this.#url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          ...(token && { Authorization: `Bearer ${token}` }),
        },
        body,
        keepalive,
      });
    } catch {
      this.#backOff(); // the network, or no token: the same batch, later
      return false;
    }
    if (response.ok || response.status === 400 || response.status === 413) {
      // 400/413: this batch is refused whole and would be refused again.
      if (!response.ok) console.warn(`voice-rtc: telemetry refused: HTTP ${response.status}`);
      const sent = new Set(batch);
      this.#queue = this.#queue.filter((event) => !sent.has(event));
      this.#save();
      this.#failures = 0;
      this.#retryAt = 0;
      return response.ok;
    }
    const retryAfterS = Number(response.headers.get('Retry-After'));
    if (response.status === 429 && retryAfterS > 0) this.#retryAt = this.#now() + retryAfterS * 1000;
    else this.#backOff();
    return false;
  }

  #backOff() {
    this.#failures++;
    const delayMs = Math.min(MAX_BACKOFF_MS, FLUSH_INTERVAL_MS * 2 ** (this.#failures - 1));
    this.#retryAt = this.#now() + delayMs;
  }

  #load() {
    try {
      const stored = JSON.parse(this.#storage?.getItem(STORAGE_KEY) ?? '[]');
      return Array.isArray(stored) ? stored.slice(-this.#maxQueued) : [];
    } catch {
      return []; // unreadable: start over
    }
  }

  #save() {
    try {
      this.#storage?.setItem(STORAGE_KEY, JSON.stringify(this.#queue));
    } catch {
      // Storage full or forbidden (a private window): the events live in memory only.
    }
  }
}
