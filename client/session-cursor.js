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
  lastEventId = 0;
  /** @type {PlayedPosition | null} the last position known played */
  played = null;
  #latestUtterance = 0; // the highest utterance id heard of
  #cancelledThrough = 0; // utterances up to this id were cancelled
  #cancels = 0; // cancel() calls so far
  #cancelUnsent = false; // cancel() while disconnected: send it once reconnected
  /** @type {PlayedPosition | null} */
  #reported = null; // the position last reported on this connection

  /**
   * An `utterance_started` or `utterance_ended` message: whether it is new (a resumed server
   * replays the events it is not sure were received).
   * @param {{event_id: number, utterance_id: number}} event
   */
  acceptEvent(event) {
    if (event.event_id <= this.lastEventId) return false;
    this.lastEventId = event.event_id;
    this.#latestUtterance = Math.max(this.#latestUtterance, event.utterance_id);
    return true;
  }

  /** @param {PlayedPosition | null} position what a transport last played, if known */
  notePlayed(position) {
    if (position) this.played = position;
  }

  /** The position to report now, or null when this connection was told it already. */
  takeReport() {
    const position = this.played;
    if (!position || samePosition(position, this.#reported)) return null;
    this.#reported = position;
    return position;
  }

  /**
   * A new connection: nothing reported on it yet.
   * @returns {boolean} whether a cancel made while disconnected is to be sent now
   */
  connected() {
    this.#reported = null;
    const unsent = this.#cancelUnsent;
    this.#cancelUnsent = false;
    return unsent;
  }

  /** A `speak` request is about to be sent: pass what this returns to queued(). */
  speaking() {
    return this.#cancels;
  }

  /**
   * The server queued the utterance `id`. The server handles messages in order: a cancel()
   * sent after the speak, before its reply, cancelled it too.
   * @param {number} id
   * @param {number} ticket what speaking() returned
   */
  queued(id, ticket) {
    this.#latestUtterance = Math.max(this.#latestUtterance, id);
    if (this.#cancels !== ticket) this.#cancelledThrough = Math.max(this.#cancelledThrough, id);
  }

  /**
   * Barge-in: every utterance heard of so far is cancelled.
   * @param {boolean} sent whether the server was told; if not, connected() says to
   */
  cancel(sent) {
    this.#cancels++;
    this.#cancelledThrough = this.#latestUtterance;
    if (!sent) this.#cancelUnsent = true;
  }

  /** @param {number} utterance */
  isCancelled(utterance) {
    return utterance <= this.#cancelledThrough;
  }

  /** What `hello` carries to resume the session. */
  resumeFields() {
    return { last_event: this.lastEventId, ...(this.played && { position: this.played }) };
  }

  /** A new session: nothing of the old one applies, its positions least of all. */
  forget() {
    this.lastEventId = 0;
    this.played = null;
    this.#latestUtterance = 0;
    this.#cancelledThrough = 0;
    this.#cancelUnsent = false;
    this.#reported = null;
  }
}

/**
 * @param {PlayedPosition} a
 * @param {PlayedPosition | null} b
 */
function samePosition(a, b) {
  return (
    a.transport_id === b?.transport_id && a.seq === b.seq && a.rtp_timestamp === b.rtp_timestamp
  );
}
