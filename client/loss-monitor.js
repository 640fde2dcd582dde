/**
 * Decides when WebRTC loses too many packets to stay on it: the loss of every sampling interval
 * (getStats deltas of packetsLost and packetsReceived) above a threshold, for a whole window.
 *
 * Judging each interval, rather than the window's average, means one burst (a Wi-Fi hiccup)
 * does not trigger a transport switch; loss that persists does.
 */
export class LossMonitor {
  #thresholdPercent;
  #windowMs;
  /** @type {{at: number, lost: number, received: number} | null} the previous sample */
  #last = null;
  /** @type {number | null} start of the run of intervals above the threshold */
  #aboveSince = null;

  /** @param {{thresholdPercent: number, windowMs: number}} policy */
  constructor({ thresholdPercent, windowMs }) {
    this.#thresholdPercent = thresholdPercent;
    this.#windowMs = windowMs;
  }

  /**
   * Add a sample of the cumulative counters at `nowMs`.
   * @param {number} nowMs
   * @param {number} packetsLost
   * @param {number} packetsReceived
   * @returns {boolean} whether loss has now stayed above the threshold for the window
   */
  sample(nowMs, packetsLost, packetsReceived) {
    const last = this.#last;
    this.#last = { at: nowMs, lost: packetsLost, received: packetsReceived };
    if (!last) return false;
    // packetsLost can go down (a late packet arrives after all).
    const lost = Math.max(0, packetsLost - last.lost);
    const received = Math.max(0, packetsReceived - last.received);
    // The server never pauses its RTP stream (it sends silence), so an interval without any
    // packet is total loss, which packetsLost cannot show: it counts gaps behind later packets.
    const percent = lost + received > 0 ? (100 * lost) / (lost + received) : 100;
    if (percent <= this.#thresholdPercent) this.#aboveSince = null;
    else this.#aboveSince ??= last.at;
    return this.#aboveSince !== null && nowMs - this.#aboveSince >= this.#windowMs;
  }
}
