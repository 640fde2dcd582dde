"""The Python client as an app uses it, against a real server: its states and events as the
browser library's, the intended transport and the degraded state, the server's insistence on a
transport, refusals, a session taken over elsewhere, a sink of the app's own, and the command
line the README shows."""

import asyncio
import subprocess
import sys
import wave
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import REPO, RunningServer, StartServer, dev_token
from tests.listener import Listener
from tests.signal_analysis import voiced_span
from voice_rtc.client import (
    PlayedFrame,
    ServerError,
    StateDetail,
    TransportEvent,
    UtteranceEvent,
    VoiceClient,
)


async def test_states_and_events_read_as_the_browsers(server: RunningServer) -> None:
    client = VoiceClient(server.url, transport="websocket")
    states: list[StateDetail] = []
    transports: list[TransportEvent] = []
    utterances: list[UtteranceEvent] = []
    client.on("state", states.append)
    client.on("transport", transports.append)
    client.on("utterance", utterances.append)
    assert client.state == "new" and client.transport is None
    await client.connect()
    assert client.state_detail == StateDetail("connected", transport="websocket")
    assert client.session_id == client.welcome["session_id"]
    utterance = await client.speak("0.2s")
    for _ in range(100):
        if len(utterances) == 2:
            break
        await asyncio.sleep(0.05)
    await client.close()
    assert states == [
        StateDetail("connecting"),
        StateDetail("connected", transport="websocket"),
        StateDetail("closed"),
    ]
    assert transports == [TransportEvent("websocket", "forced")]  # as the browser's, forced
    assert [(u["type"], u["utterance_id"]) for u in utterances] == [
        ("utterance_started", utterance),
        ("utterance_ended", utterance),
    ]
    assert utterances[1]["reason"] == "done" and utterances[1]["text"] == "0.2s"


async def test_off_the_intended_transport_the_client_is_degraded_and_back_on_it_connected(
    server: RunningServer,
) -> None:
    async with Listener(server.url) as client:
        assert client.state_detail == StateDetail("connected", transport="webrtc")
        await client.switch_transport("websocket", reason="packet_loss")
        assert client.state_detail == StateDetail("degraded", transport="websocket")
        assert (await client.say("0.3s"))["reason"] == "done"
        await client.switch_transport("webrtc")
        assert client.state_detail == StateDetail("connected", transport="webrtc")
        assert (await client.say("0.3s"))["reason"] == "done"
    assert client.transports == [
        TransportEvent("webrtc"),
        TransportEvent("websocket", "packet_loss"),
        TransportEvent("webrtc"),
    ]
    assert client.state_names == ["connecting", "connected", "degraded", "connected", "closed"]


async def test_a_server_that_streams_only_over_websocket_is_followed(
    start_server: StartServer,
) -> None:
    server = await start_server(transport="websocket")
    async with Listener(server.url) as client:  # made for WebRTC
        assert client.state_detail == StateDetail("connected", transport="websocket")
        assert (await client.say("0.3s"))["reason"] == "done"
    assert len(client.recording.frame_ids) == 16  # 0.3 s, then the codec's tail


async def test_a_refused_connection_leaves_the_client_failed_with_the_servers_reason(
    start_server: StartServer,
) -> None:
    server = await start_server(max_sessions=1)
    async with VoiceClient(server.url):
        refused = VoiceClient(server.url)
        states: list[StateDetail] = []
        refused.on("state", states.append)
        with pytest.raises(ServerError) as error:
            await refused.connect()
    assert error.value.code == "SERVER_BUSY"
    assert [s.state for s in states] == ["connecting", "failed"]
    assert refused.state_detail.error is error.value
    await refused.close()  # after failed, as after anything
    assert refused.state == "closed"


async def test_a_session_resumed_by_another_connection_closes_this_one_for_good(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with Listener(server.url, transport="websocket") as client:
        token = await dev_token(http, server, user=client.user_id)
        async with http.ws_connect(server.ws_url) as other:
            resume = client.welcome["resume_token"]
            await other.send_json({"type": "hello", "version": 1, "token": token, "resume": resume})
            assert (await other.receive_json())["resumed"]
            closed = await client.wait_for_state("closed", timeout=10)
    assert isinstance(closed.error, ConnectionError) and "another connection" in str(closed.error)
    assert "reconnecting" not in client.state_names  # 4001: it must not take it back


class Frames:
    def __init__(self) -> None:
        self.played: list[PlayedFrame] = []

    def play(self, frame: PlayedFrame) -> None:
        self.played.append(frame)


async def test_a_sink_of_the_apps_own_gets_every_frame_played(server: RunningServer) -> None:
    sink = Frames()
    async with Listener(server.url, transport="websocket", codec="opus", sink=sink) as client:
        ended = await client.say("0.4s", tail=0.2)
    assert [frame.frame_id[2] for frame in sink.played if frame.frame_id] == list(range(21))
    assert ended["frames"] == 21  # 0.4 s, then the codec's tail
    assert all(len(frame.pcm) == 882 for frame in sink.played)
    with pytest.raises(AttributeError):
        client.recording  # noqa: B018 (it plays into the app's sink, and keeps nothing)


def test_the_command_line_records_what_it_heard(server: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    command = [sys.executable, "-m", "voice_rtc.client", "--url", server.url]
    command += ["--text", "660hz 1s", "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert " done: " in done.stdout and str(out) in done.stdout
    with wave.open(str(out)) as recorded:
        assert (recorded.getframerate(), recorded.getnchannels()) == (22050, 1)
        pcm = recorded.readframes(recorded.getnframes())
    start, end = voiced_span(pcm)
    assert abs((end - start) - 1.0) < 0.05


def test_the_command_line_says_why_it_could_not_connect(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "voice_rtc.client", "--url", "http://127.0.0.1:9"]
    command += ["--text", "hello", "--out", str(tmp_path / "never.wav")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "voice_rtc.client:" in done.stderr
    assert "Traceback" not in done.stderr
