/**
 * One signaling WebSocket (signaling/PROTOCOL.md): requests matched to their replies by id,
 * binary messages (fallback audio) handed on, and heartbeats that measure the round-trip time
 * and notice a connection that died without closing.
 */
import { CLOSE_CODES_NORMAL } from './protocol.js';

/** The server answered a request with an `error`: `code` is from its table (GET /api/errors). */
export class ServerError extends Error {
  /** @param {import('./errors.js').ErrorBody} body the server's error message */
  constructor(body) {
    super(`${body.code}: ${body.detail ?? body.message}`);
    this.name = 'ServerError';
    this.code = body.code;
    this.body = body;
  }
}

/**
 * The server's HTTP URL for `path`, from its signaling URL (ws://host/ws -> http://host/path).
 * @param {string | URL} signalingUrl
 * @param {string} path
 */
export function httpUrl(signalingUrl, path) {
  const url = new URL(path, signalingUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  return url;
}

export class Signaling {
  #ws;
  #onMessage;
  #onAudio;
  /** @type {Map<number, {replyType: string, resolve: (reply: any) => void,
   *   reject: (error: Error) => void}>} requests awaiting their reply, by id */
  #pending = new Map();
  #nextId = 1;
  #listeners = new AbortController();
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pinger;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #deadline;
  #deadAfterMs = 0;
  /** @type {number | null} */
  #rtt = null;
  #finished = false;
  /** @type {(close: {code: number, reason: string}) => void} */
  #finish = () => {};

  /**
   * Opens the socket at once; `opened` says when it is open.
   * @param {string} url
   * @param {object} handlers
   * @param {(message: object) => void} handlers.onMessage every JSON message that is not the
   *   reply to a request
   * @param {(message: ArrayBuffer) => void} handlers.onAudio every binary message
   */
  constructor(url, { onMessage, onAudio }) {
    this.#onMessage = onMessage;
    this.#onAudio = onAudio;
    const ws = (this.#ws = new WebSocket(url));
    ws.binaryType = 'arraybuffer';
    const { signal } = this.#listeners;

    /**
     * Resolves with {code, reason} once the connection is over, whoever ended it.
     * @type {Promise<{code: number, reason: string}>}
     */
    this.closed = new Promise((resolve) => {
      this.#finish = resolve;
    });
    /**
     * Resolves when the socket opens; rejects if it closes first.
     * @type {Promise<void>}
     */
    this.opened = new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { signal });
      this.closed.then(({ code, reason }) => reject(closedError(code, reason)));
    });
    ws.addEventListener('message', ({ data }) => this.#receive(data), { signal });
    ws.addEventListener('close', ({ code, reason }) => this.#end(code, reason), { signal });
  }

  get isOpen() {
    return !this.#finished && this.#ws.readyState === WebSocket.OPEN;
  }

  /** Round-trip time of the last heartbeat in seconds, or null before the first. */
  get rtt() {
    return this.#rtt;
  }

  /**
   * @param {object} body a message (JSON)
   * @throws {Error} when the socket is not open
   */
  send(body) {
    if (!this.isOpen) throw new Error('signaling is not connected');
    this.#ws.send(JSON.stringify(body));
  }

  /**
   * Send a request; resolve with its `replyType` reply, or reject with the `error` answering it
   * (a ServerError), or when the connection ends first.
   * @param {object} body
   * @param {string} replyType
   * @returns {Promise<any>}
   */
  request(body, replyType) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.send({ ...body, id });
      this.#pending.set(id, { replyType, resolve, reject });
    });
  }

  /**
   * Ping every `intervalMs`; without a pong for two intervals plus `timeoutMs`, the connection
   * is dead (the network can drop it without a close reaching us): end it.
   * @param {number} intervalMs
   * @param {number} timeoutMs
   */
  startHeartbeat(intervalMs, timeoutMs) {
    this.#deadAfterMs = 2 * intervalMs + timeoutMs;
    this.#armDeadline();
    this.#pinger = setInterval(() => {
      if (!this.isOpen) return;
      const ping = { type: 'ping', ts: performance.now() };
      // The last round trip, for the server's metrics.
      this.send(this.#rtt === null ? ping : { ...ping, rtt_ms: this.#rtt * 1000 });
    }, intervalMs);
  }

  /**
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = CLOSE_CODES_NORMAL, reason = '') {
    this.#ws.close(code, reason);
    this.#end(code, reason);
  }

  /** @param {string | ArrayBuffer} data */
  #receive(data) {
    if (typeof data !== 'string') {
      this.#onAudio(data);
      return;
    }
    const message = JSON.parse(data);
    if (message.type === 'pong') {
      this.#rtt = (performance.now() - message.ts) / 1000;
      this.#armDeadline();
      return;
    }
    const request = this.#pending.get(message.id);
    if (request && (message.type === request.replyType || message.type === 'error')) {
      this.#pending.delete(message.id);
      if (message.type === 'error') request.reject(new ServerError(message));
      else request.resolve(message);
      return;
    }
    this.#onMessage(message);
  }

  #armDeadline() {
    clearTimeout(this.#deadline);
    this.#deadline = setTimeout(
      () => this.close(CLOSE_CODES_NORMAL, `no pong for ${this.#deadAfterMs} ms`),
      this.#deadAfterMs,
    );
  }

  /**
   * The connection is over: release everything, settle everything waiting on it, once.
   * @param {number} code
   * @param {string} reason
   */
  #end(code, reason) {
    if (this.#finished) return;
    this.#finished = true;
    this.#listeners.abort();
    clearInterval(this.#pinger);
    clearTimeout(this.#deadline);
    const error = closedError(code, reason);
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
    this.#finish({ code, reason });
  }
}

/**
 * @param {number} code
 * @param {string} reason
 */
function closedError(code, reason) {
  return new Error(`signaling closed (${code}${reason ? `: ${reason}` : ''})`);
}
