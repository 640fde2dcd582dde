"""A TCP proxy on loopback that tests can break: put it between a browser and a server (HTTP and
WebSocket), then cut every connection it carries, as a network drop does, or stall them, as a
network that goes silent without closing anything does. Connections made afterwards work.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

_CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's side and the server's."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    stalled: asyncio.Event = field(default_factory=asyncio.Event)

    def cut(self) -> None:
        # abort(), not close(): no orderly shutdown, what is in flight is lost.
        self.client.transport.abort()
        self.server.transport.abort()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def retarget(self, host: str, port: int) -> None:
        """New connections go there from now on (a load balancer picking another server)."""
        self._target = (host, port)

    def cut(self) -> int:
        """Drop every connection open now; returns how many there were."""
        links = list(self._links)
        for link in links:
            link.cut()
        return len(links)

    def stall(self) -> int:
        """Stop carrying anything, even a close, on every connection open now; returns how
        many. Only heartbeats can tell such a connection is dead."""
        links = list(self._links)
        for link in links:
            link.stalled.set()
        return len(links)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, upstream_writer)
        self._links.add(link)
        pumps = [
            self._spawn(self._pump(link, reader, upstream_writer)),
            self._spawn(self._pump(link, upstream_reader, writer)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        if not link.stalled.is_set():
            link.cut()  # one side closed: so does the other, as a direct connection would
        await asyncio.gather(*pumps, return_exceptions=True)
        self._links.discard(link)

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(_CHUNK):
                if link.stalled.is_set():
                    continue  # swallowed, as by a network that went silent
                writer.write(data)
                await writer.drain()
        if link.stalled.is_set():
            await asyncio.Event().wait()  # nor does a close get through; close() ends this

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


@contextlib.asynccontextmanager
async def tcp_proxy(target_host: str, target_port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
