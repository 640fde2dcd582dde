export class DevTokens {
    /** @param {string} signalingUrl the server's, e.g. ws://127.0.0.1:8080/ws */
    constructor(signalingUrl: string);
    /**
     * @param {AbortSignal} signal
     * @returns {Promise<string | undefined>} undefined when the server has no dev mode
     */
    get(signal: AbortSignal): Promise<string | undefined>;
    /** The server refused the token: it restarted, with a new secret. */
    refused(): void;
    #private;
}
