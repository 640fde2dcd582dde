"""The embedded voice: eSpeak NG from the espeakng-loader wheel, through ctypes.

No network and no system package. libespeak-ng keeps global state and is not thread-safe, so
one dedicated thread owns it; synthesis runs there, a sentence at a time, and each chunk the
library hands to its callback is passed to the event loop at once (first audio in about a
millisecond, long before the sentence is done), the rest of the sentence when it is done.
Closing the iterator aborts the sentence.
"""

import asyncio
import bisect
import ctypes
import re
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import espeakng_loader

from ..audio import SAMPLE_RATE, SAMPLE_WIDTH
from .base import Speech, WordMark
from .sentences import split_sentences

_WORD = re.compile(r"\S+")

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # the callback runs inside espeak_Synth, on the calling thread
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE = 1  # espeakRATE parameter: words per minute
_BUFFER_MS = 200  # audio per callback: the first chunk covers the rest of the sentence's making

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h): what the library reports beside each chunk of audio."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters, from 1
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # samples from the start of the text's audio
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_int64),  # a union of a number, a name and a string pointer
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
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
        self._on_word: Callable[[int, int], None] = lambda _position, _sample: None
        self._abort = threading.Event()
        # Keep a reference: ctypes callbacks are freed when their Python object is.
        self._callback = _SynthCallback(self._receive)
        lib.espeak_SetSynthCallback(self._callback)

    def _receive(
        self,
        wav: "ctypes._Pointer[ctypes.c_short]",
        samples: int,
        events: "ctypes._Pointer[_Event]",
    ) -> int:
        i = 0
        while events and (event := events[i]).type != _EVENT_LIST_TERMINATED:
            if event.type == _EVENT_WORD:
                self._on_word(event.text_position - 1, event.sample)
            i += 1
        if samples > 0 and wav:
            self._on_chunk(ctypes.string_at(wav, samples * 2))
        return 1 if self._abort.is_set() else 0

    def synth(
        self,
        text: str,
        on_chunk: Callable[[bytes], None],
        on_word: Callable[[int, int], None],
        abort: threading.Event,
    ) -> None:
        """Speak `text`: audio to `on_chunk`, (character, sample) of each word to `on_word`."""
        self._on_chunk, self._on_word, self._abort = on_chunk, on_word, abort
        data = text.encode()
        status = self._lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0 and not abort.is_set():
            raise EspeakError(f"espeak_Synth failed with status {status}")


def _joined(pieces: list[bytes]) -> bytes:
    whole = b"".join(pieces)
    pieces.clear()
    return whole


class EspeakProvider:
    name = "espeak"
    deterministic = True  # the same text gives the same audio
    retracts = False

    def __init__(self, voice: str = "en-us", words_per_minute: int = 175) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._engine = self._executor.submit(_Engine, voice, words_per_minute).result()

    async def synthesize(self, text: str) -> AsyncIterator[Speech]:
        words_before = samples_before = 0  # of the sentences before this one
        last = WordMark(-1, 0)
        for sentence in split_sentences(text):
            samples = 0  # of this sentence's audio: its marks count from its start already
            async for item in self._synthesize_sentence(sentence):
                if isinstance(item, WordMark):
                    item = WordMark(words_before + item.index, samples_before + item.sample)
                    if item.index <= last.index:
                        continue
                    # eSpeak NG speaks some short words with the next as one ("on the"), and
                    # tells only the first: the others begin in between, as far as we know.
                    for skipped in range(last.index + 1, item.index):
                        share = (skipped - last.index) / (item.index - last.index)
                        yield WordMark(
                            skipped, last.sample + int((item.sample - last.sample) * share)
                        )
                    last = item
                elif isinstance(item, bytes):
                    samples += len(item) // SAMPLE_WIDTH
                # Handed on, not kept: the playout waits at this yield while it plays (up to a
                # sentence of PCM, which once encoded nobody needs).
                handed = [item]
                del item
                yield handed.pop()
            words_before += len(sentence.split())
            samples_before += samples
        for skipped in range(last.index + 1, words_before):  # told with none after them
            share = (skipped - last.index) / (words_before - last.index)
            yield WordMark(skipped, last.sample + int((samples_before - last.sample) * share))

    async def _synthesize_sentence(self, sentence: str) -> AsyncIterator[Speech]:
        loop = asyncio.get_running_loop()
        # Unbounded, but one sentence's audio at most (split_sentences caps its length).
        chunks: asyncio.Queue[bytes | WordMark | None] = asyncio.Queue()
        abort = threading.Event()
        word_starts = [m.start() for m in _WORD.finditer(sentence)]

        def hand_over(chunk: bytes) -> None:
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)

        def mark_word(position: int, sample: int) -> None:
            index = max(0, bisect.bisect_right(word_starts, position) - 1)
            loop.call_soon_threadsafe(chunks.put_nowait, WordMark(index, sample))

        def run() -> None:
            try:
                self._engine.synth(sentence, hand_over, mark_word, abort)
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, None)

        done = loop.run_in_executor(self._executor, run)
        try:
            # The first audio at once (first audio), then the rest of the sentence once it is
            # made (a few ms later), its audio in one piece: the consumer never leaves a
            # sentence's PCM waiting here while it paces itself.
            while isinstance(first := await chunks.get(), WordMark):
                yield first
            if first is None:
                await done
                return
            yield first
            await done
            rest = []
            while (item := chunks.get_nowait()) is not None:
                if isinstance(item, WordMark):
                    yield item
                else:
                    rest.append(item)
            if rest:
                yield _joined(rest)  # emptied: the pieces are not kept beside the whole
        finally:
            abort.set()
            # Retrieve a late error so it is not reported as never retrieved.
            done.add_done_callback(lambda f: f.cancelled() or f.exception())

    def status(self) -> dict[str, Any]:
        return {"provider": self.name}

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
