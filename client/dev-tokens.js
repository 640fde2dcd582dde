/**
 * Tokens from a server in dev mode (on loopback with no key configured, it hands them out at
 * GET /api/dev-token), for pages and tests with no backend of their own; a real app passes its
 * users' tokens to VoiceClient instead.
 *
 * One user id per client, so that a resumed session stays its own. A token is kept for half its
 * life, so a reconnection seldom waits on fetching one (the network may just have failed); a
 * server without dev mode (404) is not asked again.
 */
import { httpUrl } from './signaling.js';

export class DevTokens {
  #url;
  #token = undefined;
  #renewAt = 0; // performance.now() time

  /** @param {string} signalingUrl the server's, e.g. ws://127.0.0.1:8080/ws */
  constructor(signalingUrl) {
    const url = httpUrl(signalingUrl, '/api/dev-token');
    url.searchParams.set('user', `browser-${crypto.getRandomValues(new Uint32Array(2)).join('-')}`);
    this.#url = url;
  }

  /**
   * @param {AbortSignal} signal
   * @returns {Promise<string | undefined>} undefined when the server has no dev mode
   */
  async get(signal) {
    if (performance.now() < this.#renewAt) return this.#token;
    const response = await fetch(this.#url, { signal });
    if (response.status === 404) {
      this.#token = undefined;
      this.#renewAt = Infinity;
      return undefined;
    }
    if (!response.ok) throw new Error(`no dev token: HTTP ${response.status}`);
    const { token, expires_in: seconds } = await response.json();
    this.#token = token;
    this.#renewAt = performance.now() + seconds * 500;
    return token;
  }

  /** The server refused the token: it restarted, with a new secret. */
  refused() {
    this.#renewAt = 0;
  }
}
