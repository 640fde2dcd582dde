"""Speech providers behind one interface (`base.TTSProvider`), chosen by the `tts` setting."""

from .. import metrics
from ..config import Settings
from .base import TTSProvider
from .breaker import BreakerState, CircuitBreaker

_BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def create_provider(settings: Settings) -> TTSProvider:
    if settings.tts == "tone":
        from .tone import ToneProvider

        return ToneProvider(settings.tone_frequency_hz)
    from .espeak import EspeakProvider

    espeak = EspeakProvider(settings.espeak_voice, settings.espeak_words_per_minute)
    if settings.tts == "espeak":
        return espeak
    from .cartesia import CartesiaProvider
    from .resilient import ResilientTTS, RetryPolicy

    cartesia = CartesiaProvider(
        settings.cartesia_api_key,
        settings.cartesia_model,
        settings.cartesia_voice,
        settings.cartesia_base_url,
        stall_timeout_s=settings.tts_stall_timeout_s,
    )
    breaker = CircuitBreaker(
        cartesia.name, settings.breaker_failure_threshold, settings.breaker_recovery_s
    )
    gauge = metrics.TTS_BREAKER_STATE.labels(cartesia.name)
    breaker.on_change = lambda state: gauge.set(_BREAKER_GAUGE[state])
    policy = RetryPolicy(
        max_retries=settings.tts_max_retries,
        first_audio_timeout_s=settings.tts_first_audio_timeout_s,
        stall_timeout_s=settings.tts_stall_timeout_s,
    )
    return ResilientTTS(cartesia, espeak, breaker, policy)
