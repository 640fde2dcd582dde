"""A playout's synthesis: the TTS provider run for its queued utterances in order, their audio
re-chunked into exact 20 ms frames and encoded at once (a batch per chunk of audio, off the event
loop), so what waits ahead of playback is kept encoded: a few KB a second. It stays at most
`lookahead_frames` ahead of playback; the playout takes the frames from each utterance's deque.

For a listener that takes PCM (WebSocket pcm_s16le or mu-law) the frames are kept as PCM instead
(`keep_pcm`), with a shorter lookahead: no encode for them, and no decode to undo it. The lane
changes for the next utterance when a listener moves to PCM, and at once when it moves away: a
transport taking packets encodes the PCM still ahead (`CatchUpEncoder`), and the encoding starts
again mid-utterance from the frame it had reached.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from . import metrics
from .audio import FRAME_BYTES, SAMPLE_WIDTH, Reframer
from .fec import LinkLoss
from .opus import Codec, FrameEncoder, Packet, PcmFrame
from .session_events import PlayoutEvent, UtteranceWords
from .tts.base import Retract, TTSProvider, WordMark
from .utterance import Sentence, Utterance, Word

log = logging.getLogger(__name__)

BATCH_FRAMES = 25  # frames encoded per call: 0.5 s of audio, a few ms of work off the loop
URGENT_BELOW_FRAMES = 10  # an utterance with less encoded ahead has its batches encoded first
RETRACT_FRAMES = 25  # audio kept as PCM after encoding, for a provider taking back a word


class _Encoding:
    """One utterance's way from PCM chunks to packets: the re-chunker, the encoder stream, and,
    for a provider that may take back audio it already handed over, the newest frames' PCM.
    `keep_pcm`: the frames stay PCM until `encode` is told otherwise."""

    def __init__(self, codec: Codec, link: LinkLoss, retracts: bool, keep_pcm: bool) -> None:
        self.codec = codec
        self._link = link
        self.reframer = Reframer()
        self._stream: FrameEncoder | None = None  # made when first needed: kept PCM needs none
        self.recent_pcm: deque[Packet] = deque(maxlen=RETRACT_FRAMES if retracts else 0)
        self.keeps_pcm = keep_pcm
        self._last_kept: PcmFrame | None = None  # the last frame kept as PCM

    async def encode(
        self, frames: Sequence[bytes], urgent: bool, keep_pcm: bool
    ) -> Sequence[Packet]:
        """`keep_pcm` only holds from the utterance's start: once encoding, it goes on."""
        if self.keeps_pcm and keep_pcm:
            kept = [PcmFrame(frame) for frame in frames]
            self.recent_pcm.extend(kept)  # the same objects: a retract's PCM is not kept twice
            self._last_kept = kept[-1] if kept else self._last_kept
            return kept
        self.recent_pcm.extend(frames)
        self.keeps_pcm = False
        if self._stream is None:
            self._stream = self.codec.new_stream(self._link)
        if self._last_kept is None:
            return await self.codec.encode(self._stream, frames, urgent)
        # Mid-utterance: a stream warmed up on the frame before splices on without a gap.
        warm_up, self._last_kept = self._last_kept, None
        return (await self.codec.encode(self._stream, [bytes(warm_up), *frames], urgent))[1:]

    def restart(self) -> None:
        """Audio it already coded was taken back: its state no longer matches the stream."""
        self._stream = None


class Synthesis:
    """The synthesis task of one playout, over the playout's own queue (`queue`): it synthesizes
    the first utterance not yet synthesized, then the next, while there is room ahead."""

    def __init__(
        self,
        tts: TTSProvider,
        codec: Codec,
        link: LinkLoss,
        queue: deque[Utterance],
        on_event: Callable[[PlayoutEvent], None],
        lookahead_frames: int,
        pcm_lookahead_frames: int,
    ) -> None:
        self._tts = tts
        self._codec = codec
        self._link = link
        self._queue = queue
        self._on_event = on_event
        self._lookahead_frames = lookahead_frames
        self._pcm_lookahead_frames = pcm_lookahead_frames
        self._keeping_pcm = False
        self.buffered = 0  # frames made and not yet taken, in every utterance
        self._room = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Go on with the queue (if not at it already)."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._synthesize_queue(), name="playout-synthesis")

    def stop(self) -> asyncio.Task[None] | None:
        """Cancel the task; returns it, for whoever wants to wait for it to end."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
        return worker

    def keep_pcm(self, keep: bool) -> None:
        """Keep frames as PCM (for a listener taking PCM) or encode them (see the top)."""
        self._keeping_pcm = keep
        self._room.set()  # the lookahead's bound changed: synthesis looks again

    def took_one(self) -> None:
        """The playout took a frame for playback: room for another."""
        self.buffered -= 1
        if self.buffered < self._lookahead():
            self._room.set()

    def forget(self) -> None:
        """The queue was emptied (cancelled): nothing is ahead any more."""
        self.buffered = 0

    async def _synthesize_queue(self) -> None:
        while (pending := next((u for u in self._queue if not u.synthesized), None)) is not None:
            await self._synthesize(pending)

    async def _synthesize(self, utterance: Utterance) -> None:
        encoding = _Encoding(self._codec, self._link, self._tts.retracts, self._keeping_pcm)
        try:
            try:
                await self._speak(utterance, encoding)
            except Exception:
                log.exception("tts_failed", extra={"utterance_id": utterance.id})
                utterance.failed = True  # play what was made; the end event says it failed
            # Silence after the audio for the codec's look-ahead, so its end reaches a packet.
            tail = bytes(self._codec.delay_samples * SAMPLE_WIDTH)
            frames = [*encoding.reframer.push(tail), *encoding.reframer.flush()]
            await self._encode(utterance, encoding, frames)
        except Exception:
            log.exception("encoding_failed", extra={"utterance_id": utterance.id})
            utterance.failed = True
        finally:
            utterance.synthesized = True

    async def _speak(self, utterance: Utterance, encoding: _Encoding) -> None:
        first_request: float | None = None  # when the first sentence went to the provider
        heard_first_audio = False
        async for sentence in utterance.sentences():
            if first_request is None:
                first_request = time.monotonic()
            start = utterance.samples  # where this sentence's audio begins
            utterance.in_synthesis = True
            try:
                async for item in self._tts.synthesize(sentence.text):
                    if isinstance(item, WordMark):
                        self._mark(utterance, sentence, start, item)
                        continue
                    if isinstance(item, Retract):
                        self._retract(utterance, encoding, item.byte_count)
                        continue
                    if not heard_first_audio:
                        heard_first_audio = True
                        metrics.TTS_FIRST_AUDIO.labels(self._tts.name).observe(
                            time.monotonic() - first_request
                        )
                    utterance.samples += len(item) // SAMPLE_WIDTH
                    self._publish_words(utterance)
                    if utterance.skip_samples:  # said again after a takeover: played already
                        dropped = min(len(item) // SAMPLE_WIDTH, utterance.skip_samples)
                        utterance.skip_samples -= dropped
                        item = item[dropped * SAMPLE_WIDTH :]
                    frames = list(encoding.reframer.push(item))
                    del item  # not held while encoding and waiting for room: a chunk may be
                    # a whole sentence of PCM
                    await self._encode(utterance, encoding, frames)
                    await self._wait_for_room()
            finally:
                utterance.in_synthesis = False
            self._publish_words(utterance)

    def _mark(self, utterance: Utterance, sentence: Sentence, start: int, mark: WordMark) -> None:
        if mark.index >= len(sentence.spans):
            return  # a provider's word we cannot place in the text: no caption for it
        begin, end = sentence.spans[mark.index]
        words = utterance.words
        if words and (words[-1].start >= begin or words[-1].sample > start + mark.sample):
            return  # marked already (a retried request says its words again), or out of order
        words.append(Word(begin, end, start + mark.sample))

    def _publish_words(self, utterance: Utterance) -> None:
        """Tell the words timed since last time (once their audio exists: a retract may yet
        take back a word marked ahead of its audio)."""
        new = [
            w for w in utterance.words[utterance.words_published :] if w.sample < utterance.samples
        ]
        if new:
            utterance.words_published += len(new)
            # Taken over: the words before the cut were told by the process before.
            told = [w for w in new if w.sample >= utterance.resumed_from]
            if told:
                self._on_event(UtteranceWords(utterance.id, utterance.text, tuple(told)))

    async def _encode(self, utterance: Utterance, encoding: _Encoding, frames: list[bytes]) -> None:
        """Encode in batches, each playable as soon as it is done. Takes the frames out of
        `frames` as it goes: a sentence's PCM (eSpeak hands it over whole) is let go batch by
        batch, not kept until its last batch is done."""
        while frames:
            batch = frames[:BATCH_FRAMES]
            del frames[:BATCH_FRAMES]
            # Urgent when the listener is about to run dry (first audio above all).
            urgent = len(utterance.frames) < URGENT_BELOW_FRAMES
            for packet in await encoding.encode(batch, urgent, self._keeping_pcm):
                utterance.frames.append(packet)
                self.buffered += 1

    def _retract(self, utterance: Utterance, encoding: _Encoding, byte_count: int) -> None:
        """Take back the newest `byte_count` bytes of audio, as far as none of it was played."""
        left = byte_count - encoding.reframer.retract(byte_count)
        taken = 0
        while left > 0 and utterance.frames and encoding.recent_pcm:
            utterance.frames.pop()
            self.buffered -= 1
            pcm = encoding.recent_pcm.pop()
            keep = max(0, FRAME_BYTES - left)
            left -= FRAME_BYTES - keep
            encoding.reframer.restore(bytes(pcm[:keep]))
            taken += 1
        if taken:
            encoding.restart()
        utterance.take_back((byte_count - left) // SAMPLE_WIDTH)
        if left:
            log.warning("retract_too_late", extra={"utterance_id": utterance.id, "bytes": left})

    def _lookahead(self) -> int:
        return self._pcm_lookahead_frames if self._keeping_pcm else self._lookahead_frames

    async def _wait_for_room(self) -> None:
        while self.buffered >= self._lookahead():
            self._room.clear()
            await self._room.wait()
