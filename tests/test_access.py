"""Access: tokens, rate limits (in memory and shared through a real Redis), origins, headers.

Each attack is refused with its code while another listener keeps streaming."""

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import REPO, RunningServer, StartServer
from tests.listener import Listener
from tests.signal_analysis import voiced_span
from voice_rtc.client import ServerError, VoiceClient

SECRET = "an-hs256-secret-of-at-least-32-chars!"
AUDIENCE = "voice-rtc"


def token(
    user: str = "alice",
    key: str = SECRET,
    algorithm: str = "HS256",
    audience: str = AUDIENCE,
    expires_in: float = 300,
    **claims: Any,
) -> str:
    now = int(time.time())
    body = {"sub": user, "aud": audience, "iat": now, "exp": now + expires_in, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


def unsigned(user: str = "alice") -> str:
    """alg=none: a token anyone can make."""
    now = int(time.time())
    claims = {"sub": user, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]


@pytest.fixture
async def secured(start_server: StartServer) -> RunningServer:
    return await start_server(env={"VOICE_RTC_JWT_SECRET": SECRET})


async def hello(ws: aiohttp.ClientWebSocketResponse, **fields: Any) -> dict[str, Any]:
    await ws.send_json({"type": "hello", "version": 1, **fields})
    reply: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), 10)
    return reply


BAD_TOKENS = {
    "missing": None,
    "expired": token(expires_in=-60),
    "forged": token(key="someone-elses-secret-of-32-characters"),
    "wrong-audience": token(audience="another-service"),
    "alg-none": unsigned(),
    "no-subject": token(user=None),  # type: ignore[arg-type]
    "garbage": "not.a.token",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_tokens_are_refused(
    secured: RunningServer, http: aiohttp.ClientSession, case: str
) -> None:
    async with http.ws_connect(secured.ws_url) as ws:
        error = await hello(ws, token=BAD_TOKENS[case])
        assert error["type"] == "error" and error["code"] == "AUTHENTICATION_FAILED", error
        assert error["action"] == "sign_in" and error["detail"]
        # Nothing but a good token gets anywhere; with one, the same socket is served.
        speak = {"type": "speak", "text": "hi"}
        await ws.send_json(speak)
        assert (await ws.receive_json())["code"] == "HELLO_REQUIRED"
        assert (await hello(ws, token=token("bob")))["type"] == "welcome"


@pytest.mark.solo
async def test_floods_are_refused_while_another_listener_keeps_streaming(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(
        env={"VOICE_RTC_JWT_SECRET": SECRET},
        limit_connections_per_minute=10,
        limit_speak_per_hour=5,
    )
    listener = Listener(server.url, transport="websocket", token=token("listener"))
    spammer = VoiceClient(server.url, transport="websocket", token=token("spammer"))
    async with listener, spammer:
        utterance = await listener.speak("500hz 4s")
        refusals = []
        for case in list(BAD_TOKENS) * 2:  # 14 bad hellos from one address
            async with http.ws_connect(server.ws_url) as ws:
                refusals.append((await hello(ws, token=BAD_TOKENS[case]))["code"])
        spoken = []
        for _ in range(8):
            try:
                await spammer.speak("0.1s")
                spoken.append("queued")
            except ServerError as exc:
                spoken.append(exc.code)
        ended = await listener.wait_for_event("utterance_ended", utterance)
        await asyncio.sleep(0.2)
    # The address's budget (10 a minute, the listener's and the spammer's included) runs out.
    assert set(refusals[:8]) == {"AUTHENTICATION_FAILED"}
    assert set(refusals[8:]) == {"RATE_LIMIT_EXCEEDED"}
    assert spoken == ["queued"] * 5 + ["RATE_LIMIT_EXCEEDED"] * 3
    assert ended["reason"] == "done"
    start, end = voiced_span(listener.recording.pcm)
    assert end - start == pytest.approx(4.0, abs=0.1)  # every frame, undisturbed


async def test_algorithm_confusion_is_refused(start_server: StartServer, tmp_path: Path) -> None:
    """RS256 configured: an HS256 token "signed" with the public key must not pass."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "jwt.pub"
    key_file.write_bytes(public_pem)
    server = await start_server(jwt_public_key_file=key_file)
    good = token(key=private, algorithm="RS256")  # type: ignore[arg-type]
    async with VoiceClient(server.url, token=good) as client:
        assert client.welcome["type"] == "welcome"
    with pytest.raises(ServerError) as refused:
        await VoiceClient(server.url, token=_hs256_with_key(public_pem)).connect()
    assert refused.value.code == "AUTHENTICATION_FAILED"


def _hs256_with_key(key: bytes) -> str:
    """An HS256 token whose HMAC key is the public key (PyJWT refuses to make one: by hand)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(
        json.dumps({"sub": "mallory", "aud": AUDIENCE, "iat": now, "exp": now + 300}).encode()
    )
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


async def test_a_token_for_one_user_cannot_resume_another_users_session(
    secured: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with Listener(secured.url, token=token("alice")) as alice:
        resume_token = alice.welcome["resume_token"]
        async with http.ws_connect(secured.ws_url) as ws:
            refused = await hello(ws, token=token("mallory"), resume=resume_token)
            assert refused["code"] == "SESSION_NOT_FOUND"  # as if it did not exist
        await alice.drop()  # alice herself still resumes it
        assert alice.state == "reconnecting"
        await alice.wait_for_state("connected", timeout=20)
        assert alice.welcome["resumed"]


async def test_a_flood_of_connections_is_limited_per_user_and_per_ip(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(
        env={"VOICE_RTC_JWT_SECRET": SECRET}, limit_connections_per_minute=5
    )
    codes = []
    for i in range(7):
        async with http.ws_connect(server.ws_url) as ws:
            codes.append((await hello(ws, token=token(f"user{i}"))).get("code", "welcome"))
    # Different users, one IP: the IP's budget runs out.
    assert codes == ["welcome"] * 5 + ["RATE_LIMIT_EXCEEDED"] * 2
    async with http.ws_connect(server.ws_url) as ws:
        refused = await hello(ws, token=token("user0"))
    assert refused["code"] == "RATE_LIMIT_EXCEEDED"
    assert 0 < refused["retry_after_s"] <= 60 and refused["action"] == "retry_later"


async def test_a_flood_of_speech_is_limited(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(
        env={"VOICE_RTC_JWT_SECRET": SECRET},
        limit_speak_per_hour=3,
        limit_chars_per_minute=40,
    )
    async with VoiceClient(server.url, transport="websocket", token=token("chatty")) as client:
        for _ in range(3):
            await client.speak("0.1s")
        with pytest.raises(ServerError) as refused:
            await client.speak("0.1s")
        assert refused.value.code == "RATE_LIMIT_EXCEEDED"
        assert refused.value.body["retry_after_s"] > 3000  # the hour is far from over
    async with VoiceClient(server.url, transport="websocket", token=token("wordy")) as client:
        utterance = await client.speak("0.1s " + "x" * 30, final=False)
        with pytest.raises(ServerError) as refused:
            await client.speak("y" * 10, utterance_id=utterance, final=True)  # 46 > 40
        assert refused.value.code == "RATE_LIMIT_EXCEEDED"


async def test_telemetry_needs_a_token_and_is_limited(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(
        env={"VOICE_RTC_JWT_SECRET": SECRET}, limit_telemetry_events_per_minute=5
    )
    batch = {"events": [{"type": "reconnect", "attempt": 1}] * 3}
    url = server.url + "api/analytics"
    async with http.post(url, json=batch) as response:
        assert response.status == 401
        assert (await response.json())["code"] == "AUTHENTICATION_FAILED"
    auth = {"Authorization": f"Bearer {token('app')}"}
    async with http.post(url, json=batch, headers=auth) as response:
        assert response.status == 202
    async with http.post(url, json=batch, headers=auth) as response:
        assert response.status == 429
        assert (await response.json())["code"] == "RATE_LIMIT_EXCEEDED"
        assert 0 < int(response.headers["Retry-After"]) <= 60


async def test_sessions_per_user_are_limited(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(
        env={"VOICE_RTC_JWT_SECRET": SECRET}, limit_sessions_per_user=2, session_grace_s=0.5
    )
    async with (
        VoiceClient(server.url, token=token("greedy")),
        VoiceClient(server.url, token=token("greedy")),
    ):
        with pytest.raises(ServerError) as refused:
            await VoiceClient(server.url, token=token("greedy")).connect()
        assert refused.value.code == "RATE_LIMIT_EXCEEDED"
        async with VoiceClient(server.url, token=token("someone-else")):
            pass  # other users are not affected
    await asyncio.sleep(1.0)  # the sessions end after their grace period: the slots free up
    async with VoiceClient(server.url, token=token("greedy")) as client:
        assert client.state == "connected"


async def test_limits_hold_across_two_servers_sharing_redis(
    start_server: StartServer, http: aiohttp.ClientSession, redis_url: str
) -> None:
    shared = {
        "env": {"VOICE_RTC_JWT_SECRET": SECRET},
        "redis_url": redis_url,
        "limit_connections_per_minute": 100,
        "limit_sessions_per_user": 3,
        "limit_speak_per_hour": 4,
    }
    first, second = await start_server(**shared), await start_server(**shared)
    clients = [
        VoiceClient(server.url, transport="websocket", token=token("roamer"))
        for server in (first, second, first)
    ]
    for client in clients:
        await client.connect()
    try:
        for server in (second, first):  # the fourth session, on either server
            with pytest.raises(ServerError) as refused:
                await VoiceClient(server.url, token=token("roamer")).connect()
            assert refused.value.code == "RATE_LIMIT_EXCEEDED"
        for client in clients + clients[:1]:  # 4 utterances between the two servers...
            await client.speak("0.1s")
        with pytest.raises(ServerError) as refused:  # ...and the fifth is refused by either
            await clients[1].speak("0.1s")
        assert refused.value.code == "RATE_LIMIT_EXCEEDED"
    finally:
        for client in clients:
            await client.close()
    async with http.get(first.url + "ready") as response:
        assert (await response.json())["redis"] == "ok"


async def test_websocket_origins_are_checked(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(allowed_origins="https://app.example.com")
    host = server.url.removeprefix("http://").rstrip("/")
    for origin, allowed in [
        (f"http://{host}", True),  # the page this server served
        ("https://app.example.com", True),  # listed
        (None, True),  # not a browser: no ambient credentials to abuse
        ("https://evil.example", False),
        (f"http://{host}.evil.example", False),
    ]:
        headers = {"Origin": origin} if origin else {}
        if allowed:
            async with http.ws_connect(server.ws_url, headers=headers) as ws:
                assert not ws.closed
        else:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(server.ws_url, headers=headers)
            assert refused.value.status == 403


async def test_http_responses_carry_security_headers(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for path in ("", "health", "client/voice-client.js", "api/errors"):
        async with http.get(server.url + path) as response:
            assert response.status == 200
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"


async def test_dev_tokens_exist_only_in_dev_mode(
    server: RunningServer, secured: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.url + "api/dev-token") as response:
        assert response.status == 200
        assert (await response.json())["expires_in"] <= 900
    async with http.get(secured.url + "api/dev-token") as response:
        assert response.status == 404


async def test_serving_beyond_loopback_without_a_key_refuses_to_start() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "server.py", "--host", "0.0.0.0", "--port", "0", "--tts", "tone",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode != 0
    assert b"VOICE_RTC_JWT_SECRET" in stderr and b"loopback" in stderr
