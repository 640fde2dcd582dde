/**
 * The server's table of error codes (GET /api/errors; voice_rtc/errors.py): for each code, its
 * severity, category, whether it is recoverable, the `action` a client takes and a message fit
 * to show a user. Errors the server sends carry their row already; this fills it in for the
 * codes the library raises itself (it lost the server, it cannot play audio) and for refusals
 * that arrive as a bare code.
 *
 * The table is fetched while the server can be reached; until then (or if it never can be),
 * the client's own codes have these rows, the same as the server's.
 */
import { httpUrl } from './signaling.js';

/**
 * An error as the server sends it (an `error` message), or as this library raises it: a code
 * of the server's table and that code's row.
 * @typedef {object} ErrorBody
 * @property {string} code stable: what a program checks
 * @property {string} [message] for the user
 * @property {string} [detail] for a developer
 * @property {'info' | 'warning' | 'error' | 'critical'} [severity]
 * @property {string} [category]
 * @property {boolean} [recoverable]
 * @property {'fix_request' | 'retry' | 'retry_later' | 'reconnect' | 'new_session'
 *   | 'switch_transport' | 'enable_audio' | 'sign_in' | 'upgrade'} [action] what a client does
 * @property {number} [retry_after_s] with retry_later: how long to wait
 * @property {string | number} [id] the request it answers
 */

/** @type {Record<string, Omit<ErrorBody, 'code'>>} */
const BUILT_IN = {
  WEBSOCKET_CONNECTION_FAILED: {
    severity: 'error',
    category: 'network',
    recoverable: true,
    action: 'reconnect',
    message: 'The connection to the server was lost; retrying.',
  },
  AUDIO_PLAYBACK_FAILED: {
    severity: 'warning',
    category: 'media',
    recoverable: true,
    action: 'enable_audio',
    message: 'Audio cannot play; click to enable sound.',
  },
};

export class ErrorTable {
  #url;
  #rows = BUILT_IN;
  /** @type {Promise<void> | null} */
  #loading = null;

  /** @param {string} signalingUrl the server's, e.g. ws://127.0.0.1:8080/ws */
  constructor(signalingUrl) {
    this.#url = httpUrl(signalingUrl, '/api/errors');
  }

  /**
   * Fetch the table, once it succeeds; failures are quiet (the built-in rows serve).
   * @param {AbortSignal} signal
   */
  load(signal) {
    this.#loading ??= fetch(this.#url, { signal })
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.json();
      })
      .then((rows) => {
        this.#rows = { ...BUILT_IN, ...rows };
      })
      .catch(() => {
        this.#loading = null; // try again next time
      });
    return this.#loading;
  }

  /**
   * An error body: `code`, its row, then what `body` says (a server's error, with a `detail` and
   * perhaps `retry_after_s`) over it.
   * @param {string} code
   * @param {object} [body]
   * @returns {ErrorBody}
   */
  describe(code, body = {}) {
    return { code, ...this.#rows[code], ...body };
  }
}
