"""Cartesia's streaming TTS, through the official SDK (async), over server-sent events.

Raw pcm_s16le at 22050 Hz, with word timestamps so that a stream cut halfway can be continued
from the word it stopped at. The SDK's own retries are off: `ResilientTTS` decides (it knows
whether any audio already reached the listener, the SDK does not).
"""

from collections.abc import AsyncGenerator

import httpx
from cartesia import APIConnectionError, APIStatusError, AsyncCartesia

from ..audio import SAMPLE_RATE
from .base import TTSFailure, WordTimings

_OUTPUT_FORMAT = {"container": "raw", "encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE}


class CartesiaProvider:
    name = "cartesia"

    def __init__(
        self, api_key: str, model: str, voice: str, base_url: str, stall_timeout_s: float
    ) -> None:
        self._model = model
        self._voice = voice
        self._client = AsyncCartesia(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=httpx.Timeout(stall_timeout_s, connect=min(5.0, stall_timeout_s)),
        )

    async def stream(self, text: str) -> AsyncGenerator[bytes | WordTimings, None]:
        try:
            events = await self._client.tts.generate_sse(
                model_id=self._model,
                transcript=text,
                voice=self._voice,
                output_format=_OUTPUT_FORMAT,  # type: ignore[arg-type]
                add_timestamps=True,
            )
            async with events:
                async for event in events:
                    if event.type == "chunk" and event.audio:
                        yield event.audio
                    elif event.type == "timestamps":
                        timings = event.word_timestamps
                        yield WordTimings(timings.words, timings.start, timings.end)
                    elif event.type == "error":
                        raise _status_failure(event.status_code, None)
                    elif event.type == "done":
                        return
            raise TTSFailure("stream_cut", retryable=True)
        except APIStatusError as exc:
            raise _status_failure(exc.status_code, exc.response.headers.get("retry-after")) from exc
        except (APIConnectionError, httpx.TransportError) as exc:
            reason = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
            raise TTSFailure(reason, retryable=True) from exc

    async def close(self) -> None:
        await self._client.close()


def _status_failure(status: int, retry_after: str | None) -> TTSFailure:
    retryable = status in (408, 429) or status >= 500
    reason = f"http_{status}" if status < 500 else "http_5xx"
    try:
        retry_after_s = float(retry_after) if retry_after else None
    except ValueError:
        retry_after_s = None  # an HTTP date: treat as unknown
    return TTSFailure(reason, retryable, retry_after_s)
