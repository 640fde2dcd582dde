/**
 * Decides when WebRTC loses too many packets to stay on it: the loss of every sampling interval
 * (getStats deltas of packetsLost and packetsReceived) above a threshold, for a whole window.
 *
 * Judging each interval, rather than the window's average, means one burst (a Wi-Fi hiccup)
 * does not trigger a transport switch; loss that persists does.
 */
export class LossMonitor {
    /** @param {{thresholdPercent: number, windowMs: number}} policy */
    constructor({ thresholdPercent, windowMs }: {
        thresholdPercent: number;
        windowMs: number;
    });
    /**
     * Add a sample of the cumulative counters at `nowMs`.
     * @param {number} nowMs
     * @param {number} packetsLost
     * @param {number} packetsReceived
     * @returns {boolean} whether loss has now stayed above the threshold for the window
     */
    sample(nowMs: number, packetsLost: number, packetsReceived: number): boolean;
    #private;
}
