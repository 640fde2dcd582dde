"""The embedded voice: eSpeak NG from the espeakng-loader wheel, through ctypes.

No network and no system package. libespeak-ng keeps global state and is not thread-safe, so
one dedicated thread owns it; synthesis runs there, a sentence at a time, and each chunk the
library hands to its callback is passed to the event loop at once (first audio in about a
millisecond, long before the sentence is done), the rest of the sentence when it is done.
Closing the iterator aborts the sentence.
"""

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import espeakng_loader

from ..audio import SAMPLE_RATE
from .sentences import split_sentences

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # the callback runs inside espeak_Synth, on the calling thread
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE = 1  # espeakRATE parameter: words per minute
_BUFFER_MS = 200  # audio per callback: the first chunk covers the rest of the sentence's making

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(RuntimeError):
    pass


class _Engine:
    """The library itself. Every method must run on the provider's one thread."""

    def __init__(self, voice: str, words_per_minute: int) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path, 0)
        if rate != SAMPLE_RATE:
            raise EspeakError(f"libespeak-ng initialised at {rate} Hz, expected {SAMPLE_RATE}")
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"eSpeak NG has no voice named {voice!r}")
        lib.espeak_SetParameter(_RATE, words_per_minute, 0)
        self._lib = lib
        self._on_chunk: Callable[[bytes], None] = lambda _: None
        self._abort = threading.Event()
        # Keep a reference: ctypes callbacks are freed when their Python object is.
        self._callback = _SynthCallback(self._receive)
        lib.espeak_SetSynthCallback(self._callback)

    def _receive(self, wav: "ctypes._Pointer[ctypes.c_short]", samples: int, _events: int) -> int:
        if samples > 0 and wav:
            self._on_chunk(ctypes.string_at(wav, samples * 2))
        return 1 if self._abort.is_set() else 0

    def synth(self, text: str, on_chunk: Callable[[bytes], None], abort: threading.Event) -> None:
        self._on_chunk, self._abort = on_chunk, abort
        data = text.encode()
        status = self._lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0 and not abort.is_set():
            raise EspeakError(f"espeak_Synth failed with status {status}")


class EspeakProvider:
    name = "espeak"

    def __init__(self, voice: str = "en-us", words_per_minute: int = 175) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._engine = self._executor.submit(_Engine, voice, words_per_minute).result()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        for sentence in split_sentences(text):
            async for chunk in self._synthesize_sentence(sentence):
                yield chunk

    async def _synthesize_sentence(self, sentence: str) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        # Unbounded, but one sentence's audio at most (split_sentences caps its length).
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        abort = threading.Event()

        def hand_over(chunk: bytes) -> None:
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)

        def run() -> None:
            try:
                self._engine.synth(sentence, hand_over, abort)
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, None)

        done = loop.run_in_executor(self._executor, run)
        try:
            # The first chunk at once (first audio), then the rest of the sentence in one piece
            # once it is made (a few ms later): the consumer never leaves a sentence's PCM
            # waiting here while it paces itself.
            first = await chunks.get()
            if first is None:
                await done
                return
            yield first
            await done
            rest = []
            while (chunk := chunks.get_nowait()) is not None:
                rest.append(chunk)
            if rest:
                yield b"".join(rest)
        finally:
            abort.set()
            # Retrieve a late error so it is not reported as never retrieved.
            done.add_done_callback(lambda f: f.cancelled() or f.exception())

    def status(self) -> dict[str, Any]:
        return {"provider": self.name}

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
