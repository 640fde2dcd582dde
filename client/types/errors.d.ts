export class ErrorTable {
    /** @param {string} signalingUrl the server's, e.g. ws://127.0.0.1:8080/ws */
    constructor(signalingUrl: string);
    /**
     * Fetch the table, once it succeeds; failures are quiet (the built-in rows serve).
     * @param {AbortSignal} signal
     */
    load(signal: AbortSignal): Promise<void>;
    /**
     * An error body: `code`, its row, then what `body` says (a server's error, with a `detail` and
     * perhaps `retry_after_s`) over it.
     * @param {string} code
     * @param {object} [body]
     * @returns {ErrorBody}
     */
    describe(code: string, body?: object): ErrorBody;
    #private;
}
/**
 * An error as the server sends it (an `error` message), or as this library raises it: a code
 * of the server's table and that code's row.
 */
export type ErrorBody = {
    /**
     * stable: what a program checks
     */
    code: string;
    /**
     * for the user
     */
    message?: string | undefined;
    /**
     * for a developer
     */
    detail?: string | undefined;
    severity?: "info" | "warning" | "error" | "critical" | undefined;
    category?: string | undefined;
    recoverable?: boolean | undefined;
    /**
     * what a client does
     */
    action?: "fix_request" | "retry" | "retry_later" | "reconnect" | "new_session" | "switch_transport" | "enable_audio" | "sign_in" | "upgrade" | undefined;
    /**
     * with retry_later: how long to wait
     */
    retry_after_s?: number | undefined;
    /**
     * the request it answers
     */
    id?: string | number | undefined;
};
