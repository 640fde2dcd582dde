"""The server's event loop: asyncio's, on an epoll that hands it at most so many ready sockets
per turn.

asyncio runs every callback that is ready in one turn of its loop, and epoll says every socket
that is ready: when thousands become ready together (a crowd that disconnects at once, an
attack that opens or drops sockets by the thousand), one turn runs them all, however long that
takes, and the clock's tick waits behind it. With a cap, the rest are simply still ready next
turn (epoll is level-triggered, as asyncio uses it) and the tick takes its place in between.
"""

import asyncio
import select
import selectors
from typing import Any, Final

MAX_EVENTS_PER_TURN: Final = 256


class _CappedEpoll:
    """An epoll object whose `poll` returns at most `cap` events."""

    def __init__(self, epoll: "select.epoll", cap: int) -> None:
        self._epoll = epoll
        self._cap = cap

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        return self._epoll.poll(timeout, min(maxevents, self._cap) if maxevents > 0 else self._cap)

    def __getattr__(self, name: str) -> Any:  # register, modify, unregister, fileno, close
        return getattr(self._epoll, name)


class CappedEpollSelector(selectors.EpollSelector):
    def __init__(self, cap: int = MAX_EVENTS_PER_TURN) -> None:
        super().__init__()
        # The one attribute of selectors.EpollSelector this reaches: the epoll it polls
        # (tests/test_library_internals.py checks it is still there).
        self._selector = _CappedEpoll(self._selector, cap)  # type: ignore[has-type,arg-type]


def new_event_loop() -> asyncio.AbstractEventLoop:
    return asyncio.SelectorEventLoop(CappedEpollSelector())
