/**
 * Speech over WebRTC: one receive-only RTCPeerConnection per transport (aiortc cannot restart
 * ICE, so every reconnection or retry negotiates a new one), its playback, and the watch that
 * declares it failed by the server's `fallback` policy: not connected `ice_timeout_ms` after
 * negotiation began (gathering included: a STUN server that does not answer, or no usable
 * interface, stalls it) or after a disconnection, the connection `failed`, or packet loss above
 * `loss_percent` for `loss_window_s`.
 */
import { LossMonitor } from './loss-monitor.js';

// aiortc does not trickle ICE, so the offer must carry every candidate: wait for gathering to
// finish, but no longer than this (a STUN or TURN server that does not answer stalls it).
const ICE_GATHERING_TIMEOUT_MS = 5000;
const LOSS_SAMPLE_MS = 1000;

/**
 * @typedef {'ice_timeout' | 'connection_failed' | 'packet_loss'} WebRTCFailure
 * @typedef {import('./session-cursor.js').PlayedPosition} PlayedPosition
 */

export class WebRTCAudio {
  kind = /** @type {const} */ ('webrtc');
  transportId = 0; // from the answer
  #pc;
  #element;
  #fallback;
  #loss;
  #onConnected;
  #onFailure;
  #onAutoplayBlocked;
  #listeners = new AbortController();
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #watchdog;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #lossSampler;
  /** @type {MediaStream | null} */
  #stream = null;
  #connected = false;
  #over = false; // failed or closed: reports nothing more
  /** @type {PlayedPosition | null} the position when closed */
  #final = null;
  #mutedElement = false;

  /**
   * @param {object} options
   * @param {RTCIceServer[]} options.iceServers
   * @param {RTCIceTransportPolicy} options.iceTransportPolicy
   * @param {HTMLAudioElement} options.element plays the speech
   * @param {{ice_timeout_ms: number, loss_percent: number, loss_window_s: number}} options.fallback
   * @param {() => void} options.onConnected the first time media can flow
   * @param {(reason: WebRTCFailure, detail: string) => void} options.onFailure at most once; `reason`
   *   as the protocol names it: ice_timeout, connection_failed or packet_loss
   * @param {(stream: MediaStream) => void} options.onAutoplayBlocked the browser refused to
   *   play the speech in the element
   */
  constructor({
    iceServers,
    iceTransportPolicy,
    element,
    fallback,
    onConnected,
    onFailure,
    onAutoplayBlocked,
  }) {
    this.#pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    this.#element = element;
    this.#fallback = fallback;
    this.#loss = new LossMonitor({
      thresholdPercent: fallback.loss_percent,
      windowMs: fallback.loss_window_s * 1000,
    });
    this.#onConnected = onConnected;
    this.#onFailure = onFailure;
    this.#onAutoplayBlocked = onAutoplayBlocked;
    const { signal } = this.#listeners;
    this.#pc.addEventListener('track', ({ track }) => this.#play(new MediaStream([track])), {
      signal,
    });
    this.#pc.addEventListener('connectionstatechange', () => this.#onStateChange(), { signal });
  }

  get pc() {
    return this.#pc;
  }

  /** The MediaStream received, or null. */
  get stream() {
    return this.#stream;
  }

  /**
   * Offer over `signaling` and apply the answer, all within `ice_timeout_ms` of starting.
   * @param {import('./signaling.js').Signaling} signaling
   * @throws {Error} also when it failed (onFailure) or was closed meanwhile
   */
  async negotiate(signaling) {
    const pc = this.#pc;
    this.#armWatchdog();
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, ICE_GATHERING_TIMEOUT_MS, this.#listeners.signal);
    if (this.#over) throw new Error('WebRTC was given up while gathering ICE candidates');
    const sdp = /** @type {RTCSessionDescription} */ (pc.localDescription).sdp;
    const offer = { type: 'offer', sdp: withoutEndOfCandidates(sdp) };
    const answer = await signaling.request(offer, 'answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    this.transportId = answer.transport_id;
  }

  /** What was last played, as the server wants it reported; null before anything was. */
  position() {
    return this.#pc.connectionState === 'closed' ? this.#final : this.playing();
  }

  /**
   * The packet being played now, by its RTP timestamp (the `sync` messages tell its frame), or
   * null when closed or before any.
   * @returns {{transport_id: number, rtp_timestamp: number} | null}
   */
  playing() {
    if (this.#pc.connectionState === 'closed') return null;
    // getSynchronizationSources() describes the last packet played out, not the last received.
    const source = this.#pc.getReceivers()[0]?.getSynchronizationSources()[0];
    if (!source || !this.transportId) return null;
    return { transport_id: this.transportId, rtp_timestamp: source.rtpTimestamp };
  }

  /**
   * A summary of the received audio from getStats(); a field is undefined until known (aiortc
   * may leave currentRoundTripTime unknown). Times are in seconds, audioLevel is 0..1.
   */
  async stats() {
    if (this.#pc.connectionState === 'closed') return {};
    const report = await this.#pc.getStats();
    let inbound;
    let pair;
    for (const stat of report.values()) {
      if (stat.type === 'inbound-rtp' && stat.kind === 'audio') inbound = stat;
      if (stat.type === 'candidate-pair' && stat.nominated && stat.state === 'succeeded') {
        pair = stat;
      }
    }
    return {
      codec: report.get(inbound?.codecId)?.mimeType,
      packetsReceived: inbound?.packetsReceived,
      packetsLost: inbound?.packetsLost,
      jitter: inbound?.jitter,
      audioLevel: inbound?.audioLevel,
      totalAudioEnergy: inbound?.totalAudioEnergy,
      // getStats() sums the delay of every sample played out; the average is the latency the
      // jitter buffer adds.
      averageJitterBufferDelay: inbound?.jitterBufferEmittedCount
        ? inbound.jitterBufferDelay / inbound.jitterBufferEmittedCount
        : undefined,
      currentRoundTripTime: pair?.currentRoundTripTime,
    };
  }

  /**
   * The speech plays elsewhere (an AudioContext): the element plays it muted, which browsers
   * always allow, and which Chromium needs to feed a remote stream to Web Audio at all.
   */
  muteElement() {
    this.#mutedElement = true;
    this.#element.muted = true;
    this.#element.play().catch(() => {});
  }

  /** Hang up; position() keeps what was played last. */
  close() {
    if (this.#pc.connectionState === 'closed') return;
    this.#final = this.position();
    this.#stop();
    this.#pc.close();
    if (this.#element.srcObject === this.#stream) this.#element.srcObject = null;
    if (this.#mutedElement) this.#element.muted = false;
    this.#stream = null;
  }

  #onStateChange() {
    switch (this.#pc.connectionState) {
      case 'connected':
        clearTimeout(this.#watchdog);
        if (this.#connected) return;
        this.#connected = true;
        this.#lossSampler = setInterval(() => this.#sampleLoss(), LOSS_SAMPLE_MS);
        this.#onConnected();
        break;
      case 'disconnected': // ICE may find its way back: as long as it had to connect at first
        this.#armWatchdog();
        break;
      case 'failed':
        this.#fail('connection_failed', 'the WebRTC connection failed');
        break;
    }
  }

  #armWatchdog() {
    if (this.#over) return;
    const ms = this.#fallback.ice_timeout_ms;
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(
      () => this.#fail('ice_timeout', `ICE not connected after ${ms} ms`),
      ms,
    );
  }

  async #sampleLoss() {
    let report;
    try {
      report = await this.#pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    const inbound = [...report.values()].find(
      (stat) => stat.type === 'inbound-rtp' && stat.kind === 'audio',
    );
    if (this.#over || !inbound) return;
    if (this.#loss.sample(performance.now(), inbound.packetsLost, inbound.packetsReceived)) {
      const { loss_percent: percent, loss_window_s: seconds } = this.#fallback;
      this.#fail('packet_loss', `packet loss above ${percent}% for ${seconds} s`);
    }
  }

  /** @param {MediaStream} stream */
  #play(stream) {
    this.#stream = stream;
    this.#element.srcObject = stream;
    this.#element.play().catch((error) => {
      // Other rejections (AbortError) only mean the source changed before playback began.
      if (error.name === 'NotAllowedError' && !this.#over) this.#onAutoplayBlocked(stream);
    });
  }

  /**
   * @param {WebRTCFailure} reason
   * @param {string} detail
   */
  #fail(reason, detail) {
    if (this.#over) return;
    this.#stop();
    this.#onFailure(reason, detail);
  }

  #stop() {
    this.#over = true;
    this.#listeners.abort();
    clearTimeout(this.#watchdog);
    clearInterval(this.#lossSampler);
  }
}

/**
 * Resolves when ICE gathering completes, after `timeoutMs` (with the candidates found so far),
 * or when `signal` aborts.
 * @param {RTCPeerConnection} pc
 * @param {number} timeoutMs
 * @param {AbortSignal} signal
 * @returns {Promise<void>}
 */
function iceGathered(pc, timeoutMs, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
    signal.addEventListener('abort', done);
    check();
  });
}

/**
 * The offer as sent, without `a=end-of-candidates` (Firefox's): the server drops the mDNS host
 * candidates it cannot resolve, and aioice, told there are no more, would prune the component
 * and gather no candidate of its own. Without it, the browser's checks teach the server its
 * address (peer-reflexive candidates).
 */
/** @param {string} sdp */
function withoutEndOfCandidates(sdp) {
  return sdp.replace(/^a=end-of-candidates\r?\n/gm, '');
}
