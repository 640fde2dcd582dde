"""The one interface every speech provider implements."""

from collections.abc import AsyncIterator
from typing import Protocol


class TTSProvider(Protocol):
    """Text in, 22050 Hz s16le mono PCM out, as an async iterator of chunks of any size.

    The first chunk should come as soon as the provider has it: playout starts on it.
    Closing the iterator early (cancel, barge-in) must stop the synthesis behind it.
    """

    name: str

    def synthesize(self, text: str) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...
