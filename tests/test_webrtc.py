"""Speech over WebRTC, end to end: the Python client (aiortc) against a real server on loopback."""

import asyncio
import fractions

import av
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpHeaderExtensionParameters,
    RTCSessionDescription,
    codecs,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from tests.conftest import RunningServer, StartServer
from tests.listener import Listener, spy_on_rtp
from tests.signal_analysis import dominant_frequency, rms, voiced_span
from tests.test_clock import FakeClock, SteppingClock, until_frame
from tests.test_opus import tone_frames
from voice_rtc.audio import SAMPLE_RATE
from voice_rtc.clock import Ticker
from voice_rtc.opus import (
    FrameDecoder,
    OpusFrameEncoder,
    OpusSettings,
    PassthroughCodec,
    PcmFrame,
    silent_packet,
)
from voice_rtc.playout import Frame
from voice_rtc.transports.rtp import MID_EXTENSION
from voice_rtc.transports.sdp import OPUS_FMTP, without_mdns_candidates
from voice_rtc.transports.webrtc import (
    PacketTrack,
    SentFrames,
    Silence,
    WebRTCOptions,
    WebRTCPeer,
    use_host_addresses,
)


class ListSource:
    """Frames to play; never idle (a track on it stays on the clock) unless `idles`."""

    def __init__(self, frames: list[Frame | None], idles: bool = False) -> None:
        self.frames = frames
        self.idles = idles

    def next_frame(self) -> Frame | None:
        return self.frames.pop(0) if self.frames else None

    @property
    def idle(self) -> bool:
        return self.idles and not self.frames


def speech(seq: int) -> Frame:
    return Frame(seq, 1, seq, bytes([seq + 1]) * 40)


SILENT = b"\xf8\xff\xfe"


def real_options(silence: Silence = Silence.DTX) -> WebRTCOptions:
    """What a server's peers get: no ICE servers, the real codec's silence and encoder."""
    return WebRTCOptions(
        RTCConfiguration(iceServers=[]),
        16384,
        silent_packet(OpusSettings()),
        silence,
        lambda: OpusFrameEncoder(OpusSettings()),
    )


NEW_STREAM = PassthroughCodec().new_stream  # speech(n) is a packet already: never used


async def test_track_hands_aiortc_one_packet_per_slot_stamped_with_the_slot() -> None:
    ticker = Ticker(FakeClock())
    track = PacketTrack(
        ListSource([speech(0), speech(1), None]), ticker, SILENT, Silence.PACKET, NEW_STREAM
    )
    first = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    assert len(ticker) == 1  # aiortc asked: the track joined the clock
    assert not first.done()  # nothing before the clock's slot
    for _ in range(3):
        track.on_tick()
    packets = [await first, await track.recv(), await track.recv()]
    assert [bytes(p) for p in packets] == [speech(0).packet, speech(1).packet, SILENT]
    assert [p.pts for p in packets] == [0, 960, 1920]  # slot n: pts 960 n, in RTP ticks
    assert all(p.time_base == fractions.Fraction(1, 48000) for p in packets)
    track.stop()
    assert len(ticker) == 0
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_frames_kept_as_pcm_reach_the_listener_encoded_by_the_track() -> None:
    """A listener moving from PCM over WebSocket to WebRTC still has PCM frames ahead: the
    track encodes them, on a stream of its own, into packets that decode to the same tone."""
    tone = await tone_frames("440hz 1s")
    frames = [Frame(i, 1, i, PcmFrame(pcm)) for i, pcm in enumerate(tone)]
    ticker = Ticker(FakeClock())
    new_stream = lambda: OpusFrameEncoder(OpusSettings())  # noqa: E731
    track = PacketTrack(ListSource(list(frames)), ticker, SILENT, Silence.PACKET, new_stream)
    decoder = FrameDecoder()
    heard = b""
    for _ in frames:
        track.on_tick()
        packet = bytes(await track.recv())
        assert len(packet) < 200  # an Opus packet, not the 882 bytes of PCM
        heard += decoder.decode(packet)
    track.stop()
    assert abs(dominant_frequency(heard[4410:]) - 440) < 3
    assert rms(heard[4410:]) > 0.7 * rms(b"".join(tone))


async def test_with_dtx_a_silent_track_sends_next_to_nothing() -> None:
    ticker = Ticker(FakeClock())
    track = PacketTrack(ListSource([speech(0)]), ticker, SILENT, Silence.DTX, NEW_STREAM)
    sent = []
    for _ in range(101):
        track.on_tick()
        while track._due:
            sent.append(await track.recv())
    # Speech, five silent packets to end it cleanly, then a DTX packet every 400 ms.
    assert [p.pts // 960 for p in sent] == [0, 1, 2, 3, 4, 5, 6, 26, 46, 66, 86]
    assert [bytes(p) for p in sent[1:6]] == [SILENT] * 5
    assert {bytes(p) for p in sent[6:]} == {bytes([SILENT[0] & 0xFC])}  # one byte: DTX
    track.stop()


class CountingTrack(PacketTrack):
    ticks = 0

    def on_tick(self) -> None:
        self.ticks += 1
        super().on_tick()


async def test_an_idle_track_sleeps_between_dtx_packets_and_wakes_for_speech_on_time() -> None:
    ticker = Ticker(SteppingClock(0))
    source = ListSource([speech(0)], idles=True)
    track = CountingTrack(source, ticker, SILENT, Silence.DTX, NEW_STREAM)
    sent: list[av.Packet] = []
    twelve_sent = asyncio.Event()

    async def take() -> None:
        while True:
            sent.append(await track.recv())
            if len(sent) == 12:
                twelve_sent.set()

    taking = asyncio.create_task(take())
    await asyncio.sleep(0)  # aiortc asks: the track joins the clock
    ticker.start()
    await until_frame(ticker, 100)
    # The same packets as a track ticked every 20 ms sends, stamped with the same slots...
    assert [p.pts // 960 for p in sent] == [0, 1, 2, 3, 4, 5, 6, 26, 46, 66, 86]
    assert track.ticks == 11  # ...ticked only for the packets it sends: asleep in between
    source.frames.append(speech(1))  # speech is queued: the session wakes its transport
    woken_in = ticker.frame
    track.wake()
    async with asyncio.timeout(10):
        await twelve_sent.wait()
    taking.cancel()
    track.stop()
    await ticker.stop()
    assert bytes(sent[11]) == speech(1).packet
    assert sent[11].pts // 960 in (woken_in, woken_in + 1)  # at once, in the slot it is due


def test_a_played_rtp_timestamp_names_the_frame_sent_in_its_slot() -> None:
    sent = SentFrames()
    for slot, seq in [(3, 0), (4, 1), (5, 2), (9, 3), (10, 4), (11, 10), (12, 11)]:
        sent.add(slot, seq)
    assert sent.last_seq_at(2) is None  # before any speech
    assert [sent.last_seq_at(slot) for slot in range(3, 14)] == [0, 1, 2, 2, 2, 2, 3, 4, 10, 11, 11]


async def test_tone_arrives_at_its_frequency_and_duration(server: RunningServer) -> None:
    async with Listener(server.url) as client:
        ended = await client.say("660hz 3s")
        assert ended["reason"] == "done"
        assert ended["frames"] == 151  # 3 s of tone, then 7 ms for the codec's look-ahead
    start, end = voiced_span(client.recording.pcm)
    assert abs((end - start) - 3.0) <= 0.05 * 3.0
    tone = client.recording.pcm[int(start * SAMPLE_RATE) * 2 : int(end * SAMPLE_RATE) * 2]
    assert abs(dominant_frequency(tone) - 660) < 3


async def test_espeak_speaks_a_sentence(start_server: StartServer) -> None:
    server = await start_server(tts="espeak")
    async with Listener(server.url) as client:
        await client.say("The quick brown fox jumps over the lazy dog.")
    start, end = voiced_span(client.recording.pcm, threshold=500)
    speech = client.recording.pcm[int(start * SAMPLE_RATE) * 2 : int(end * SAMPLE_RATE) * 2]
    assert 1.5 < end - start < 5.0, f"{end - start:.2f} s is not a plausible length"
    assert rms(speech) > 500  # speech energy, not silence or noise
    assert 80 < dominant_frequency(speech) < 4000  # in the voice band


async def test_utterances_play_in_order(server: RunningServer) -> None:
    async with Listener(server.url) as client:
        first = await client.speak("440hz 0.5s")
        second = await client.speak("880hz 0.5s")
        await client.wait_for_event("utterance_ended", second)
        order = [(e["type"], e["utterance_id"]) for e in client.events]
        assert order == [
            ("utterance_started", first),
            ("utterance_ended", first),
            ("utterance_started", second),
            ("utterance_ended", second),
        ]


async def test_a_stretch_of_speech_is_synced_before_its_utterance_is_said_to_start(
    server: RunningServer,
) -> None:
    """Captions over WebRTC map the RTP timestamp playing to a frame through `sync`. Told that
    an utterance started before its stretch's sync, a listener maps the silence before it with
    the previous stretch's sync into the utterance's first words, and tells them at once."""
    async with Listener(server.url) as client:
        for tone in ("440hz 0.3s", "660hz 0.3s", "880hz 0.3s"):
            utterance = await client.speak(tone)
            await client.wait_for_event("utterance_ended", utterance)
            await asyncio.sleep(0.3)  # silence: the next utterance is a stretch of its own
        kinds = [(m["type"], m.get("utterance_id")) for m in client.messages]
    starts = [u for kind, u in kinds if kind == "utterance_started"]
    assert len(starts) == 3, kinds
    for utterance in starts[1:]:  # the first stretch's sync waits for aiortc's RTP origin
        assert ("sync", utterance) in kinds, kinds
        assert kinds.index(("sync", utterance)) < kinds.index(("utterance_started", utterance))


async def test_the_answer_refuses_the_listeners_microphone_and_says_what_our_opus_is() -> None:
    use_host_addresses(["127.0.0.1"])
    options = real_options()
    ticker = Ticker()
    ticker.start()
    server_peer = WebRTCPeer(ListSource([]), ticker, options)
    listener = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    listener.addTrack(AudioStreamTrack())  # a microphone the server never asked for
    try:
        await listener.setLocalDescription(await listener.createOffer())
        answer = await server_peer.answer(listener.localDescription.sdp)
        assert "a=sendonly" in answer  # so the listener sends no audio for us to decode
        assert f"opus/48000/2\r\na=fmtp:96 {OPUS_FMTP}\r\n" in answer
        await listener.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.sleep(1.0)
        assert listener.connectionState == "connected"
        stats = await listener.getStats()
        assert not any(s.type == "outbound-rtp" and s.packetsSent for s in stats.values())
    finally:
        await listener.close()
        await server_peer.close()
        await ticker.stop()
    assert server_peer.track.readyState == "ended"


async def test_packets_carry_no_mid_extension_and_reach_the_listener_by_their_ssrc(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MID header extension would be 8 bytes of every packet: the answer leaves it out, and
    the listener (which offered it) routes the packets by the SSRC the answer names."""
    # The listener offers MID, as browsers do, even where a server made in this process before
    # had aiortc leave it out (send_no_mid is process-wide).
    mid = RTCRtpHeaderExtensionParameters(id=1, uri=MID_EXTENSION)
    others = [e for e in codecs.HEADER_EXTENSIONS["audio"] if e.uri != MID_EXTENSION]
    monkeypatch.setitem(codecs.HEADER_EXTENSIONS, "audio", [mid, *others])
    async with Listener(server.url) as client:
        assert client.pc is not None
        received = spy_on_rtp(client.pc.getTransceivers()[0].receiver)
        await client.say("440hz 1s")
        offer, answer = client.pc.localDescription.sdp, client.pc.remoteDescription.sdp
    assert MID_EXTENSION in offer
    assert MID_EXTENSION not in answer and "a=ssrc:" in answer
    assert len(received) > 50
    assert all(packet.extensions.mid is None for _, packet in received)
    pcm = client.recording.pcm
    assert abs(dominant_frequency(pcm) - 440) <= 3


def test_browser_mdns_candidates_are_dropped_from_offers() -> None:
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2113937151 5f1c7a3e-1d2b-4c5d-9e8f-0a1b2c3d4e5f.local 54321 typ host"
        " generation 0 network-cost 999\r\n"
        "a=candidate:2 1 udp 2113939711 127.0.0.1 40000 typ host generation 0\r\n"
        "a=candidate:3 1 udp 1677729535 203.0.113.7 40001 typ srflx raddr 0.0.0.0 rport 0\r\n"
    )
    kept = without_mdns_candidates(sdp)
    assert ".local" not in kept
    assert "127.0.0.1 40000 typ host" in kept and "203.0.113.7 40001 typ srflx" in kept
