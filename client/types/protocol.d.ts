export const VERSION: 1;
export const PATHS_LISTENER: "/ws";
export const PATHS_AGENT: "/agent";
export const CLOSE_CODES_NORMAL: 1000;
export const CLOSE_CODES_GOING_AWAY: 1001;
export const CLOSE_CODES_POLICY_VIOLATION: 1008;
export const CLOSE_CODES_TOO_BIG: 1009;
export const CLOSE_CODES_REPLACED: 4001;
export const CLOSE_CODES_HEARTBEAT_TIMEOUT: 4002;
export const RECONNECT_BASE_MS: 1000;
export const RECONNECT_CAP_MS: 30000;
export const RECONNECT_STABLE_AFTER_MS: 10000;
export const AUDIO_FRAME_FORMAT_VERSION: 1;
export const AUDIO_FRAME_HEADER_BYTES: 14;
export const AUDIO_FRAME_FIELDS: string[];
export const AUDIO_FRAME_BYTE_ORDER: "big";
export namespace AUDIO_FRAME_CODECS {
    let pcm_s16le: number;
    let mulaw: number;
    let opus: number;
}
export const AUDIO_FRAME_WARM_UP_FLAG: 128;
export const RTP_TICKS_PER_FRAME: 960;
