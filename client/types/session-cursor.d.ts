/**
 * Where the listener is in the session, kept across connections: the last position known
 * played (what a resume starts from), the last event received (each is handed on once), and
 * which utterances were cancelled (frames of theirs still on their way are dropped).
 */
/**
 * A played position as the protocol reports it: the transport, and the `seq` of the last frame
 * played (WebSocket) or the RTP timestamp of the last packet played (WebRTC).
 * @typedef {{transport_id: number, seq?: number, rtp_timestamp?: number}} PlayedPosition
 */
export class SessionCursor {
    lastEventId: number;
    /** @type {PlayedPosition | null} the last position known played */
    played: PlayedPosition | null;
    /**
     * An `utterance_started` or `utterance_ended` message: whether it is new (a resumed server
     * replays the events it is not sure were received).
     * @param {{event_id: number, utterance_id: number}} event
     */
    acceptEvent(event: {
        event_id: number;
        utterance_id: number;
    }): boolean;
    /** @param {PlayedPosition | null} position what a transport last played, if known */
    notePlayed(position: PlayedPosition | null): void;
    /** The position to report now, or null when this connection was told it already. */
    takeReport(): PlayedPosition | null;
    /**
     * A new connection: nothing reported on it yet.
     * @returns {boolean} whether a cancel made while disconnected is to be sent now
     */
    connected(): boolean;
    /** A `speak` request is about to be sent: pass what this returns to queued(). */
    speaking(): number;
    /**
     * The server queued the utterance `id`. The server handles messages in order: a cancel()
     * sent after the speak, before its reply, cancelled it too.
     * @param {number} id
     * @param {number} ticket what speaking() returned
     */
    queued(id: number, ticket: number): void;
    /**
     * Barge-in: every utterance heard of so far is cancelled.
     * @param {boolean} sent whether the server was told; if not, connected() says to
     */
    cancel(sent: boolean): void;
    /** @param {number} utterance */
    isCancelled(utterance: number): boolean;
    /** What `hello` carries to resume the session. */
    resumeFields(): {
        position?: PlayedPosition | undefined;
        last_event: number;
    };
    /** A new session: nothing of the old one applies, its positions least of all. */
    forget(): void;
    #private;
}
/**
 * A played position as the protocol reports it: the transport, and the `seq` of the last frame
 * played (WebSocket) or the RTP timestamp of the last packet played (WebRTC).
 */
export type PlayedPosition = {
    transport_id: number;
    seq?: number;
    rtp_timestamp?: number;
};
