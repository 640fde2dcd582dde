"""Agents drive sessions: an app's backend makes a session for its user, the browser (here the
Python client) joins it with the listener token, an agent speaks into it, and learns what the
listener heard. Real servers on loopback, real clients, real eSpeak NG."""

import asyncio
import itertools
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.conftest import REPO, RunningServer, StartServer
from tests.listener import Listener
from tests.tcp_proxy import TcpProxy
from voice_rtc.agent import Agent, AgentError, SessionGrant, create_session
from voice_rtc.audio import FRAME_SAMPLES
from voice_rtc.tts.base import WordMark
from voice_rtc.tts.espeak import EspeakProvider

SENTENCE = (
    "The quick brown fox jumps over the lazy dog while seven wizards quietly pack "
    "boxes of liquor jugs beside the old stone bridge"
)


async def service_token(http: aiohttp.ClientSession, server: RunningServer) -> str:
    async with http.get(server.url + "api/dev-token", params={"role": "service"}) as response:
        assert response.status == 200
        return str((await response.json())["token"])


@pytest.fixture
async def espeak_server(start_server: StartServer) -> RunningServer:
    return await start_server(tts="espeak")


@pytest.fixture
async def grant(espeak_server: RunningServer, http: aiohttp.ClientSession) -> SessionGrant:
    credential = await service_token(http, espeak_server)
    return await create_session(espeak_server.url, credential, "alice", http)


async def next_event(events: AsyncIterator[dict[str, Any]], kind: str, **match: Any) -> Any:
    """The next event of this type (and these fields), skipping others."""
    async with asyncio.timeout(30):
        async for event in events:
            if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
    raise AssertionError(f"the events ended before a {kind}")


async def heard_by(
    listener: Listener, kind: str, match: Callable[[dict[str, Any]], bool] = lambda _e: True
) -> dict[str, Any]:
    """The listener's first event of this type that matches."""
    async with asyncio.timeout(30):
        while True:
            for event in listener.events:
                if event["type"] == kind and match(event):
                    return event
            await asyncio.sleep(0.02)


async def test_the_example_agent_greets_the_listener_and_answers_what_they_type(
    espeak_server: RunningServer,
) -> None:
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "examples" / "greeter.py"),
        "--url",
        espeak_server.url,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert agent.stdout is not None
    try:
        line = (await asyncio.wait_for(agent.stdout.readline(), 30)).decode()
        assert line.startswith("listener: "), line
        token = parse_qs(urlsplit(line.split()[-1]).query)["token"][0]
        async with Listener(espeak_server.url, token=token) as listener:
            greeting = await heard_by(listener, "utterance_ended")
            assert greeting["reason"] == "done" and "Hello" in greeting["text"]
            assert listener.welcome["agent"] is True
            heard = (await asyncio.wait_for(agent.stdout.readline(), 30)).decode()
            assert heard.startswith(f"heard {greeting['utterance_id']}: 'Hello!"), heard

            await listener.send_input("what time is it")
            answer = await heard_by(listener, "utterance_ended", lambda e: "You said" in e["text"])
            assert answer["reason"] == "done"
            assert answer["text"].startswith("You said: what time is it. ")
        # Both transports played speech: the recording is not silence.
        assert len(listener.recording.pcm) > 2 * 22050 * 2
    finally:
        agent.terminate()
        await agent.wait()


async def word_frames(text: str) -> list[int]:
    """Where each word of `text` starts, in frames, as eSpeak NG says it (the server's voice,
    with the same settings, run here on its own)."""
    provider = EspeakProvider()
    try:
        marks = [m async for m in provider.synthesize(text) if isinstance(m, WordMark)]
    finally:
        await provider.close()
    assert [m.index for m in marks] == list(range(len(text.split())))
    return [m.sample // FRAME_SAMPLES for m in marks]


@pytest.mark.parametrize(
    "text", ["It began to fall on the quiet town.", "Rain began to fall on the"]
)
async def test_every_word_has_a_timing_even_those_espeak_runs_together(text: str) -> None:
    """eSpeak NG says "on the" as one word and tells only "on": "the" is timed between its
    neighbours (and a last word left untold, before the end), so captions miss no word."""
    starts = await word_frames(text)  # every word, in order
    assert starts == sorted(starts) and len(set(starts)) == len(starts), starts


async def test_word_timings_are_where_espeak_says_not_shifted_by_the_audio_before_them() -> None:
    """eSpeak NG counts a word's sample from the start of its sentence; the first words' audio
    is handed over before the later words are told, and must not move them (it moved every
    word but the first 200 ms late)."""
    sentence = "Seven quick brown foxes jumped over a sleeping dog."
    provider = EspeakProvider()
    try:
        told = [m async for m in provider._synthesize_sentence(sentence) if isinstance(m, WordMark)]
        marks = [m async for m in provider.synthesize(sentence) if isinstance(m, WordMark)]
        second = [
            m async for m in provider.synthesize(f"Hi. {sentence}") if isinstance(m, WordMark)
        ]
    finally:
        await provider.close()
    # (Within a few samples: eSpeak NG's state carries a little from one call to the next.)
    assert [m.index for m in marks] == [m.index for m in told]
    assert max(abs(m.sample - t.sample) for m, t in zip(marks, told, strict=True)) < 50
    # In a second sentence, each word is where it is in that sentence, after the first's audio.
    offset = second[1].sample - told[0].sample
    assert [m.index - 1 for m in second[1:]] == [m.index for m in told]
    assert (
        max(abs(m.sample - offset - t.sample) for m, t in zip(second[1:], told, strict=True)) < 50
    )


@pytest.mark.parametrize("span", [(0.6, 1.6), (1.6, 2.6), (2.6, 3.5)], ids=["early", "mid", "late"])
async def test_the_agent_learns_the_words_the_listener_heard_before_a_barge_in(
    espeak_server: RunningServer, grant: SessionGrant, span: tuple[float, float]
) -> None:
    cut_s = random.uniform(*span)  # anywhere in a word or between two: a new place each run
    print(f"barge-in after {cut_s:.3f} s")
    starts = await word_frames(SENTENCE)
    words = SENTENCE.split()
    assert grant.listener_token and grant.agent_token
    async with (
        Listener(espeak_server.url, transport="websocket", token=grant.listener_token) as ear,
        Agent(espeak_server.url, grant.session_id, grant.agent_token) as agent,
    ):
        events = agent.events()
        utterance = await agent.speak(SENTENCE)
        await next_event(events, "utterance_started", utterance_id=utterance)
        await asyncio.sleep(cut_s)
        assert await agent.cancel() == [utterance]
        heard = await next_event(events, "utterance_heard", utterance_id=utterance)

    played = [index for _seq, u, index in ear.recording.frame_ids if u == utterance]
    assert played == list(range(len(played)))  # in order, each once
    last = played[-1]
    spoken = [w for w, start in zip(words, starts, strict=True) if start <= last]
    assert heard["reason"] == "cancelled" and heard["timed"] is True
    assert heard["position_ms"] == len(played) * 20
    # Exact, but for the word being spoken at the cut (its start may straddle the last frame).
    assert abs(heard["words"] - len(spoken)) <= 1, (heard, spoken)
    assert heard["text"] == " ".join(words[: heard["words"]])
    assert 0 < heard["words"] < len(words)


async def test_a_whole_utterance_is_heard_whole_and_the_tone_gives_a_duration_only(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server()  # the tone: no word timings
    grant = await create_session(server.url, await service_token(http, server), "bob", http)
    assert grant.listener_token and grant.agent_token
    async with (
        Listener(server.url, token=grant.listener_token),
        Agent(server.url, None, grant.agent_token) as agent,
    ):
        events = agent.events()
        utterance = await agent.speak("440hz 0.6s")
        heard = await next_event(events, "utterance_heard", utterance_id=utterance)
        state = await agent.state()
    assert heard["reason"] == "done" and heard["complete"] is True
    assert heard["timed"] is False and heard["text"] == ""
    assert heard["position_ms"] == 620  # 30 frames of tone and the codec's tail frame
    assert state["last_heard"] == {k: v for k, v in heard.items() if k not in ("type", "event_id")}
    assert state["listener"] == {"connected": True, "transport": "webrtc"}


async def test_streamed_text_is_spoken_as_one_utterance_and_events_tell_the_listener(
    espeak_server: RunningServer, grant: SessionGrant
) -> None:
    assert grant.listener_token and grant.agent_token
    async with Agent(espeak_server.url, grant.session_id, grant.agent_token) as agent:
        events = agent.events()
        async with Listener(espeak_server.url, token=grant.listener_token) as ear:
            change = await next_event(events, "listener", change="connected")
            assert change["transport"] is None
            assert (await next_event(events, "listener", change="transport"))["transport"] == (
                "webrtc"
            )
            async with agent.stream() as reply:
                for piece in ["Streaming ", "works. ", "Each piece", " joins the last."]:
                    await reply.write(piece)
            queued = await next_event(events, "utterance_queued")
            assert queued["final"] is False and queued["utterance_id"] == reply.utterance_id
            ended = await next_event(events, "utterance_ended", utterance_id=reply.utterance_id)
            assert ended["text"] == "Streaming works. Each piece joins the last."
            listener_ended = await heard_by(ear, "utterance_ended")
            assert listener_ended["text"] == ended["text"]
        await next_event(events, "listener", change="disconnected")


async def test_either_connection_can_drop_and_come_back_without_ending_the_session(
    espeak_server: RunningServer, grant: SessionGrant
) -> None:
    proxy = TcpProxy("127.0.0.1", urlsplit(espeak_server.url).port or 0)
    await proxy.start()
    assert grant.listener_token and grant.agent_token
    try:
        async with (
            Listener(espeak_server.url, token=grant.listener_token) as ear,
            Agent(proxy.url, grant.session_id, grant.agent_token) as agent,
        ):
            events = agent.events()
            first = await agent.speak("One sentence before the drop.")
            assert proxy.cut() == 1  # the agent's connection, mid-speech
            # Said while the agent is away: queued once it is back (and not twice).
            second = await agent.speak("And one after it.")
            ended = [await next_event(events, "utterance_ended") for _ in range(2)]
            assert [e["utterance_id"] for e in ended] == [first, second]
            assert agent.reconnects == 1
            # The listener drops; the agent stays and sees it come back.
            await ear.drop()
            await next_event(events, "listener", change="disconnected")
            await next_event(events, "listener", change="resumed")
            await ear.wait_until_up()
            third = await agent.speak("Still here.")
            await heard_by(ear, "utterance_ended", lambda e: e["utterance_id"] == third)
        ids = [e["utterance_id"] for e in ear.events if e["type"] == "utterance_ended"]
        assert ids == [first, second, third]
    finally:
        await proxy.close()


async def test_a_speak_resent_with_the_same_id_is_spoken_once(
    espeak_server: RunningServer, grant: SessionGrant, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(espeak_server.url + "agent") as ws:
        await ws.send_json({"type": "hello", "version": 1, "token": grant.agent_token})
        assert (await ws.receive_json())["type"] == "welcome"
        speak = {"type": "speak", "text": "Only once.", "id": "agent-1-17"}
        await ws.send_json(speak)
        await ws.send_json(speak)
        await ws.send_json({"type": "state", "id": 1})
        said: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while not said or said[-1]["type"] != "state":
                said.append(await ws.receive_json())
        replies = [m["utterance_id"] for m in said if m["type"] == "queued"]
        assert len(replies) == 2 and replies[0] == replies[1]
        assert [m["utterance_id"] for m in said if m["type"] == "utterance_queued"] == replies[:1]
    replies = []
    for _ in range(2):
        async with http.post(
            f"{espeak_server.url}api/sessions/{grant.session_id}/speak",
            json={"text": "Twice over REST."},
            headers={"Authorization": f"Bearer {grant.agent_token}", "Idempotency-Key": "k-1"},
        ) as response:
            assert response.status == 202
            replies.append(await response.json())
    assert replies[0] == replies[1] and replies[0]["utterance_id"] != said[0]["utterance_id"]


async def receive(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next message of this type (events interleave with replies)."""
    async with asyncio.timeout(10):
        while True:
            body: dict[str, Any] = await ws.receive_json()
            if body["type"] in (kind, "error"):
                return body


async def agent_hello(
    http: aiohttp.ClientSession, server: RunningServer, **fields: Any
) -> dict[str, Any]:
    async with http.ws_connect(server.url + "agent") as ws:
        await ws.send_json({"type": "hello", "version": 1, **fields})
        return await receive(ws, "welcome")


async def listener_hello(
    http: aiohttp.ClientSession, server: RunningServer, **fields: Any
) -> dict[str, Any]:
    async with http.ws_connect(server.ws_url) as ws:
        await ws.send_json({"type": "hello", "version": 1, **fields})
        return await receive(ws, "welcome")


async def test_credentials_act_only_on_their_own_sessions(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    from tests.test_access import SECRET, token

    server = await start_server(env={"VOICE_RTC_JWT_SECRET": SECRET})
    app_a, app_b = token("app-a", role="service"), token("app-b", role="service")
    mine = await create_session(server.url, app_a, "alice", http)
    theirs = await create_session(server.url, app_b, "alice", http)
    assert mine.listener_token and mine.agent_token and theirs.listener_token

    # A listener token opens its own session, and no other (not even by resume token).
    welcome = await listener_hello(http, server, token=mine.listener_token)
    assert welcome["session_id"] == mine.session_id
    other = await listener_hello(http, server, token=theirs.listener_token)
    stolen = await listener_hello(
        http, server, token=mine.listener_token, resume=other["resume_token"]
    )
    assert stolen["code"] == "SESSION_NOT_FOUND"
    # An agent token acts on its session only; a service on the sessions it made only.
    refusals = {
        "agent on another session": dict(token=mine.agent_token, session_id=theirs.session_id),
        "service on another app's session": dict(token=app_a, session_id=theirs.session_id),
        "service with no session named": dict(token=app_a),
    }
    codes = {name: (await agent_hello(http, server, **f))["code"] for name, f in refusals.items()}
    assert codes == {
        "agent on another session": "SESSION_NOT_FOUND",
        "service on another app's session": "SESSION_NOT_FOUND",
        "service with no session named": "MISSING_FIELD",
    }
    assert (await agent_hello(http, server, token=app_a, session_id=mine.session_id))[
        "type"
    ] == "welcome"
    # Roles stay in their lanes.
    assert (await agent_hello(http, server, token=mine.listener_token))["code"] == "FORBIDDEN"
    assert (await listener_hello(http, server, token=mine.agent_token))["code"] == "FORBIDDEN"
    # Expired, forged and unsigned credentials, on both channels and over REST.
    bad = {
        "expired": token("x", role="agent", sid=mine.session_id, expires_in=-60),
        "forged": token("x", key="someone-elses-secret-of-32-characters", role="service"),
        "alg-none": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4Iiwicm9sZSI6InNlcnZpY2UifQ.",
    }
    for name, credential in bad.items():
        hello = await agent_hello(http, server, token=credential, session_id=mine.session_id)
        assert hello["code"] == "AUTHENTICATION_FAILED", name
        async with http.post(
            server.url + "api/sessions",
            json={"user_id": "mallory"},
            headers={"Authorization": f"Bearer {credential}"},
        ) as response:
            assert response.status == 401, name
    rest = {
        "a user's token makes no session": ("POST", "api/sessions", token("alice")),
        "another app's session": ("GET", f"api/sessions/{theirs.session_id}", app_a),
        "a listener token cannot speak": (
            "POST",
            f"api/sessions/{mine.session_id}/speak",
            mine.listener_token,
        ),
    }
    statuses = {}
    for name, (method, path, credential) in rest.items():
        async with http.request(
            method,
            server.url + path,
            json={"user_id": "x", "text": "hi"},
            headers={"Authorization": f"Bearer {credential}"},
        ) as response:
            statuses[name] = (response.status, (await response.json())["code"])
    assert statuses == {
        "a user's token makes no session": (401, "AUTHENTICATION_FAILED"),
        "another app's session": (404, "SESSION_NOT_FOUND"),
        "a listener token cannot speak": (403, "FORBIDDEN"),
    }
    with pytest.raises(AgentError) as refused:
        await Agent(server.url, theirs.session_id, mine.agent_token).connect()
    assert refused.value.code == "SESSION_NOT_FOUND"


MALFORMED: dict[str, tuple[str, str]] = {
    "not json": ("{speak", "INVALID_JSON"),
    "unknown type": ('{"type": "sing"}', "UNKNOWN_TYPE"),
    "no text": ('{"type": "speak"}', "MISSING_FIELD"),
    "text not a string": ('{"type": "speak", "text": 7}', "INVALID_FIELD"),
    "empty text": ('{"type": "speak", "text": "  "}', "INVALID_FIELD"),
    "too long": ('{"type": "speak", "text": "' + "a" * 3000 + '"}', "TEXT_TOO_LONG"),
    "unknown utterance": (
        '{"type": "speak", "text": "x", "utterance_id": 999}',
        "UTTERANCE_CLOSED",
    ),
    "hello again": ('{"type": "hello", "version": 1}', "ALREADY_STARTED"),
    "infinite": ('{"type": "ping", "ts": Infinity}', "INVALID_FIELD"),
    "a listener's message": ('{"type": "offer", "sdp": "v=0"}', "UNKNOWN_TYPE"),
}


async def test_malformed_agent_messages_get_stable_codes_and_the_listener_plays_on(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(max_text_chars=2000)
    grant = await create_session(server.url, await service_token(http, server), "carol", http)
    assert grant.listener_token
    async with Listener(server.url, token=grant.listener_token) as ear:
        async with http.ws_connect(server.url + "agent") as ws:
            await ws.send_json({"type": "speak", "text": "too soon"})
            assert (await receive(ws, "error"))["code"] == "HELLO_REQUIRED"
            await ws.send_json({"type": "hello", "version": 1, "token": grant.agent_token})
            assert (await receive(ws, "welcome"))["session_id"] == grant.session_id
            await ws.send_json({"type": "speak", "text": "440hz 3s", "id": "tone"})
            assert (await receive(ws, "queued"))["id"] == "tone"
            await heard_by(ear, "utterance_started")
            started = time.monotonic()
            codes = {}
            for name, (raw, _code) in MALFORMED.items():
                await ws.send_str(raw)
                codes[name] = (await receive(ws, "error"))["code"]
            assert codes == {name: code for name, (_raw, code) in MALFORMED.items()}
            assert time.monotonic() - started < 2.5  # all answered while the tone plays
            ended = await heard_by(ear, "utterance_ended")
    assert ended["reason"] == "done" and ended["frames"] == 151
    gaps = [b - a for a, b in itertools.pairwise(ear.recording.arrivals)]
    assert max(gaps[5:140]) < 0.25  # the listener's audio never stalled
