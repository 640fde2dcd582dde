/**
 * Whether this browser decodes Opus with WebCodecs.
 * @param {Pick<typeof AudioDecoder, 'isConfigSupported'> | undefined} [Decoder]
 * @returns {Promise<boolean>}
 */
export function canDecodeOpus(Decoder?: Pick<typeof AudioDecoder, "isConfigSupported"> | undefined): Promise<boolean>;
/**
 * The codec to ask for: 'auto' (or 'opus') is Opus where the server offers it and the browser
 * decodes it, else PCM; 'mulaw' is mu-law where offered. PCM is the one every server has.
 * @param {'auto' | WebSocketCodec} requested the `codec` option
 * @param {readonly string[] | undefined} offered the server's (welcome.codecs)
 * @param {boolean} opusDecodes canDecodeOpus()
 * @returns {WebSocketCodec}
 */
export function chooseCodec(requested: "auto" | WebSocketCodec, offered: readonly string[] | undefined, opusDecodes: boolean): WebSocketCodec;
export namespace OPUS_CONFIG {
    let codec: string;
    let sampleRate: number;
    let numberOfChannels: number;
}
export class FrameDecoder {
    /**
     * @param {(frame: DecodedFrame) => void} onFrame each frame decoded, in order
     * @param {object} [webCodecs] for tests: stand-ins for the browser's classes
     * @param {typeof AudioDecoder} [webCodecs.AudioDecoder]
     * @param {typeof EncodedAudioChunk} [webCodecs.EncodedAudioChunk]
     */
    constructor(onFrame: (frame: DecodedFrame) => void, webCodecs?: {
        AudioDecoder?: {
            new (init: AudioDecoderInit): AudioDecoder;
            prototype: AudioDecoder;
            isConfigSupported(config: AudioDecoderConfig): Promise<AudioDecoderSupport>;
        } | undefined;
        EncodedAudioChunk?: {
            new (init: EncodedAudioChunkInit): EncodedAudioChunk;
            prototype: EncodedAudioChunk;
        } | undefined;
    });
    /** Frames whose decoding failed (an Opus packet the decoder refused). */
    get errors(): number;
    /**
     * @param {ArrayBuffer} message a binary WebSocket message
     * @param {FrameHeader} header its header
     */
    decode(message: ArrayBuffer, header: FrameHeader): void;
    /** Drop what is being decoded (barge-in): it would come out after the flush. */
    discard(): void;
    close(): void;
    #private;
}
/**
 * A codec of WebSocket audio, as `transport` requests name it.
 */
export type WebSocketCodec = "pcm_s16le" | "mulaw" | "opus";
/**
 * A codec of WebSocket audio, as `transport` requests name it.
 */
export type FrameHeader = import("./audio-frame.js").FrameHeader;
/**
 * A codec of WebSocket audio, as `transport` requests name it.
 */
export type DecodedFrame = import("./audio-frame.js").DecodedFrame;
