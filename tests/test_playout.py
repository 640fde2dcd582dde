import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from tests.test_opus import tone_pcm
from voice_rtc.audio import FRAME_BYTES
from voice_rtc.encoding import EncodingThread
from voice_rtc.opus import (
    CatchUpEncoder,
    FrameDecoder,
    FrameEncoder,
    OpusCodec,
    OpusSettings,
    PassthroughCodec,
    PcmFrame,
)
from voice_rtc.playout import Frame, Playout, PlayoutFull
from voice_rtc.session_events import (
    EndReason,
    PlayoutEvent,
    UtteranceEnded,
    UtteranceQueued,
    UtteranceStarted,
)
from voice_rtc.tts.base import Retract
from voice_rtc.tts.espeak import EspeakProvider
from voice_rtc.tts.tone import ToneProvider
from voice_rtc.utterance import UtteranceClosed

CODEC = PassthroughCodec()  # the playout's logic, exactly: frames stay PCM


class ScriptedProvider:
    """Yields `chunks` chunks of `size` bytes per text; records how far each synthesis got."""

    name = "scripted"
    retracts = False

    def __init__(self, chunks: int = 10, size: int = 1000, fail_after: int | None = None) -> None:
        self.chunks, self.size, self.fail_after = chunks, size, fail_after
        self.yielded: dict[str, int] = {}
        self.closed: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.yielded[text] = 0
        try:
            for i in range(self.chunks):
                if self.fail_after is not None and i == self.fail_after:
                    raise RuntimeError("provider broke")
                yield bytes([i % 251 + 1]) * self.size
                self.yielded[text] += 1
                await asyncio.sleep(0)
        finally:
            self.closed.append(text)

    async def close(self) -> None:
        pass


async def play_all(playout: Playout, limit: int = 10_000, pause_s: float = 0) -> list[Frame]:
    """Pull frames as the pacer would, letting synthesis run between pulls, until idle."""
    frames: list[Frame] = []
    for _ in range(limit):
        frame = playout.next_frame()
        if frame is not None:
            frames.append(frame)
        elif playout.idle:
            return frames
        await asyncio.sleep(pause_s)
    raise AssertionError("playout never went idle")


async def test_frames_are_exact_numbered_and_in_order() -> None:
    events: list[PlayoutEvent] = []
    playout = Playout(ToneProvider(), CODEC, events.append)
    first = playout.enqueue("440hz 1s")  # 22050 samples: 50 whole frames
    second = playout.enqueue("660hz 0.51s")  # 11246 samples: 25.5 frames -> 26, last padded
    frames = await play_all(playout)

    assert all(len(f.packet) == FRAME_BYTES for f in frames)
    assert [f.seq for f in frames] == list(range(76))
    assert [(f.utterance_id, f.index) for f in frames] == [(first, i) for i in range(50)] + [
        (second, i) for i in range(26)
    ]
    assert frames[-1].packet[(11246 - 25 * 441) * 2 :] == bytes(
        FRAME_BYTES - (11246 - 25 * 441) * 2
    )
    assert events == [
        UtteranceQueued(first, "440hz 1s", final=True),
        UtteranceQueued(second, "660hz 0.51s", final=True),
        UtteranceStarted(first, 0, "440hz 1s"),
        UtteranceEnded(first, 50, EndReason.DONE, "440hz 1s"),
        UtteranceStarted(second, 50, "660hz 0.51s"),
        UtteranceEnded(second, 26, EndReason.DONE, "660hz 0.51s"),
    ]


async def test_the_frames_carry_exactly_what_the_provider_made() -> None:
    provider = ToneProvider()
    expected = b"".join([chunk async for chunk in provider.synthesize("500hz 0.3s")])
    playout = Playout(provider, CODEC, lambda _e: None)
    playout.enqueue("500hz 0.3s")
    frames = await play_all(playout)
    assert b"".join(f.packet for f in frames)[: len(expected)] == expected


async def test_idle_playout_gives_silence() -> None:
    playout = Playout(ToneProvider(), CODEC, lambda _e: None)
    assert playout.next_frame() is None and playout.idle


async def test_cancel_drops_the_current_utterance_and_the_queue_and_stops_synthesis() -> None:
    events: list[PlayoutEvent] = []
    provider = ScriptedProvider(chunks=1000)
    playout = Playout(provider, CODEC, events.append)
    current = playout.enqueue("current")
    queued = playout.enqueue("queued")
    for _ in range(5):
        await asyncio.sleep(0)
    played = [f for f in (playout.next_frame() for _ in range(3)) if f]
    assert len(played) == 3

    assert playout.cancel() == [current, queued]
    assert playout.next_frame() is None and playout.idle
    assert events[-2:] == [
        UtteranceEnded(current, 3, EndReason.CANCELLED, "current"),
        UtteranceEnded(queued, 0, EndReason.CANCELLED, "queued"),
    ]
    await asyncio.sleep(0)
    assert provider.closed == ["current"]  # the provider's iterator was closed, not left running
    assert provider.yielded["current"] < 1000 and "queued" not in provider.yielded

    # The next utterance starts clean, from its first frame.
    after = playout.enqueue("after")
    frames = await play_all(playout)
    assert frames[0].utterance_id == after and frames[0].index == 0
    assert frames[0].seq == 3  # the session-wide sequence carries on
    await playout.close()


async def test_queue_and_buffer_are_bounded() -> None:
    provider = ScriptedProvider(chunks=1000, size=FRAME_BYTES)
    playout = Playout(provider, CODEC, lambda _e: None, max_queued=2, lookahead_frames=40)
    playout.enqueue("a")
    playout.enqueue("b")
    with pytest.raises(PlayoutFull):
        playout.enqueue("c")
    for _ in range(200):
        await asyncio.sleep(0)
    # Synthesis stopped at the buffer bound and waits for playback to make room.
    assert provider.yielded["a"] <= 41
    for _ in range(10):
        playout.next_frame()
    for _ in range(50):
        await asyncio.sleep(0)
    assert 41 < provider.yielded["a"] <= 51
    await playout.close()
    assert playout.idle


async def test_a_failing_provider_ends_the_utterance_and_the_next_one_still_plays() -> None:
    events: list[PlayoutEvent] = []
    playout = Playout(ScriptedProvider(chunks=10, fail_after=4), CODEC, events.append)
    broken = playout.enqueue("broken")
    frames = await play_all(playout)
    assert UtteranceEnded(broken, len(frames), EndReason.FAILED, "broken") in events
    assert len(frames) == 4 * 1000 // FRAME_BYTES + 1  # what was made before the failure
    playout._synthesis._tts = ToneProvider()  # the provider recovers
    fine = playout.enqueue("0.2s")
    assert len(await play_all(playout)) == 10
    assert events[-1] == UtteranceEnded(fine, 10, EndReason.DONE, "0.2s")


async def test_synthesis_falling_behind_counts_an_underrun() -> None:
    release = asyncio.Event()

    class Stalling(ScriptedProvider):
        async def synthesize(self, text: str) -> AsyncIterator[bytes]:
            yield bytes(FRAME_BYTES * 2)
            await release.wait()
            yield bytes(FRAME_BYTES)

    playout = Playout(Stalling(), CODEC, lambda _e: None)
    playout.enqueue("x")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert playout.next_frame() is not None and playout.next_frame() is not None
    assert playout.next_frame() is None  # silence while synthesis is behind
    assert playout.underruns == 1
    release.set()
    assert len(await play_all(playout)) == 1


async def synthesized(playout: Playout) -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_rewind_replays_exactly_what_was_not_acknowledged() -> None:
    playout = Playout(ToneProvider(), CODEC, lambda _e: None)
    playout.enqueue("1s")
    await synthesized(playout)
    sent = [playout.next_frame() for _ in range(30)]
    playout.acknowledge(19)  # the listener played 0-19; 20-29 were lost with the transport
    assert playout.rewind() == 10
    rest = await play_all(playout)
    # First the two frames played last (to warm up a new decoder), marked as played already...
    assert [(f.seq, f.preroll) for f in rest[:2]] == [(18, True), (19, True)]
    assert [f.packet for f in rest[:2]] == [f.packet for f in sent[18:20] if f]
    # ...then every frame from the first one not played: nothing skipped, nothing repeated.
    assert [f.seq for f in rest[2:]] == list(range(20, 50))
    assert rest[2:12] == sent[20:]  # the very same frames


async def test_no_preroll_when_the_listener_heard_everything_there_was() -> None:
    playout = Playout(ToneProvider(), CODEC, lambda _e: None)
    playout.enqueue("0.2s")
    frames = await play_all(playout)
    playout.acknowledge(frames[-1].seq)
    assert playout.rewind() == 0
    assert playout.next_frame() is None  # a reconnecting idle listener hears nothing again


async def test_a_listener_that_stops_acknowledging_gets_silence_after_one_window() -> None:
    playout = Playout(ToneProvider(), CODEC, lambda _e: None, resume_window=25)
    playout.enqueue("2s")
    await synthesized(playout)
    playout.next_frame()
    playout.acknowledge(0)
    frames = [playout.next_frame() for _ in range(40)]
    assert sum(f is not None for f in frames) == 25  # one window ahead of the last ack...
    assert playout.held == 15  # ...then it holds rather than talk into the void
    playout.acknowledge(20)
    assert playout.next_frame() is not None  # acks open the window again


async def test_a_transport_that_never_acknowledges_is_not_held() -> None:
    playout = Playout(ToneProvider(), CODEC, lambda _e: None, resume_window=25)
    playout.enqueue("2s")
    await synthesized(playout)
    playout.next_frame()
    playout.acknowledge(0)  # the old transport acknowledged...
    playout.rewind()  # ...then a new one took over that cannot report positions
    playout.acknowledge(0, by_current_transport=False)  # a late report from the old one
    assert len(await play_all(playout)) == 99 and playout.held == 0


async def test_cancel_forgets_the_unacknowledged_audio_too() -> None:
    playout = Playout(ToneProvider(), CODEC, lambda _e: None)
    playout.enqueue("1s")
    await synthesized(playout)
    for _ in range(10):
        playout.next_frame()
    playout.cancel()
    assert playout.rewind() == 0 and playout.next_frame() is None


class RecordingProvider(ScriptedProvider):
    """Records the sentences it is asked for; each becomes one frame of audio."""

    def __init__(self) -> None:
        super().__init__(chunks=1, size=FRAME_BYTES)
        self.asked: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.asked.append(text)
        yield bytes(FRAME_BYTES)


async def test_text_streamed_in_pieces_is_spoken_a_sentence_at_a_time_as_it_completes() -> None:
    provider = RecordingProvider()
    events: list[PlayoutEvent] = []
    playout = Playout(provider, CODEC, events.append)
    utterance = playout.enqueue("Hello there. How", final=False)
    await synthesized(playout)
    assert provider.asked == ["Hello there."]  # spoken before the rest of the text exists
    playout.append(utterance, " are you? Fi", final=False)
    await synthesized(playout)
    assert provider.asked == ["Hello there.", "How are you?"]
    playout.append(utterance, "ne.", final=True)
    frames = await play_all(playout)
    assert provider.asked == ["Hello there.", "How are you?", "Fine."]
    assert [f.index for f in frames] == [0, 1, 2]  # one utterance, no gap, no restart
    assert events[-1] == UtteranceEnded(
        utterance, 3, EndReason.DONE, "Hello there. How are you? Fine."
    )
    with pytest.raises(UtteranceClosed):
        playout.append(utterance, "more", final=True)


async def test_an_open_utterance_holds_the_queue_until_it_is_finished() -> None:
    provider = RecordingProvider()
    playout = Playout(provider, CODEC, lambda _e: None)
    first = playout.enqueue("One", final=False)
    playout.enqueue("Two.")
    await synthesized(playout)
    assert provider.asked == []  # "One" may be the start of a longer sentence
    playout.append(first, " more.", final=True)
    await play_all(playout)
    assert provider.asked == ["One more.", "Two."]


@pytest.mark.parametrize("keep_pcm", [False, True], ids=["encoded", "kept-as-pcm"])
async def test_retract_takes_back_audio_not_yet_played(keep_pcm: bool) -> None:
    class Retracting(ScriptedProvider):
        retracts = True

        async def synthesize(self, text: str) -> AsyncIterator[bytes | Retract]:
            yield b"\x01" * 3000  # 3.4 frames
            yield Retract(1000)  # the last 1000 bytes were a word cut off
            yield b"\x02" * 1000

    playout = Playout(Retracting(), CODEC, lambda _e: None)
    playout.keep_pcm(keep_pcm)
    playout.enqueue("x")
    frames = await play_all(playout)
    assert all(isinstance(f.packet, PcmFrame) == keep_pcm for f in frames)
    pcm = b"".join(f.packet for f in frames)
    assert pcm[:3000] == b"\x01" * 2000 + b"\x02" * 1000
    assert pcm[3000:] == bytes(len(pcm) - 3000)  # then only the padding of the last frame


async def held_by_speaking_playouts(keep_pcm: bool, lookahead: int, count: int = 20) -> float:
    """Python-side memory (which with libopus in our own buffers is all of it) of speaking tone
    playouts, each played 2 s (acknowledged 10 frames behind), then its lookahead full."""
    thread = EncodingThread()
    codec = OpusCodec(OpusSettings(), thread)
    tracemalloc.start()
    try:
        playouts = [Playout(ToneProvider(), codec, lambda event: None) for _ in range(count)]
        for playout in playouts:
            playout.keep_pcm(keep_pcm)
            playout.enqueue("440hz 60s")
        for _ in range(100):
            for playout in playouts:
                frame = playout.next_frame()
                if frame is not None and frame.seq > 10:
                    playout.acknowledge(frame.seq - 10)
            await asyncio.sleep(0.02)
        for _ in range(1200):  # up to a minute, however slowly this machine encodes
            if all(p._synthesis.buffered >= lookahead for p in playouts):
                break
            await asyncio.sleep(0.05)
        assert all(p._synthesis.buffered >= lookahead for p in playouts)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        for playout in playouts:
            await playout.close()
        thread.stop()
    return held / count


async def test_a_speaking_playout_keeps_its_lookahead_encoded_and_little_else() -> None:
    """Its encoder and the encoded lookahead (5 s), not PCM: the tone's arrays, the chunk in
    hand and the like are gone while it waits."""
    # encoder ~33 KB, 250 packets ~25 KB; no PCM, for the tone never takes audio back (a voice
    # that may keeps 0.5 s of it, ~23 KB more: 98 KB in all, measured)
    assert await held_by_speaking_playouts(keep_pcm=False, lookahead=250) < 90_000


async def test_a_playout_keeping_pcm_holds_its_short_lookahead_and_no_codec_state() -> None:
    # ~63 frames of PCM (1 s ahead, the 10 unacknowledged, 2 played) at ~0.9 KB: ~60 KB. An
    # encoder made anyway would be ~33 KB more (114 KB in all, measured).
    assert await held_by_speaking_playouts(keep_pcm=True, lookahead=50) < 95_000


async def test_a_sentence_of_espeak_pcm_is_let_go_once_it_is_encoded() -> None:
    """eSpeak NG hands a sentence's audio over whole (~15 s here, 0.65 MB of PCM): once it is
    encoded, neither the voice nor the playout keeps it while playback catches up."""
    thread = EncodingThread()
    codec = OpusCodec(OpusSettings(), thread)
    voice = EspeakProvider()
    sentence = "The quick brown fox jumps over the lazy dog, " * 5 + "and then it sleeps."
    pcm = [item async for item in voice.synthesize(sentence) if isinstance(item, bytes)]
    frames = sum(map(len, pcm)) // FRAME_BYTES  # the same text gives the same audio
    del pcm
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        playout = Playout(voice, codec, lambda event: None)
        playout.enqueue(sentence)
        for _ in range(1200):  # up to a minute, however slowly this machine encodes
            if playout._synthesis.buffered >= frames:
                break
            await asyncio.sleep(0.05)
        assert playout._synthesis.buffered >= frames > 600  # ~15 s encoded ahead (nothing played)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await playout.close()
        await voice.close()
        thread.stop()
    # The packets (~60 KB) and the encoder (eSpeak takes nothing back): not 0.65 MB, or twice it.
    assert held - before < 250_000


class CountingCodec(OpusCodec):
    """The real codec, counting the frames it is asked to encode."""

    def __init__(self, thread: EncodingThread) -> None:
        super().__init__(OpusSettings(), thread)
        self.encoded = 0

    async def encode(
        self, stream: FrameEncoder, frames: Sequence[bytes], urgent: bool = False
    ) -> list[bytes]:
        self.encoded += len(frames)
        return await super().encode(stream, frames, urgent)


async def test_for_a_listener_taking_pcm_nothing_is_encoded_and_less_is_kept_ahead() -> None:
    thread = EncodingThread()
    codec = CountingCodec(thread)
    playout = Playout(ToneProvider(), codec, lambda _e: None, pcm_lookahead_frames=50)
    try:
        playout.keep_pcm(True)
        playout.enqueue("440hz 10s")
        await asyncio.sleep(0.5)  # synthesis runs ahead as far as it may
        assert 50 <= playout._synthesis.buffered < 100  # 1 s of PCM ahead, not the 5 s kept encoded
        frames = await play_all(playout)
    finally:
        await playout.close()
        thread.stop()
    assert codec.encoded == 0
    assert all(isinstance(f.packet, PcmFrame) for f in frames)
    # Hundreds of listeners hold a second of these each: the garbage collector must not walk
    # them (a bytes subclass it would, 4-40 ms a collection at 400 listeners).
    assert not any(gc.is_tracked(f.packet) for f in frames)
    pcm = await tone_pcm("440hz 10s")
    heard = b"".join(f.packet for f in frames)
    assert heard[: len(pcm)] == pcm  # the frames as synthesized, exactly
    # As many frames as when encoded: frame numbers hold whichever way a playout keeps them.
    assert len(frames) == -(-(len(pcm) + codec.delay_samples * 2) // FRAME_BYTES)


async def test_moving_away_from_pcm_mid_utterance_encodes_on_from_there_without_a_gap() -> None:
    thread = EncodingThread()
    codec = CountingCodec(thread)
    playout = Playout(ToneProvider(), codec, lambda _e: None, pcm_lookahead_frames=50)
    catch_up, decoder = CatchUpEncoder(codec.new_stream), FrameDecoder()
    try:
        playout.keep_pcm(True)
        playout.enqueue("440hz 6s")
        await asyncio.sleep(0.2)
        first = [playout.next_frame() for _ in range(20)]
        playout.keep_pcm(False)  # the listener moved to WebRTC
        frames = [f for f in first if f] + await play_all(playout, pause_s=0.001)
    finally:
        await playout.close()
        thread.stop()
    kept = sum(isinstance(f.packet, PcmFrame) for f in frames)
    assert 50 <= kept < 100  # what was ahead as PCM; the rest encoded by the playout
    assert codec.encoded == len(frames) - kept + 1  # and one frame before, to warm it up
    heard = np.frombuffer(
        b"".join(decoder.decode(catch_up.packet(f.packet)) for f in frames), "<i2"
    )
    # The tone throughout, in 5 ms windows: no gap where the encoders took over from each other.
    speech = heard[FRAME_BYTES : (6 * 22050) - 441].astype(float)
    windows = speech[: len(speech) // 110 * 110].reshape(-1, 110)
    levels = np.sqrt((windows**2).mean(axis=1))
    assert levels.min() > 0.6 * np.median(levels), np.argmin(levels) * 110 / 22050
