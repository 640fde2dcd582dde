/**
 * @typedef {import('./audio-frame.js').DecodedFrame} DecodedFrame
 *
 * @typedef {object} OutputStats the jitter buffer's, from the worklet's last status (at most
 *   ~50 ms old); times in seconds
 * @property {number} underruns times it ran dry mid-utterance
 * @property {number} jitterBufferTarget what it fills to before it plays
 * @property {number} bufferedAudio what it holds now
 * @property {number} framesPlayed frames played to the end, this session
 * @property {number} duplicateFrames frames dropped as already played or queued
 * @property {number} overflowFrames frames dropped because it was full
 * @property {number} audioLevel RMS of the output, 0..1
 */
export class AudioOutput {
    /**
     * Creates the AudioContext and asks it to run, at once: construct it in a user gesture's
     * handler.
     * @param {object} [jitterBuffer] JitterBuffer options (audio-output.worklet.js)
     * @throws {Error} where there is no Web Audio
     */
    constructor(jitterBuffer?: object);
    /** Called when the context starts running again, or at last, once the worklet is loaded. */
    onplaying: () => void;
    /** Whether audio plays: the worklet is loaded and the context runs. */
    get playing(): boolean;
    /**
     * Load the worklet and wait (a moment) for the context to run.
     * @returns {Promise<boolean>} whether it plays; if not (no user gesture yet), what it is given
     *   is held until resume()
     * @throws {Error} when it never can: no AudioWorklet (outside a secure context)
     */
    start(): Promise<boolean>;
    /**
     * Ask again to play, and play what is held: call it from a user gesture's handler (it asks
     * at once, before anything is awaited, while the gesture counts).
     * @returns {Promise<boolean>} whether it plays now
     */
    resume(): Promise<boolean>;
    /**
     * Queue a frame for playing (or hold it, while the browser will not play).
     * @param {DecodedFrame} frame
     */
    push(frame: DecodedFrame): void;
    /**
     * Play a MediaStream through this context instead of a media element: for WebRTC speech a
     * browser refuses to play in an element after the gesture has passed, while this context,
     * started in the gesture, runs.
     * @param {MediaStream} stream
     * @returns {Promise<boolean>} whether it plays
     */
    playStream(stream: MediaStream): Promise<boolean>;
    stopStream(): void;
    /** Barge-in: drop what is buffered, now. */
    flush(): void;
    /** A new session: its frames count from 0 again. */
    reset(): void;
    /** The node playing the audio, e.g. for an AnalyserNode; null until started. */
    get output(): AudioWorkletNode | null;
    /** Seq of the last frame played out, or null. */
    get playedSeq(): number | null;
    /**
     * Seq of the frame playing now, or null when nothing plays: as the worklet said (it tells
     * each change), not counting the audio device's own latency.
     */
    get playingSeq(): number | null;
    /** @returns {OutputStats} */
    get stats(): OutputStats;
    close(): void;
    #private;
}
export type DecodedFrame = import("./audio-frame.js").DecodedFrame;
/**
 * the jitter buffer's, from the worklet's last status (at most
 *  ~50 ms old); times in seconds
 */
export type OutputStats = {
    /**
     * times it ran dry mid-utterance
     */
    underruns: number;
    /**
     * what it fills to before it plays
     */
    jitterBufferTarget: number;
    /**
     * what it holds now
     */
    bufferedAudio: number;
    /**
     * frames played to the end, this session
     */
    framesPlayed: number;
    /**
     * frames dropped as already played or queued
     */
    duplicateFrames: number;
    /**
     * frames dropped because it was full
     */
    overflowFrames: number;
    /**
     * RMS of the output, 0..1
     */
    audioLevel: number;
};
