/**
 * @typedef {import('./frame-decoder.js').WebSocketCodec} WebSocketCodec
 * @typedef {import('./audio-frame.js').DecodedFrame} DecodedFrame
 * @typedef {{push(frame: DecodedFrame): void, readonly playing: boolean,
 *   readonly playedSeq: number | null, readonly playingSeq: number | null}} FrameSink what
 *   plays the frames: an AudioOutput
 * @typedef {{isCancelled(utterance: number): boolean}} Cancellations a SessionCursor
 */
export class WebSocketAudio {
    /**
     * @param {object} options
     * @param {WebSocketCodec} options.codec as requested
     * @param {Cancellations} options.cancellations frames of cancelled utterances, already on
     *   their way, are dropped
     * @param {ConstructorParameters<typeof FrameDecoder>[1]} [options.webCodecs] for tests
     */
    constructor({ codec, cancellations, webCodecs }: {
        codec: WebSocketCodec;
        cancellations: Cancellations;
        webCodecs?: ConstructorParameters<typeof FrameDecoder>[1];
    });
    transportId: number;
    /** 'websocket' while the output plays, 'captions' otherwise. */
    get kind(): "websocket" | "captions";
    get codec(): import("./frame-decoder.js").WebSocketCodec;
    /**
     * Play from the next frame on (leaving captions only).
     * @param {FrameSink} output
     */
    play(output: FrameSink): void;
    /**
     * A binary message from the server.
     * @param {ArrayBuffer} message
     */
    receive(message: ArrayBuffer): void;
    /** Barge-in: what is being decoded is of cancelled utterances. */
    discard(): void;
    /**
     * What was last played, as the server wants it reported; null before anything was.
     * @returns {{transport_id: number, seq: number} | null}
     */
    position(): {
        transport_id: number;
        seq: number;
    } | null;
    /**
     * The frame being played now (captions only: the last arrived), or null.
     * @returns {{seq: number} | null}
     */
    playing(): {
        seq: number;
    } | null;
    stats(): Promise<{
        codec: import("./frame-decoder.js").WebSocketCodec;
        decodeErrors: number;
    }>;
    /** Take no more frames. The output (not this transport's) plays out what it holds. */
    close(): void;
    #private;
}
export type WebSocketCodec = import("./frame-decoder.js").WebSocketCodec;
export type DecodedFrame = import("./audio-frame.js").DecodedFrame;
/**
 * what
 * plays the frames: an AudioOutput
 */
export type FrameSink = {
    push(frame: DecodedFrame): void;
    readonly playing: boolean;
    readonly playedSeq: number | null;
    readonly playingSeq: number | null;
};
/**
 * a SessionCursor
 */
export type Cancellations = {
    isCancelled(utterance: number): boolean;
};
import { FrameDecoder } from './frame-decoder.js';
