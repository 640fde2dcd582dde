"""Hostile clients for tests/test_floods.py, each at full speed from its own process (so that the
test's own event loop, which times the honest listener, is not the one they starve):

    python -m tests.attacker KIND URL SECONDS   -> prints how many messages it sent
"""

import asyncio
import contextlib
import json
import resource
import socket
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

ATTACKER_ADDRESS = "127.0.0.2"
IP_BIND_ADDRESS_NO_PORT = 24  # Linux's, not in Python's socket module
SLOW_REQUEST = b"GET / HTTP/1.1\r\nHost: voice-rtc\r\nX-Pad: " + b"a" * 4000


async def dev_token(http: aiohttp.ClientSession, url: str, user: str) -> str:
    async with http.get(url + "api/dev-token", params={"user": user}) as response:
        return str((await response.json())["token"])


async def hello(ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
    await ws.send_json({"type": "hello", "version": 1, "token": token})
    reply = await ws.receive_json()
    assert reply["type"] == "welcome", reply


async def blast(
    url: str,
    http: aiohttp.ClientSession,
    seconds: float,
    message: Callable[[int], str],
    say_hello: bool,
) -> int:
    """Send `message(n)` as fast as the socket takes it; the moment the server closes the
    socket (or refuses one), open another. Returns how many messages it sent."""
    replies = [0]
    sent_in_all = 0
    deadline = time.monotonic() + seconds
    token = await dev_token(http, url, "attacker")
    while time.monotonic() < deadline:
        try:
            async with http.ws_connect(url.replace("http://", "ws://") + "ws") as ws:
                if say_hello:
                    await hello(ws, token)
                reading = asyncio.ensure_future(count_replies(ws, replies))
                sent = 0
                while time.monotonic() < deadline and not reading.done():
                    for _ in range(100):
                        await ws.send_str(message(sent))
                        sent += 1
                        sent_in_all += 1
                    await asyncio.sleep(0)
                reading.cancel()
        except (aiohttp.ClientError, ConnectionError, AssertionError):
            await asyncio.sleep(0)  # refused or closed: straight back
    print(f"the server answered {replies[0]} of them", file=sys.stderr)
    return sent_in_all


async def count_replies(ws: aiohttp.ClientWebSocketResponse, replies: list[int]) -> None:
    """Read (and count) what the server says until it closes the socket."""
    async for _message in ws:
        replies[0] += 1


async def x_without_hello(url: str, http: aiohttp.ClientSession, s: float) -> int:
    return await blast(url, http, s, lambda _n: "x", say_hello=False)


async def speak_flood(url: str, http: aiohttp.ClientSession, s: float) -> int:
    return await blast(
        url, http, s, lambda n: json.dumps({"type": "speak", "text": f"{n}"}), say_hello=True
    )


async def one_char_pieces(url: str, http: aiohttp.ClientSession, s: float) -> int:
    def piece(n: int) -> str:
        if n % 1000 == 0:  # (re)open an utterance now and then; pieces go to utterance 1...
            return json.dumps({"type": "speak", "text": "a", "final": False})
        return json.dumps({"type": "speak", "text": "a", "utterance_id": 1, "final": False})

    return await blast(url, http, s, piece, say_hello=True)


async def ping_flood(url: str, http: aiohttp.ClientSession, s: float) -> int:
    return await blast(url, http, s, lambda n: f'{{"type": "ping", "ts": {n}}}', False)


async def empty_appends(url: str, http: aiohttp.ClientSession, s: float) -> int:
    def piece(n: int) -> str:
        if n % 1000 == 0:
            return json.dumps({"type": "speak", "text": "", "final": False})
        return json.dumps({"type": "speak", "text": "", "utterance_id": 1, "final": False})

    return await blast(url, http, s, piece, say_hello=True)


async def held_sockets(
    url: str, seconds: float, slow_headers: bool, count: int, pause_s: float = 0.005
) -> int:
    """Open `count` TCP connections (as many as this process may hold, at most) that send
    nothing, or a byte of a request now and then; hold them `seconds`. Plain non-blocking
    sockets: asyncio's own connections would cost this process more than the server. Says
    "opened N" on stderr once they are open, and at the end how many the server closed."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    sockets: list[socket.socket] = []
    for _ in range(min(count, hard - 200)):
        sock = socket.socket()
        sock.setblocking(False)
        # Pick the port at connect, not at bind: a bind to port 0 searches the whole range
        # each time, which costs more than the connection itself at these numbers.
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((ATTACKER_ADDRESS, 0))
        sock.connect_ex((host, int(port)))
        sockets.append(sock)
        if len(sockets) % 200 == 0:
            await asyncio.sleep(pause_s)  # the pace of the opening: 200 per pause
    print(f"opened {len(sockets)}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        if slow_headers:  # a request whose headers never end, a byte at a time (slowloris)
            byte = SLOW_REQUEST[sent % len(SLOW_REQUEST) : sent % len(SLOW_REQUEST) + 1]
            sent += 1
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(byte)
        await asyncio.sleep(0.5)
    closed = sum(1 for sock in sockets if _closed_by_peer(sock))
    print(f"{closed} of {len(sockets)} closed by the server", file=sys.stderr, flush=True)
    for sock in sockets:
        sock.close()
    return len(sockets)


def _closed_by_peer(sock: socket.socket) -> bool:
    """Has the server closed it (after whatever it said)?"""
    try:
        while sock.recv(65536):
            pass
        return True  # the end of the stream
    except BlockingIOError:
        return False  # open, nothing (more) to read
    except OSError:
        return True  # reset


ATTACKS: dict[str, Callable[[str, aiohttp.ClientSession, float], Awaitable[int]]] = {
    "x_without_hello": x_without_hello,
    "speak_flood": speak_flood,
    "one_char_pieces": one_char_pieces,
    "ping_flood": ping_flood,
    "empty_appends": empty_appends,
    "idle_sockets": lambda url, _http, s: held_sockets(url, s, slow_headers=False, count=20_000),
    # A slowloris opens its sockets at a pace the server accepts: none wait in SYN retries.
    "slow_headers": lambda url, _http, s: held_sockets(url, s, True, count=6_000, pause_s=0.05),
}


async def main(kind: str, url: str, seconds: float) -> None:
    # From an address of its own (all of 127/8 is loopback): the server's per-address budgets
    # then hold the attacker back, not the honest clients the test runs from 127.0.0.1.
    connector = aiohttp.TCPConnector(local_addr=(ATTACKER_ADDRESS, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        print(await ATTACKS[kind](url, http, seconds), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
