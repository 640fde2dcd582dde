"""TURN: the server hands out time-limited credentials for coturn, and listeners who can only
reach the media server through the relay hear it; coturn (started from turn/coturn.conf, see
tests/coturn.py) refuses expired and forged credentials and relaying into internal networks."""

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioice.stun import TransactionFailed
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from playwright.async_api import Page

from tests.browser import chromium as launch_chromium
from tests.browser import echo_console, poll
from tests.conftest import RunningServer, StartServer
from tests.coturn import Coturn, running_coturn, turn_allocation
from tests.listener import Listener
from tests.signal_analysis import dominant_frequency, voiced_span
from tests.tokens import JWT_ENV, app_token
from voice_rtc.client import VoiceClient
from voice_rtc.transports.webrtc import use_host_addresses
from voice_rtc.turn import turn_credentials

pytestmark = pytest.mark.timeout(60)

TTL_S = 900
USER = "listener-42"


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    async with running_coturn(tmp_path / "coturn") as server:
        yield server
        # pytest shows this with a failing test only: what coturn made of it.
        print(server.log_tail(80))


async def start_with_turn(
    start_server: StartServer, coturn: Coturn, authenticated: bool = True
) -> RunningServer:
    """The media server handing out credentials for `coturn`; with `authenticated`, users
    present app tokens (otherwise dev mode: the server mints its own for loopback pages)."""
    env = {"VOICE_RTC_TURN_SECRET": coturn.secret}
    if authenticated:
        env.update(JWT_ENV)
    return await start_server(env=env, turn_urls=coturn.url, turn_ttl_s=TTL_S)


def turn_entry(welcome: dict[str, Any]) -> dict[str, Any]:
    servers: list[dict[str, Any]] = welcome["ice_servers"]
    entries = [
        server
        for server in servers
        if any(url.startswith(("turn:", "turns:")) for url in _urls(server))
    ]
    assert len(entries) == 1, servers
    return entries[0]


def _urls(server: dict[str, Any]) -> list[str]:
    urls = server["urls"]
    return [urls] if isinstance(urls, str) else list(urls)


def relay_candidates(sdp: str) -> list[str]:
    return [
        line for line in sdp.splitlines() if line.startswith("a=candidate") and " relay" in line
    ]


async def test_welcome_hands_out_working_time_limited_credentials(
    start_server: StartServer, coturn: Coturn
) -> None:
    server = await start_with_turn(start_server, coturn)
    before = time.time()
    async with VoiceClient(server.url, transport="websocket", token=app_token(USER)) as client:
        welcome = client.welcome
    after = time.time()

    entry = turn_entry(welcome)
    assert _urls(entry) == [coturn.url], entry
    expiry, _, user = entry["username"].partition(":")
    assert user == USER, f"the user part names the token's user: {entry['username']!r}"
    assert before + TTL_S - 1 <= int(expiry) <= after + TTL_S + 1, (
        f"expiry {expiry} is not now + {TTL_S} s ({before:.0f}..{after:.0f})"
    )

    # coturn accepts them: an allocation, on a relay port of this coturn, logged for this user.
    async with turn_allocation(coturn.port, entry["username"], entry["credential"]) as turn:
        assert turn.relayed_address is not None
        assert turn.relayed_address[1] in coturn.relay_ports, (
            turn.relayed_address,
            coturn.log_tail(),
        )
    assert f"username=<{entry['username']}>, lifetime=" in coturn.log(), coturn.log_tail()


async def test_relay_only_client_hears_the_tone_through_coturn(
    start_server: StartServer, coturn: Coturn
) -> None:
    server = await start_with_turn(start_server, coturn)
    client = Listener(server.url, relay_only=True, token=app_token(USER))
    try:
        try:
            await client.connect()
        except TimeoutError:
            pytest.fail(f"no connection through the relay in 10 s\n{coturn.log_tail()}")
        username = turn_entry(client.welcome)["username"]
        pc = client.pc
        assert pc is not None
        offered = [line for line in pc.localDescription.sdp.splitlines() if "a=candidate" in line]
        await client.say("440hz 2s")
        # The pair ICE selected: our end is a relayed address on one of coturn's relay ports.
        ice = pc.getTransceivers()[0].receiver.transport.transport
        pair = ice._connection._nominated[1]
        local, remote = pair.local_candidate, pair.remote_candidate
    finally:
        await client.close()  # lets the allocation go: coturn then logs its usage
    assert offered and offered == relay_candidates("\n".join(offered)), offered
    assert local.type == "relay" and local.port in coturn.relay_ports, (local, coturn.relay_ports)
    assert remote.type == "host" and remote.host == "127.0.0.1", remote

    pcm = client.recording.pcm
    start, end = voiced_span(pcm)
    assert abs((end - start) - 2.0) <= 0.1, f"heard {end - start:.3f} s of a 2 s tone"
    assert abs(dominant_frequency(pcm) - 440) <= 3, dominant_frequency(pcm)

    # coturn's own account: when the client let the allocation go, it logged what it relayed
    # from the media server for this user's credentials: at least the 100 packets of 2 s of
    # 20 ms audio (plus the silence before and after, and ICE/DTLS).
    usage = await wait_for_log(coturn, f"peer usage: realm=<{coturn.realm}>, username=<{username}>")
    received_packets = int(usage.split(", rp=")[1].split(",")[0])
    assert received_packets >= 100, f"{usage}\n{coturn.log_tail()}"


async def wait_for_log(coturn: Coturn, needle: str, timeout: float = 5.0) -> str:
    """The first line of coturn's log containing `needle`, waiting up to `timeout` for it."""
    deadline = time.monotonic() + timeout
    while True:
        for line in coturn.log().splitlines():
            if needle in line:
                return line
        assert time.monotonic() < deadline, f"no {needle!r} in coturn's log\n{coturn.log_tail()}"
        await asyncio.sleep(0.1)


# The page's RTCPeerConnections, whoever creates them (the library's internals may change).
CAPTURE_PEER_CONNECTIONS = """
(() => {
    const Native = window.RTCPeerConnection;
    window.testPeerConnections = [];
    window.RTCPeerConnection = class extends Native {
        constructor(...args) {
            super(...args);
            window.testPeerConnections.push(this);
        }
    };
})();
"""

RELAY_STATS = """async () => {
    const pc = window.testPeerConnections.filter(
        (pc) => pc.getConfiguration().iceTransportPolicy === 'relay').at(-1);
    if (!pc) return { peerConnections: window.testPeerConnections.length };
    const byId = new Map();
    let inbound, transport;
    (await pc.getStats()).forEach((s) => {
        byId.set(s.id, s);
        if (s.type === 'inbound-rtp' && s.kind === 'audio') inbound = s;
        if (s.type === 'transport') transport = s;
    });
    const pair = transport && byId.get(transport.selectedCandidatePairId);
    const local = pair && byId.get(pair.localCandidateId);
    const remote = pair && byId.get(pair.remoteCandidateId);
    return {
        connectionState: pc.connectionState,
        username: pc.getConfiguration().iceServers.map((s) => s.username).find(Boolean),
        packetsReceived: inbound?.packetsReceived ?? 0,
        audioLevel: inbound?.audioLevel ?? 0,
        localType: local?.candidateType,
        localPort: local?.port,
        relayProtocol: local?.relayProtocol,
        remoteType: remote?.candidateType,
        remoteAddress: remote?.address,
    };
}"""

ANALYSE_RELAYED_AUDIO = """async () => {
    const pc = window.testPeerConnections.filter(
        (pc) => pc.getConfiguration().iceTransportPolicy === 'relay').at(-1);
    const track = pc.getReceivers().map((r) => r.track).find((t) => t.kind === 'audio');
    const context = new AudioContext();
    const analyser = new AnalyserNode(context, { fftSize: 8192, smoothingTimeConstant: 0 });
    context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    window.testAnalyser = analyser;
    await context.resume();
}"""

PEAK = """() => {
    const spectrum = new Float32Array(testAnalyser.frequencyBinCount);
    testAnalyser.getFloatFrequencyData(spectrum);
    let loudest = 1;
    for (let i = 1; i < spectrum.length; i++) if (spectrum[i] > spectrum[loudest]) loudest = i;
    const binHz = testAnalyser.context.sampleRate / testAnalyser.fftSize;
    return { hz: loudest * binHz, binHz, db: spectrum[loudest] };
}"""


@pytest.mark.browser
async def test_chromium_relay_only_plays_the_tone_through_coturn(
    start_server: StartServer, coturn: Coturn
) -> None:
    server = await start_with_turn(start_server, coturn, authenticated=False)
    async with launch_chromium() as browser:
        page: Page = await browser.new_page()
        echo_console(page)
        await page.add_init_script(CAPTURE_PEER_CONNECTIONS)
        await page.goto(server.url)
        await page.evaluate(
            """async () => {
                const { VoiceClient } = await import('/client/voice-client.js');
                const client = new VoiceClient({
                    iceTransportPolicy: 'relay',
                    transport: 'webrtc',
                });
                window.relayClient = client;
                await client.connect();
                await client.speak('440hz 4s');
            }"""
        )
        stats = await poll(
            lambda: page.evaluate(RELAY_STATS),
            lambda s: s.get("packetsReceived", 0) > 0 and s.get("audioLevel", 0) > 0,
            timeout=10,
        )
        await page.evaluate(ANALYSE_RELAYED_AUDIO)
        peak = await poll(lambda: page.evaluate(PEAK), lambda p: p["db"] > -40, timeout=5)

    context = f"{stats}\n{coturn.log_tail()}"
    assert stats.get("connectionState") == "connected", context
    assert stats["packetsReceived"] > 0 and stats["audioLevel"] > 0, context
    # Chromium's selected pair: its end is a relayed address on one of coturn's ports.
    assert stats["localType"] == "relay", context
    assert stats["localPort"] in coturn.relay_ports, context
    assert stats["remoteType"] == "host" and stats["remoteAddress"] == "127.0.0.1", context
    assert abs(peak["hz"] - 440) <= 2 * peak["binHz"], peak
    assert f"username=<{stats['username']}>, lifetime=" in coturn.log(), context


def refused(kind: str, secret: str) -> tuple[str, str]:
    """Credentials coturn must refuse: `kind` of expired, wrong-secret, edited-expiry."""
    if kind == "expired":  # properly signed, but its expiry passed a minute ago
        return turn_credentials(secret, USER, TTL_S, now=time.time() - TTL_S - 60)
    if kind == "wrong-secret":  # signed by someone without our secret
        return turn_credentials(secrets.token_hex(32), USER, TTL_S)
    if kind == "edited-expiry":  # an expired credential, its expiry moved a day ahead
        username, credential = turn_credentials(secret, USER, TTL_S, now=time.time() - TTL_S - 60)
        expiry, _, user = username.partition(":")
        return f"{int(expiry) + 86400}:{user}", credential
    raise ValueError(kind)


async def relay_only_attempt(
    server: RunningServer, ice_server: RTCIceServer, wait_s: float
) -> tuple[list[str], str]:
    """Offer a relay-only connection to the server with `ice_server`; after up to `wait_s`
    for it to connect, the relay candidates offered and the connection state."""
    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(
        RTCConfiguration(iceServers=[ice_server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    )
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected":
            connected.set()

    try:
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
            await ws.send_json({"type": "hello", "version": 1, "token": app_token(USER), "id": 1})
            await receive(ws, "welcome")
            await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp, "id": 2})
            answer = await receive(ws, "answer")
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            # Without a relay candidate aiortc 1.16 never even starts ICE: the state stays
            # "new" (no "failed"), so not having connected by then is the outcome.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connected.wait(), wait_s)
        return relay_candidates(pc.localDescription.sdp), pc.connectionState
    finally:
        await pc.close()


async def receive(ws: aiohttp.ClientWebSocketResponse, type_: str) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.receive_json(), 10)
        assert isinstance(message, dict), message
        assert message["type"] != "error", message
        if message["type"] == type_:
            return message


@pytest.mark.parametrize("kind", ["expired", "wrong-secret", "edited-expiry"])
async def test_coturn_refuses_expired_and_forged_credentials(
    start_server: StartServer, coturn: Coturn, kind: str
) -> None:
    server = await start_with_turn(start_server, coturn)

    # The same attempt with good credentials connects through the relay (in ~0.5 s): the
    # test can tell.
    good_username, good_credential = turn_credentials(coturn.secret, USER, TTL_S)
    good = RTCIceServer(urls=coturn.url, username=good_username, credential=good_credential)
    candidates, state = await relay_only_attempt(server, good, wait_s=5)
    assert candidates and state == "connected", f"{candidates} {state}\n{coturn.log_tail()}"

    username, credential = refused(kind, coturn.secret)
    bad = RTCIceServer(urls=coturn.url, username=username, credential=credential)
    seen = len(coturn.log())
    candidates, state = await relay_only_attempt(server, bad, wait_s=2)
    assert candidates == [], f"coturn gave a relay for {kind} credentials\n{coturn.log_tail()}"
    assert state != "connected", state

    # What the operator sees: coturn refused this username with 401 and made no allocation.
    log = coturn.log()[seen:]
    assert f"user <{username}>: incoming packet message processed, error 401" in log, (
        coturn.log_tail()
    )
    assert f"username=<{username}>, lifetime=" not in log, coturn.log_tail()
    # The client library sees the same refusal.
    with pytest.raises(TransactionFailed) as refusal:
        async with turn_allocation(coturn.port, username, credential):
            pass
    assert refusal.value.response.attributes["ERROR-CODE"][0] == 401, refusal.value


async def test_coturn_does_not_relay_into_internal_networks(coturn: Coturn) -> None:
    """The shipped denied-peer-ip lines: a credential holder cannot reach addresses inside the
    TURN server's network through it; only the media server the test allows (127.0.0.1)."""
    username, credential = turn_credentials(coturn.secret, USER, TTL_S)
    internal = ["127.0.0.2", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254"]
    async with turn_allocation(coturn.port, username, credential) as turn:
        await turn.channel_bind(0x4000, ("127.0.0.1", 9))  # the allowed media server address
        refusals: dict[str, int | None] = {}
        for number, address in enumerate(internal, start=0x4001):
            try:
                await turn.channel_bind(number, (address, 9))
                refusals[address] = None
            except TransactionFailed as exc:
                refusals[address] = exc.response.attributes["ERROR-CODE"][0]
    assert refusals == {address: 403 for address in internal}, f"{refusals}\n{coturn.log_tail()}"
