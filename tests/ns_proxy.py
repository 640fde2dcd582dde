"""A TCP proxy from inside a network namespace to this one's loopback: a browser in the
namespace opens `http://127.0.0.1:<port>/` (a secure context, where AudioWorklets exist) and
reaches a server listening on 127.0.0.1 out here, which stays in dev mode.

The listening socket is made inside the namespace (setns(2) for the calling thread, and back):
a socket belongs to the namespace it was created in, whichever thread then uses it.
"""

import asyncio
import contextlib
import ctypes
import os
import socket
from collections.abc import AsyncIterator

from tests.tcp_proxy import TcpProxy

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def listening_socket_in(namespace: str) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 (a free port) inside `namespace`."""
    with open(f"/var/run/netns/{namespace}") as target, open("/proc/thread-self/ns/net") as home:
        _setns(target.fileno())
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            sock.setblocking(False)
        finally:
            _setns(home.fileno())
    return sock


class NamespaceProxy(TcpProxy):
    """TcpProxy (cut, stall) listening in `namespace`, connecting out here."""

    def __init__(self, namespace: str, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._namespace = namespace

    async def start(self) -> None:
        sock = listening_socket_in(self._namespace)
        self._server = await asyncio.start_server(self._accept, sock=sock)
        self.port = sock.getsockname()[1]


@contextlib.asynccontextmanager
async def namespace_proxy(
    namespace: str, target_host: str, target_port: int
) -> AsyncIterator[NamespaceProxy]:
    proxy = NamespaceProxy(namespace, target_host, target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
