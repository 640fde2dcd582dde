"""Captions that follow the speech, in headless Chromium: with eSpeak NG's word timings the demo
page marks each word as it is heard, over WebRTC and over the WebSocket fallback; and the page
joins a session an app made (`?token=`), where what the listener types reaches the agent."""

import asyncio
import itertools
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Page, WebSocket, expect

from tests.browser import (
    CAPTIONS_RECORDER,
    analyse_received_audio,
    analyse_websocket_audio,
    assert_shown_in_order,
    heard_to_the_end,
    in_order,
    poll,
    speak,
)
from tests.conftest import RunningServer, StartServer
from tests.tcp_proxy import tcp_proxy

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]
expect.set_options(timeout=10_000)

SENTENCE = "Seven quick brown foxes jumped over a sleeping dog."
LONG_SENTENCE = (
    "Seven quick brown foxes jumped over a sleeping dog, then ran all the way home"
    " across the wide green fields before the evening rain began to fall."
)
FRAME_MS = 20


def server_messages(page: Page) -> list[dict[str, Any]]:
    """The JSON messages the server sends the page's signaling sockets, as they arrive; each
    with `socket`: which of the page's sockets, from 0."""
    messages: list[dict[str, Any]] = []
    sockets = itertools.count()

    def watch(ws: WebSocket) -> None:
        socket = next(sockets)

        def received(payload: str | bytes) -> None:
            if isinstance(payload, str):
                messages.append({**json.loads(payload), "socket": socket})

        ws.on("framereceived", received)

    page.on("websocket", watch)
    return messages


async def listen(page: Page, url: str, transport: str) -> None:
    """Open the demo at `url`, connected (an evaluation is a user gesture) over `transport` and
    listening (window.testAnalyser) before anything is said."""
    await page.add_init_script(CAPTIONS_RECORDER)
    await page.goto(url)
    await page.evaluate("voiceClient.connect()")
    await expect(page.locator("#transport")).to_have_text(
        "WebRTC" if transport == "webrtc" else "WebSocket audio"
    )
    if transport == "webrtc":
        await analyse_received_audio(page)
    else:
        await analyse_websocket_audio(page)


def words_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [w for m in messages if m["type"] == "utterance_words" for w in m["words"]]


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_each_word_is_marked_in_order_as_it_is_heard(
    start_server: StartServer, page: Page, transport: str
) -> None:
    server = await start_server(tts="espeak")
    messages = server_messages(page)
    await listen(page, f"{server.url}?transport={transport}", transport)

    await speak(page, SENTENCE)
    await expect(page.locator("#captions")).to_have_text(SENTENCE)
    told, marks = await heard_to_the_end(page, SENTENCE)
    audio_start = await page.evaluate("audioStart")

    words = words_of(messages)
    assert [w["text"] for w in words] == SENTENCE.split(), words  # punctuation and all
    # Every word told, in order, each once; marked so in the captions, the text around it kept.
    told = [w for w in told if w["index"] is not None]
    assert [w["index"] for w in told] == list(range(len(words))), told
    assert [w["text"] for w in told] == [w["text"] for w in words], told
    assert_shown_in_order(marks, words)
    assert {m["text"] for m in marks if m["text"]} <= set(SENTENCE.split())

    # Told as heard: the first word as the audio starts (not as it arrives, a jitter buffer
    # earlier), each next one when its audio plays. Generous bounds: the machine is shared.
    assert audio_start is not None
    assert -150 <= told[0]["t"] - audio_start <= 500, (told[0], audio_start)
    for heard, word in zip(told, words, strict=True):
        heard_ms = heard["t"] - told[0]["t"]
        due_ms = (word["frame"] - words[0]["frame"]) * FRAME_MS
        assert abs(heard_ms - due_ms) <= 300, (heard, word, told)


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_words_known_before_a_drop_are_marked_after_the_resume(
    start_server: StartServer, page: Page, transport: str
) -> None:
    """The network drops the page's connections mid-sentence (a proxy cuts them); the session
    resumes, on a new transport, and the words the page knew go on being marked."""
    server = await start_server(tts="espeak")
    target = urlsplit(server.url)
    messages = server_messages(page)
    async with tcp_proxy(target.hostname or "", target.port or 0) as proxy:
        await listen(page, f"{proxy.url}?transport={transport}", transport)
        await speak(page, LONG_SENTENCE)
        await poll(lambda: page.evaluate("wordEvents.length"), lambda n: n >= 3, timeout=10)
        assert proxy.cut() >= 1
        await expect(
            page.locator("#connection-log li").filter(has_text="reconnecting")
        ).to_have_count(1)
        told, marks = await heard_to_the_end(page, LONG_SENTENCE)

    words = words_of(messages)
    assert [w["text"] for w in words] == LONG_SENTENCE.split(), words
    # All of them came before the drop: the resumed session sends none again.
    assert {m["socket"] for m in messages if m["type"] == "utterance_words"} == {0}
    assert any(m["socket"] > 0 for m in messages), "the page did not reconnect"
    # Each word told and marked in order, once (or again after the gap: speech resumes where it
    # stopped, inside that word).
    assert in_order(told) == list(range(len(words))), told
    assert_shown_in_order(marks, words)


async def test_without_word_timings_the_captions_show_the_text(
    server: RunningServer, page: Page
) -> None:
    await page.goto(server.url + "?transport=websocket")
    # The page's own session: its speak box, no agent's.
    await expect(page.get_by_role("button", name="Connect")).to_be_hidden()
    await speak(page, "Hello there, 440hz 1s")
    await expect(page.locator("#events li").filter(has_text="ended: done")).to_have_count(1)
    await expect(page.locator("#captions")).to_have_text("Hello there, 440hz 1s")
    assert await page.locator("#captions mark").count() == 0
    assert await page.evaluate("voiceClient.currentWord") is None
    await expect(page.get_by_label("Say something to the agent")).to_be_hidden()


async def make_session(http: aiohttp.ClientSession, server: RunningServer) -> dict[str, Any]:
    """A session an app's backend makes for a user: POST /api/sessions, with a service token."""
    async with http.get(server.url + "api/dev-token", params={"role": "service"}) as response:
        assert response.status == 200, await response.text()
        service_token = (await response.json())["token"]
    async with http.post(
        server.url + "api/sessions",
        json={"user_id": "listener-1"},
        headers={"Authorization": f"Bearer {service_token}"},
    ) as response:
        assert response.status in (200, 201), await response.text()
        session: dict[str, Any] = await response.json()
        return session


async def agent_event(agent: aiohttp.ClientWebSocketResponse, type: str) -> dict[str, Any]:
    """The agent's next event of `type`, skipping the others."""
    while True:
        message = await asyncio.wait_for(agent.receive_json(), 15)
        if message["type"] == type:
            return message  # type: ignore[no-any-return]


async def test_the_page_joins_an_apps_session_and_talks_to_its_agent(
    start_server: StartServer, page: Page, http: aiohttp.ClientSession
) -> None:
    server = await start_server(tts="espeak")
    session = await make_session(http, server)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    async with http.ws_connect(server.url.replace("http", "ws", 1) + "agent") as agent:
        await agent.send_json({"type": "hello", "version": 1, "token": session["agent_token"]})
        welcome = await agent_event(agent, "welcome")
        assert welcome["session_id"] == session["session_id"], welcome

        await page.goto(f"{server.url}?token={session['listener_token']}")
        await expect(page.get_by_label("Text to speak")).to_be_hidden()
        await page.get_by_role("button", name="Connect").click()
        await expect(page.locator("#state")).to_have_text("connected")
        await expect(page.get_by_role("button", name="Connect")).to_be_hidden()
        # That session, joined with the app's token: no dev token asked for.
        assert await page.evaluate("voiceClient.sessionId") == session["session_id"]
        await expect(page.locator("#stat-session")).to_have_text(session["session_id"])
        assert not [url for url in requests if "/api/dev-token" in url], requests

        # An agent speaks here: the page offers to talk to it instead of its own speak box.
        await expect(page.get_by_label("Text to speak")).to_be_hidden()
        await page.get_by_label("Say something to the agent").fill("What time is it?")
        await page.get_by_role("button", name="Send").click()
        heard = await agent_event(agent, "listener_input")
        assert heard["text"] == "What time is it?", heard

        # The agent answers; the listener's captions show it, word by word.
        await agent.send_json({"type": "speak", "text": "It is nearly noon."})
        await expect(page.locator("#captions")).to_have_text("It is nearly noon.")
        await expect(page.locator("#captions mark")).to_have_text("noon.", timeout=15_000)
