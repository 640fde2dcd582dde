"""The Python client through a real nginx (Debian's, running deploy/nginx/voice-rtc.conf) in
front of two real server processes: signaling, WebSocket audio and the probes pass through it,
and when the process serving a client dies, the client's reconnection goes through nginx to
the other one. The agent channel passes through it too, and nginx sets the headers the server
relies on."""

import asyncio
import signal

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import RunningServer, StartServer, free_port
from tests.listener import Listener
from tests.nginx import Nginx, StartNginx
from tests.nginx import start_nginx_fixture as start_nginx_fixture  # the start_nginx fixture
from tests.signal_analysis import dominant_frequency, voiced_span
from voice_rtc.agent import Agent, create_session
from voice_rtc.audio import SAMPLE_RATE


def tone_of(pcm: bytes | bytearray) -> float:
    """The frequency of the loud part of a recording."""
    start, end = voiced_span(pcm)
    assert end - start > 0.5, (start, end)
    return dominant_frequency(pcm[int(start * SAMPLE_RATE) * 2 : int(end * SAMPLE_RATE) * 2])


async def played(client: Listener, since: int, seconds: float, timeout: float = 8.0) -> bytes:
    """What the client played after byte `since`, once that holds `seconds` of sound."""
    for _ in range(int(timeout / 0.05)):
        pcm = bytes(client.recording.pcm[since:])
        start, end = voiced_span(pcm)
        if end - start >= seconds:
            return pcm
        await asyncio.sleep(0.05)
    raise AssertionError(f"played {end - start:.2f} s of sound, not {seconds} s")


async def two_servers_behind_nginx(
    start_server: StartServer, start_nginx: StartNginx
) -> tuple[list[RunningServer], Nginx]:
    servers = [await start_server(trust_x_forwarded_for="true") for _ in range(2)]
    return servers, await start_nginx([server.url for server in servers])


def address(server: RunningServer) -> str:
    return server.url.split("//")[1].rstrip("/")


async def sessions_on(http: aiohttp.ClientSession, server: RunningServer) -> int:
    async with http.get(server.url + "health") as response:
        return int((await response.json())["sessions"])


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
async def test_signaling_audio_and_probes_pass_through_nginx(
    start_server: StartServer,
    start_nginx: StartNginx,
    http: aiohttp.ClientSession,
    transport: str,
) -> None:
    servers, nginx = await two_servers_behind_nginx(start_server, start_nginx)
    async with Listener(nginx.url, transport=transport) as client:
        assert (await client.say("660hz 1s"))["reason"] == "done"
        assert await client.ping() > 0
    assert abs(tone_of(client.recording.pcm) - 660) < 3
    for probe in ("health", "ready"):
        async with http.get(nginx.url + probe) as response:
            assert response.status == 200, probe
            assert (await response.json())["status"] in ("ok", "ready")
    # Every request went to one of the two servers.
    addresses = {address(server) for server in servers}
    await nginx.logged("/ws", 1)
    served = {upstream for _uri, _status, upstream in nginx.access_log()}
    assert served <= addresses, served


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
async def test_after_kill_9_the_client_reconnects_through_nginx_to_the_other_process(
    start_server: StartServer,
    start_nginx: StartNginx,
    http: aiohttp.ClientSession,
    transport: str,
) -> None:
    servers, nginx = await two_servers_behind_nginx(start_server, start_nginx)
    async with Listener(nginx.url, transport=transport) as client:
        assert (await client.say("440hz 0.6s"))["reason"] == "done"
        first_session = client.welcome["session_id"]
        counts = [await sessions_on(http, server) for server in servers]
        assert sorted(counts) == [0, 1], counts
        serving, other = servers if counts[0] else servers[::-1]

        serving.process.send_signal(signal.SIGKILL)
        await serving.process.wait()
        await client.wait_for_state("reconnecting", timeout=10)
        await client.wait_until_up(timeout=30)

        # Sessions live in one process today: the resume found nothing (SESSION_NOT_FOUND)
        # and the client started a new session, on the other process, which plays.
        assert client.welcome["session_id"] != first_session and not client.welcome["resumed"]
        assert await sessions_on(http, other) == 1
        assert "SESSION_NOT_FOUND" in [error["code"] for error in client.errors]
        heard_before = len(client.recording.pcm)
        await client.speak("880hz 1s")
        # Heard, not just sent (the listener's events still hold the lost session's, whose
        # utterance ids the new session uses again).
        heard = await played(client, since=heard_before, seconds=0.95)
    assert abs(tone_of(heard) - 880) < 3
    # nginx's own record: the first signaling connection was carried by the process that
    # died, the second by the other (after trying the dead one, if it did).
    sockets = await nginx.logged("/ws", 2)
    assert sockets[0] == address(serving), sockets
    assert sockets[-1].split(", ")[-1] == address(other), sockets


async def test_an_agent_drives_a_session_through_nginx(
    start_server: StartServer, start_nginx: StartNginx, http: aiohttp.ClientSession
) -> None:
    """The agent channel (/agent) upgrades through nginx like signaling: a session made through
    it, a listener and an agent on it, the agent's speech heard. (One server behind nginx:
    today a session lives in one process, so listener and agent must reach the same one.)"""
    server = await start_server(trust_x_forwarded_for="true")
    nginx = await start_nginx([server.url])
    async with http.get(nginx.url + "api/dev-token", params={"role": "service"}) as response:
        service = str((await response.json())["token"])
    grant = await create_session(nginx.url, service, "alice", http)
    async with (
        Listener(nginx.url, token=grant.listener_token, transport="websocket") as listener,
        Agent(nginx.url, None, grant.agent_token) as agent,
    ):
        events = agent.events()
        utterance = await agent.speak("550hz 1s")
        async with asyncio.timeout(30):
            async for event in events:
                if event["type"] == "utterance_heard" and event["utterance_id"] == utterance:
                    break
    assert abs(tone_of(listener.recording.pcm) - 550) < 3
    await nginx.logged("/agent", 1)
    assert ("/agent", "101") in {(u.split("?")[0], status) for u, status, _ in nginx.access_log()}


async def test_nginx_sets_the_client_address_and_keeps_the_host(
    start_nginx: StartNginx, http: aiohttp.ClientSession
) -> None:
    """What the server relies on: X-Forwarded-For is the address nginx saw, whatever the client
    claims (the server trusts its first entry), and Host keeps its port (Origin checks)."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(dict(request.headers))

    app = web.Application()
    app.router.add_get("/{path:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        nginx = await start_nginx([f"http://127.0.0.1:{port}/"])
        spoofed = {"X-Forwarded-For": "203.0.113.9"}
        async with http.get(nginx.url + "api/errors", headers=spoofed) as response:
            seen = await response.json()
        assert seen["X-Forwarded-For"] == "127.0.0.1"
        assert seen["Host"] == nginx.url.split("//")[1].rstrip("/")
        async with http.get(nginx.url + "metrics") as response:
            assert response.status == 404  # per replica, never on the public side
    finally:
        await runner.cleanup()
