"""Prometheus metrics. Labels take few values (transport, provider, code): never a session id."""

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_SESSIONS = Gauge("voice_rtc_active_sessions", "Sessions open on this process")
FRAMES_SENT = Counter(
    "voice_rtc_audio_frames_sent_total",
    "20 ms audio frames sent to listeners",
    ["transport", "kind"],
)
PACING_LATENESS = Histogram(
    "voice_rtc_pacing_lateness_seconds",
    "How late each frame left the pacer after its deadline",
    buckets=(
        *(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02),
        *(0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.25, 1.0),
    ),
)
SIGNALING_ERRORS = Counter(
    "voice_rtc_signaling_errors_total", "Error messages sent to clients", ["code"]
)
RESUMES = Counter("voice_rtc_session_resumes_total", "Sessions resumed by a returning listener")
PACING_SKIPPED = Counter(
    "voice_rtc_pacing_skipped_slots_total",
    "20 ms slots given up after a stall longer than the pacer's burst: audio delayed, not lost",
)
TTS_FIRST_AUDIO = Histogram(
    "voice_rtc_tts_first_audio_seconds",
    "From starting to synthesize an utterance to its first audio",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
TTS_FAILURES = Counter(
    "voice_rtc_tts_failures_total",
    "Failed requests to a remote TTS provider",
    ["provider", "reason"],
)
TTS_FALLBACKS = Counter(
    "voice_rtc_tts_fallbacks_total", "Text spoken by the fallback voice instead", ["reason"]
)
TTS_BREAKER_STATE = Gauge(
    "voice_rtc_tts_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ["provider"]
)
