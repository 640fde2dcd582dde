"""A minimal WebSocket client (RFC 6455) on a bare asyncio protocol, for the load clients.

aiohttp's client costs an async iteration, a message object and a task switch per message; a
load client receiving 50 binary messages a second on each of a thousand sockets cannot afford
that. This one parses frames straight out of `data_received` and hands each message to a plain
callback with the time its bytes arrived. It does what a listener needs and no more: no
extensions (it offers none, so the server compresses nothing), no subprotocols, text and
binary messages, ping answered with pong, close.
"""

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
MAX_MESSAGE_BYTES = 1 << 22


class HandshakeError(ConnectionError):
    pass


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR `payload` with the 4-byte `key` repeated (one big-integer XOR, not a byte loop)."""
    n = len(payload)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: final, masked (clients must mask)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + _U16.pack(n)
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + _U64.pack(n)
    key = os.urandom(4)
    return header + key + mask(payload, key)


class RawWebSocket(asyncio.Protocol):
    """One client connection. Set `on_text` and `on_binary` before messages can arrive (they
    are called from `data_received`, with the arrival time of the read that brought them)."""

    def __init__(self) -> None:
        self.on_text: Callable[[str], None] = lambda _text: None
        self.on_binary: Callable[[bytes, float], None] = lambda _data, _at: None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._handshake: asyncio.Future[None] | None = None
        self._expected_accept = b""
        self._open = False  # the handshake is done
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0

    @classmethod
    async def connect(cls, url: str, timeout: float = 10.0) -> "RawWebSocket":
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError(f"only ws:// URLs (loopback benchmarks): {url}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        loop = asyncio.get_running_loop()
        protocol = cls()
        await asyncio.wait_for(loop.create_connection(lambda: protocol, host, port), timeout)
        await asyncio.wait_for(protocol._start(parts.netloc, parts.path or "/"), timeout)
        return protocol

    async def _start(self, netloc: str, path: str) -> None:
        assert self._transport is not None
        key = base64.b64encode(os.urandom(16))
        self._expected_accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self._handshake = asyncio.get_running_loop().create_future()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self._transport.write(request.encode())
        await self._handshake

    # --- sending ----------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("the WebSocket is closed")
        self._transport.write(encode_frame(OP_TEXT, text.encode()))

    async def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(encode_frame(OP_CLOSE, _U16.pack(1000)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), 1.0)
            self._transport.close()

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(HandshakeError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        if self._open and not self._buffer:  # the usual case: whole messages, parsed in place
            used = self._parse(data, at)
            if used < len(data):
                self._buffer += data[used:]
            return
        self._buffer += data
        if not self._open and not self._parse_handshake():
            return
        used = self._parse(self._buffer, at)
        del self._buffer[:used]

    def _parse(self, buffer: bytes | bytearray, at: float) -> int:
        """Hand on every whole frame in `buffer`; returns how many bytes they took."""
        offset = 0
        end = len(buffer)
        while end - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length = second & 0x7F
            start = offset + 2
            if length == 126:
                if end - start < 2:
                    break
                length = _U16.unpack_from(buffer, start)[0]
                start += 2
            elif length == 127:
                if end - start < 8:
                    break
                length = _U64.unpack_from(buffer, start)[0]
                start += 8
            if second & 0x80:  # a server must not mask; skip its key if it does anyway
                start += 4
            if length > MAX_MESSAGE_BYTES:
                self._fail()
                return end
            if end - start < length:
                break
            offset = start + length
            if first == 0x82:  # a whole binary message: the hot path, straight on
                self.on_binary(bytes(buffer[start:offset]), at)
            else:
                self._frame(first, bytes(buffer[start:offset]), at)
        return offset

    # --- internals --------------------------------------------------------------------------

    def _parse_handshake(self) -> bool:
        assert self._handshake is not None
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        head = bytes(self._buffer[:head_end]).decode("latin-1")
        del self._buffer[: head_end + 4]
        status, *lines = head.split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }
        if " 101 " not in f"{status} ":
            self._handshake.set_exception(HandshakeError(f"upgrade refused: {status}"))
            self._fail()
            return False
        if headers.get("sec-websocket-accept", "").encode() != self._expected_accept:
            self._handshake.set_exception(HandshakeError("bad Sec-WebSocket-Accept"))
            self._fail()
            return False
        self._handshake.set_result(None)
        self._open = True
        return True

    def _frame(self, first: int, payload: bytes, at: float) -> None:
        opcode = first & 0x0F
        final = first & 0x80
        if opcode == OP_BINARY and final:
            self.on_binary(payload, at)
        elif opcode == OP_TEXT and final:
            self.on_text(payload.decode())
        elif opcode in (OP_TEXT, OP_BINARY):
            self._fragments, self._fragment_opcode = [payload], opcode
        elif opcode == OP_CONTINUATION:
            self._fragments.append(payload)
            if final:
                whole = b"".join(self._fragments)
                self._fragments = []
                if self._fragment_opcode == OP_TEXT:
                    self.on_text(whole.decode())
                else:
                    self.on_binary(whole, at)
        elif opcode == OP_PING and self._transport is not None:
            self._transport.write(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE and self._transport is not None:
            if not self._transport.is_closing():
                self._transport.write(encode_frame(OP_CLOSE, payload[:2]))
                self._transport.close()

    def _fail(self) -> None:
        if self._transport is not None:
            self._transport.close()
