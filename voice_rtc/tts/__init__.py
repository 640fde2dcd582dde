"""Speech providers behind one interface (`base.TTSProvider`), chosen by the `tts` setting."""

from ..config import Settings
from .base import TTSProvider


def create_provider(settings: Settings) -> TTSProvider:
    if settings.tts == "tone":
        from .tone import ToneProvider

        return ToneProvider(settings.tone_frequency_hz)
    from .espeak import EspeakProvider

    return EspeakProvider(settings.espeak_voice, settings.espeak_words_per_minute)
