"""Idle streams sleep off the process's clock and are woken for speech: a WebSocket stream
against a fake clock and socket, and a session waking its transport. (A WebRTC track's sleep
is in test_webrtc.)"""

import asyncio

from tests.test_clock import SteppingClock, until_frame
from tests.test_webrtc import NEW_STREAM, ListSource, speech
from voice_rtc.clock import Ticker
from voice_rtc.opus import PassthroughCodec
from voice_rtc.playout import Playout
from voice_rtc.session import PlayedPosition, Session
from voice_rtc.transports.websocket import Codec, Sink, WebSocketAudio, unpack
from voice_rtc.tts.tone import ToneProvider


class CountingAudio(WebSocketAudio):
    ticks = 0

    def on_tick(self) -> None:
        self.ticks += 1
        super().on_tick()


async def test_an_idle_stream_sleeps_off_the_clock_and_is_woken_for_speech_at_once() -> None:
    ticker = Ticker(SteppingClock(0))
    source = ListSource([speech(0)], idles=True)
    written: list[tuple[int, bytes]] = []  # the clock's frame, the message
    two_written = asyncio.Event()

    def write(message: bytes) -> None:
        written.append((ticker.frame, message))
        if len(written) == 2:
            two_written.set()

    sink = Sink(write, lambda: 0)
    audio = CountingAudio(source, sink, Codec.OPUS, ticker, NEW_STREAM)
    audio.start()
    ticker.start()
    await until_frame(ticker, 120)
    assert [unpack(m).seq for _, m in written] == [0]
    assert audio.ticks <= 4  # the speech, then a look every second: asleep in between
    source.frames.append(speech(1))  # speech is queued: the session wakes its transport
    woken_in = ticker.frame
    audio.wake()
    async with asyncio.timeout(10):
        await two_written.wait()
    await audio.close()
    await ticker.stop()
    frame, message = written[1]
    assert unpack(message).seq == 1 and frame in (woken_in, woken_in + 1)


class SleepyTransport:
    """An audio transport that only notes when it is woken."""

    kind = "websocket"
    plays_pcm = True

    def __init__(self) -> None:
        self.woken = 0

    def start(self) -> None:
        pass

    def played_seq(self, position: PlayedPosition) -> int | None:
        return None

    def wake(self) -> None:
        self.woken += 1

    async def close(self) -> None:
        pass


async def test_queuing_speech_wakes_the_sessions_transport() -> None:
    async def expired(_session: Session, _reason: str) -> None:
        pass

    session = Session(
        "s1", "u1", lambda on_event: Playout(ToneProvider(), PassthroughCodec(), on_event), expired
    )
    transport = SleepyTransport()
    await session.set_audio(transport)
    assert session.idle and transport.woken == 0
    session.playout.enqueue("0.1s")
    assert not session.idle and transport.woken == 1
    await session.close()
