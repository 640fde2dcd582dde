"""Drive a listener's session from a backend: the Python agent library.

An app's backend makes a session for one of its users and hands the browser the listener token;
the agent connects to the session and speaks into it, streams text as an LLM writes it, cancels
when the listener barges in, and hears what happens, including what the listener actually heard
of each utterance:

    grant = await create_session(url, api_key, user_id="alice")
    # ... the browser joins with grant.listener_token ...
    async with Agent(url, grant.session_id, grant.agent_token) as agent:
        async for event in agent.events():
            if event["type"] == "listener" and event["change"] == "connected":
                await agent.speak("Hello! What can I do for you?")
            elif event["type"] == "listener_input":
                async with agent.stream() as reply:
                    async for piece in llm(event["text"]):
                        await reply.write(piece)
            elif event["type"] == "utterance_heard":
                context.cut_to(event["text"])  # what was spoken before a barge-in

The connection is kept: dropped, it reconnects with backoff and full jitter, gets the events it
missed (each event once, in order) and resends the requests that had no answer (a speak is
recognised by its id and never spoken twice). The events are the server's JSON messages, as
PROTOCOL.md describes them.
"""

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .backoff import backoff_delay
from .protocol import (
    CLOSE_CODES_NORMAL,
    PATHS_AGENT,
    RECONNECT_BASE_MS,
    RECONNECT_CAP_MS,
    RECONNECT_STABLE_AFTER_MS,
    VERSION,
)
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)

Event = dict[str, Any]
Credential = str | Callable[[], Awaitable[str]]  # a token, or what gives a fresh one
EVENT_BUFFER = 1024  # events not yet taken by events(): the oldest go first beyond this
# Refusals that no retry changes: the agent stops and says why.
FINAL_CODES = frozenset(
    {"AUTHENTICATION_FAILED", "FORBIDDEN", "SESSION_NOT_FOUND", "UNSUPPORTED_VERSION"}
)


class AgentError(Exception):
    """The server refused a request (`code` is from its error table, GET /api/errors)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(f"{body.get('code')}: {body.get('detail') or body.get('message')}")
        self.code: str = body.get("code", "")
        self.body = body


class SessionEnded(Exception):
    """The session is over: nothing more can be said into it."""


@dataclass(frozen=True)
class SessionGrant:
    """A session made for a user: its id, and the tokens for its listener and its agent
    (None from a server that only checks tokens: the app signs them itself, see the README)."""

    session_id: str
    user_id: str
    listener_token: str | None
    agent_token: str | None
    expires_in: int | None


def http_url(server_url: str, path: str) -> str:
    parts = urlsplit(server_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def agent_url(server_url: str) -> str:
    parts = urlsplit(server_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, PATHS_AGENT, "", ""))


async def create_session(
    server_url: str, credential: str, user_id: str, http: aiohttp.ClientSession | None = None
) -> SessionGrant:
    """POST /api/sessions with a service credential (the API key, or a service token)."""
    async with contextlib.AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(aiohttp.ClientSession())
        async with http.post(
            http_url(server_url, "/api/sessions"),
            json={"user_id": user_id},
            headers={"Authorization": f"Bearer {credential}"},
        ) as response:
            body = await response.json()
        if response.status != 201:
            raise AgentError(body)
        return SessionGrant(
            body["session_id"],
            body["user_id"],
            body.get("listener_token"),
            body.get("agent_token"),
            body.get("expires_in"),
        )


class Agent:
    def __init__(
        self,
        server_url: str,
        session_id: str | None,
        credential: Credential,
        max_attempts: int = 10,
        request_timeout_s: float = 30.0,
    ) -> None:
        """`credential`: the session's agent token, or a service credential (then
        `session_id` says which of its sessions), or a coroutine function giving either
        fresh at every connection. `max_attempts` reconnections in a row before giving up."""
        self.url = agent_url(server_url)
        self.session_id = session_id
        self._credential = credential
        self._max_attempts = max_attempts
        self._request_timeout_s = request_timeout_s
        self.welcome: Event = {}
        self.reconnects = 0
        self.events_dropped = 0  # not taken by events() in time: the buffer's oldest
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(EVENT_BUFFER)
        self._last_event = 0
        # Requests without an answer, by id: resent on a new connection until answered.
        self._pending: dict[str, tuple[Event, asyncio.Future[Event]]] = {}
        self._pings: dict[str, asyncio.Future[Event]] = {}  # of this connection only
        # Ids unique to this agent, so that the server tells a resent speak from a new one.
        self._ids = (f"{secrets.token_hex(6)}-{n}" for n in itertools.count(1))
        self._supervisor: asyncio.Task[None] | None = None
        self._ended: BaseException | None = None  # why the agent stopped, once it has

    async def __aenter__(self) -> "Agent":
        await self.connect()
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Join the session; raises AgentError if the server refuses."""
        self._http = aiohttp.ClientSession()
        try:
            await asyncio.wait_for(self._open(), timeout_s)
        except BaseException:
            await self._http.close()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="agent-supervisor")

    async def close(self) -> None:
        self._stop(SessionEnded("closed by the agent"))
        await cancel_and_wait(self._supervisor)
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    async def speak(self, text: str) -> int:
        """Queue `text`; the utterance's id (its events name it)."""
        reply = await self.request({"type": "speak", "text": text})
        return int(reply["utterance_id"])

    def stream(self) -> "StreamedUtterance":
        """An utterance written in pieces (`async with agent.stream() as u: await u.write(..)`):
        speech begins with the first complete sentence, before the rest is written."""
        return StreamedUtterance(self)

    async def cancel(self) -> list[int]:
        """Barge-in: stop the utterance playing now and drop the queue; their ids."""
        reply = await self.request({"type": "cancel"})
        return [int(n) for n in reply["utterance_ids"]]

    async def state(self) -> Event:
        """The session now: the listener, the queue, what was heard last."""
        return await self.request({"type": "state"})

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in order and once each, across reconnections; ends with the session
        (its last event is `session_ended`), or raises why the agent could not go on."""
        while True:
            event = await self._events.get()
            if event is None:
                if isinstance(self._ended, SessionEnded):
                    return
                assert self._ended is not None
                raise self._ended
            yield event

    async def request(self, body: Event) -> Event:
        """Send a request and wait for its answer (resent after a reconnection if need be)."""
        if self._ended is not None:
            raise self._ended
        request_id = next(self._ids)
        body = {**body, "id": request_id}
        answer: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (body, answer)
        try:
            if self._connected.is_set():
                await self._send(body)
            async with asyncio.timeout(self._request_timeout_s):
                return await answer
        finally:
            self._pending.pop(request_id, None)

    async def _send(self, body: Event) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.send_json(body)

    async def _credential_now(self) -> str:
        credential = self._credential
        return credential if isinstance(credential, str) else await credential()

    async def _open(self) -> None:
        """One connection: hello, welcome, then the unanswered requests again."""
        assert self._http is not None
        ws = await self._http.ws_connect(self.url, heartbeat=None, autoping=True)
        hello = {
            "type": "hello",
            "version": VERSION,
            "token": await self._credential_now(),
            "session_id": self.session_id,
            "last_event": self._last_event,
        }
        await ws.send_json(hello)
        reply = await ws.receive_json()
        if reply.get("type") == "error":
            await ws.close()
            raise AgentError(reply)
        self.welcome = reply
        self.session_id = reply["session_id"]
        self._ws = ws
        self._connected.set()
        for body, _answer in list(self._pending.values()):
            await self._send(body)

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            ws = self._ws
            assert ws is not None
            opened_at = time.monotonic()
            heartbeat = asyncio.create_task(self._heartbeat(ws), name="agent-heartbeat")
            try:
                await self._read(ws)
            finally:
                heartbeat.cancel()
                self._connected.clear()
            if ws.close_code == CLOSE_CODES_NORMAL and self._ended is None:
                self._stop(SessionEnded("the session ended"))
            if self._ended is not None:
                return
            if time.monotonic() - opened_at >= RECONNECT_STABLE_AFTER_MS / 1000:
                attempt = 0
            attempt = await self._reconnect(attempt)

    async def _reconnect(self, attempt: int) -> int:
        """Connect again with backoff; the attempts made in a row so far."""
        wait_s = 0.0  # a rate limit's retry_after_s: not sooner than that
        while attempt < self._max_attempts:
            delay = backoff_delay(attempt, RECONNECT_BASE_MS / 1000, RECONNECT_CAP_MS / 1000)
            attempt += 1
            await asyncio.sleep(max(wait_s, delay))
            try:
                await asyncio.wait_for(self._open(), 15)
                self.reconnects += 1
                return attempt
            except AgentError as exc:
                if exc.code in FINAL_CODES:
                    self._stop(exc)
                    return attempt
                wait_s = float(exc.body.get("retry_after_s", 0))
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                log.info("agent_reconnect_failed", extra={"attempt": attempt, "error": repr(exc)})
        self._stop(ConnectionError(f"no connection after {attempt} attempts"))
        return attempt

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            body: Event = msg.json()
            request_id = body.get("id", "")
            if (pong := self._pings.get(request_id)) is not None:
                if not pong.done():
                    pong.set_result(body)
            elif (pending := self._pending.get(request_id)) is not None:
                _body, answer = pending
                if not answer.done():
                    if body["type"] == "error":
                        answer.set_exception(AgentError(body))
                    else:
                        answer.set_result(body)
            elif "event_id" in body:
                self._event(body)
            elif body.get("type") == "error":
                log.warning("agent_error", extra={"code": body.get("code")})

    def _event(self, event: Event) -> None:
        if event["event_id"] <= self._last_event:
            return  # resent after a reconnection, delivered already
        self._last_event = event["event_id"]
        self._put(event)

    def _put(self, event: Event | None) -> None:
        if self._events.full():
            self._events.get_nowait()
            self.events_dropped += 1
        self._events.put_nowait(event)

    def _stop(self, why: BaseException) -> None:
        if self._ended is not None:
            return
        self._ended = why
        self._put(None)
        for _body, answer in self._pending.values():
            if not answer.done():
                answer.set_exception(why)

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """A ping each interval keeps the server's watchdog content; a pong missing for the
        timeout means the server is unreachable: drop the connection and reconnect."""
        heartbeat = self.welcome["heartbeat"]
        interval_s, timeout_s = heartbeat["interval_ms"] / 1000, heartbeat["timeout_ms"] / 1000
        while not ws.closed:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.wait_for(self._ping(ws), timeout_s)
            except (TimeoutError, ConnectionError):
                log.info("agent_heartbeat_missed")
                await ws.close()
                return

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        request_id = next(self._ids)
        pong: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pings[request_id] = pong
        try:
            await ws.send_json({"type": "ping", "ts": time.time(), "id": request_id})
            await pong
        finally:
            self._pings.pop(request_id, None)


class StreamedUtterance:
    """Text written in pieces into one utterance; `end()` (or leaving the `async with`)
    finishes it. Pieces are joined as they are: send the spaces."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self.utterance_id: int | None = None
        self.ended = False

    async def __aenter__(self) -> "StreamedUtterance":
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if not self.ended and self.utterance_id is not None:
            with contextlib.suppress(AgentError, SessionEnded, ConnectionError):
                await self.end()

    async def write(self, text: str, final: bool = False) -> int:
        if self.ended:
            raise AgentError({"code": "UTTERANCE_CLOSED", "detail": "the utterance has ended"})
        body: Event = {"type": "speak", "text": text, "final": final}
        if self.utterance_id is not None:
            body["utterance_id"] = self.utterance_id
        reply = await self._agent.request(body)
        self.utterance_id = int(reply["utterance_id"])
        self.ended = final
        return self.utterance_id

    async def end(self, text: str = "") -> int:
        return await self.write(text, final=True)
