"""Speech over WebRTC, end to end: the Python client (aiortc) against a real server on loopback."""

import asyncio
import fractions

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from tests.conftest import RunningServer, StartServer
from tests.signal_analysis import dominant_frequency, rms, voiced_span
from tests.test_clock import FakeClock
from voice_rtc.audio import FRAME_BYTES, SAMPLE_RATE
from voice_rtc.client import VoiceClient
from voice_rtc.playout import Frame
from voice_rtc.transports.webrtc import (
    PlayoutTrack,
    WebRTCPeer,
    use_host_addresses,
    without_mdns_candidates,
)


class ListSource:
    def __init__(self, frames: list[Frame | None]) -> None:
        self.frames = frames

    def next_frame(self) -> Frame | None:
        return self.frames.pop(0) if self.frames else None


async def test_track_returns_22050hz_mono_s16_frames_with_running_pts_and_silence() -> None:
    speech = Frame(0, 1, 0, bytes([1, 2]) * (FRAME_BYTES // 2))
    track = PlayoutTrack(ListSource([speech, None]), FakeClock())
    first, second = await track.recv(), await track.recv()
    for frame in (first, second):
        assert (frame.format.name, frame.layout.name) == ("s16", "mono")
        assert (frame.sample_rate, frame.samples) == (SAMPLE_RATE, 441)
        assert frame.time_base == fractions.Fraction(1, 22050)
    assert (first.pts, second.pts) == (0, 441)
    assert bytes(first.planes[0])[:FRAME_BYTES] == speech.pcm
    assert bytes(second.planes[0])[:FRAME_BYTES] == bytes(FRAME_BYTES)  # nothing queued: silence
    track.stop()
    try:
        await track.recv()
    except MediaStreamError:
        pass
    else:
        raise AssertionError("a stopped track must end the stream")


async def test_tone_arrives_at_its_frequency_and_duration(server: RunningServer) -> None:
    async with VoiceClient(server.url) as client:
        ended = await client.say("660hz 3s")
        assert ended["reason"] == "done"
        assert ended["frames"] == 150
    start, end = voiced_span(client.recording.pcm)
    assert abs((end - start) - 3.0) <= 0.05 * 3.0
    tone = client.recording.pcm[int(start * SAMPLE_RATE) * 2 : int(end * SAMPLE_RATE) * 2]
    assert abs(dominant_frequency(tone) - 660) < 3


async def test_espeak_speaks_a_sentence(start_server: StartServer) -> None:
    server = await start_server(tts="espeak")
    async with VoiceClient(server.url) as client:
        await client.say("The quick brown fox jumps over the lazy dog.")
    start, end = voiced_span(client.recording.pcm, threshold=500)
    speech = client.recording.pcm[int(start * SAMPLE_RATE) * 2 : int(end * SAMPLE_RATE) * 2]
    assert 1.5 < end - start < 5.0, f"{end - start:.2f} s is not a plausible length"
    assert rms(speech) > 500  # speech energy, not silence or noise
    assert 80 < dominant_frequency(speech) < 4000  # in the voice band


async def test_utterances_play_in_order(server: RunningServer) -> None:
    async with VoiceClient(server.url) as client:
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


async def test_audio_the_listener_sends_is_drained_not_buffered() -> None:
    use_host_addresses(["127.0.0.1"])
    server_peer = WebRTCPeer(ListSource([]), RTCConfiguration(iceServers=[]), 16384)
    listener = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    listener.addTrack(AudioStreamTrack())  # a microphone the server never asked for
    try:
        await listener.setLocalDescription(await listener.createOffer())
        answer = await server_peer.answer(listener.localDescription.sdp)
        await listener.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.sleep(1.5)  # ~75 inbound frames arrive
        inbound = server_peer._pc.getReceivers()[0].track
        # aiortc queues every received frame until someone reads it; unread, this would grow.
        assert inbound._queue.qsize() < 5
    finally:
        await listener.close()
        await server_peer.close()
    assert server_peer.track.readyState == "ended"


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
