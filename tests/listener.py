"""A VoiceClient for tests: it keeps every state, transport change, utterance event, word event,
error and server message it went through, waits for them, says something and waits until it was
heard, and loses its connection as a network failure would. What tests ask of a listener, not
what an app needs."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from voice_rtc.client import (
    ClientState,
    ErrorBody,
    StateDetail,
    TransportEvent,
    UtteranceEvent,
    VoiceClient,
    Word,
)
from voice_rtc.client.signaling import Message


class Listener(VoiceClient):
    """A VoiceClient that remembers, waits, says and drops (see the module comment)."""

    def __init__(self, server_url: str, **options: Any) -> None:
        """`options` as VoiceClient's."""
        super().__init__(server_url, **options)
        self.states: list[StateDetail] = []  # every state it went through, in order
        self.transports: list[TransportEvent] = []
        self.events: list[UtteranceEvent] = []  # utterance events, in order, each once
        self.errors: list[ErrorBody] = []  # error events: errors that answered no request
        self.words: list[Word | None] = []  # word events, in order
        # The server's messages that answered no request, as they came (resent ones too).
        self.messages: list[Message] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.on("state", lambda detail: self._keep(self.states, detail))
        self.on("transport", lambda event: self._keep(self.transports, event))
        self.on("utterance", lambda event: self._keep(self.events, event))
        self.on("error", lambda body: self._keep(self.errors, body))
        self.on("word", lambda word: self._keep(self.words, word))

    @property
    def state_names(self) -> list[ClientState]:
        """The names of the states it went through."""
        return [detail.state for detail in self.states]

    async def wait_for_state(self, *states: ClientState, timeout: float = 30.0) -> StateDetail:
        """Wait until the client is in one of `states` (at once if it is); its detail."""
        await self._until(lambda: self.state in states, timeout)
        return self.state_detail

    async def wait_until_up(self, timeout: float = 30.0) -> StateDetail:
        """Wait until speech can play again: connected, or degraded."""
        return await self.wait_for_state("connected", "degraded", timeout=timeout)

    async def wait_for_event(
        self, type_: str, utterance_id: int, timeout: float = 30.0
    ) -> UtteranceEvent:
        """Wait for the utterance event `type_` of `utterance_id` (at once if it came)."""

        def find() -> UtteranceEvent | None:
            for event in self.events:
                if event["type"] == type_ and event["utterance_id"] == utterance_id:
                    return event
            return None

        await self._until(lambda: find() is not None, timeout)
        event = find()
        assert event is not None
        return event

    async def say(self, text: str, tail: float = 0.3, timeout: float = 60.0) -> UtteranceEvent:
        """Speak `text`; wait until it has all been sent, then `tail` seconds for it to arrive."""
        utterance_id = await self.speak(text)
        ended = await self.wait_for_event("utterance_ended", utterance_id, timeout)
        await asyncio.sleep(tail)
        return ended

    async def drop(self) -> None:
        """Lose the connection as a network failure would; returns once the client noticed
        (it is then reconnecting, or failed)."""
        signaling = self._signaling  # the library's own: only a test cuts it from inside
        assert signaling is not None, "not connected"
        await signaling.close()
        await self.wait_for_state("reconnecting", "failed", "closed", timeout=10)

    def _receive(self, body: Message) -> None:
        self.messages.append(body)
        super()._receive(body)

    def _keep(self, into: list[Any], item: object) -> None:
        into.append(item)
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    async def _until(self, predicate: Callable[[], bool], timeout: float) -> None:
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            self._waiters.remove(waiter)


def spy_on_rtp(receiver: RTCRtpReceiver) -> list[tuple[float, RtpPacket]]:
    """Every RTP packet aiortc's receiver takes from now on (after SRTP), and when: the receiver
    goes on with each as ever (it decodes, plays, and sends its receiver reports)."""
    received: list[tuple[float, RtpPacket]] = []
    handle = receiver._handle_rtp_packet

    async def spied(packet: RtpPacket, arrival_time_ms: int) -> None:
        received.append((time.monotonic(), packet))
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = spied  # type: ignore[method-assign]
    return received
