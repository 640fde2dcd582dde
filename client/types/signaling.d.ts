/**
 * The server's HTTP URL for `path`, from its signaling URL (ws://host/ws -> http://host/path).
 * @param {string | URL} signalingUrl
 * @param {string} path
 */
export function httpUrl(signalingUrl: string | URL, path: string): URL;
/** The server answered a request with an `error`: `code` is from its table (GET /api/errors). */
export class ServerError extends Error {
    /** @param {import('./errors.js').ErrorBody} body the server's error message */
    constructor(body: import("./errors.js").ErrorBody);
    code: string;
    body: import("./errors.js").ErrorBody;
}
export class Signaling {
    /**
     * Opens the socket at once; `opened` says when it is open.
     * @param {string} url
     * @param {object} handlers
     * @param {(message: object) => void} handlers.onMessage every JSON message that is not the
     *   reply to a request
     * @param {(message: ArrayBuffer) => void} handlers.onAudio every binary message
     */
    constructor(url: string, { onMessage, onAudio }: {
        onMessage: (message: object) => void;
        onAudio: (message: ArrayBuffer) => void;
    });
    /**
     * Resolves with {code, reason} once the connection is over, whoever ended it.
     * @type {Promise<{code: number, reason: string}>}
     */
    closed: Promise<{
        code: number;
        reason: string;
    }>;
    /**
     * Resolves when the socket opens; rejects if it closes first.
     * @type {Promise<void>}
     */
    opened: Promise<void>;
    get isOpen(): boolean;
    /** Round-trip time of the last heartbeat in seconds, or null before the first. */
    get rtt(): number | null;
    /**
     * @param {object} body a message (JSON)
     * @throws {Error} when the socket is not open
     */
    send(body: object): void;
    /**
     * Send a request; resolve with its `replyType` reply, or reject with the `error` answering it
     * (a ServerError), or when the connection ends first.
     * @param {object} body
     * @param {string} replyType
     * @returns {Promise<any>}
     */
    request(body: object, replyType: string): Promise<any>;
    /**
     * Ping every `intervalMs`; without a pong for two intervals plus `timeoutMs`, the connection
     * is dead (the network can drop it without a close reaching us): end it.
     * @param {number} intervalMs
     * @param {number} timeoutMs
     */
    startHeartbeat(intervalMs: number, timeoutMs: number): void;
    /**
     * @param {number} [code]
     * @param {string} [reason]
     */
    close(code?: number, reason?: string): void;
    #private;
}
