"""The worker processes that run the clients: the bench's handle on one (`Worker`), and the
process itself (`run_worker`). They talk over the worker's stdin and stdout, one JSON line each
way per step."""

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ..client import VoiceClient
from . import BenchError
from .processes import REPO, STOP_TIMEOUT_S, stop_process

LAG_PROBE_S = 0.01
CONNECT_CONCURRENCY = 5  # per worker: parallel handshakes beyond this only queue up on the CPU
PIPE_LIMIT = 1 << 26  # a worker's result is one JSON line with every arrival time


# --- the bench's side ---------------------------------------------------------------------


@dataclass
class Worker:
    """A `--worker` process running some of the clients."""

    process: asyncio.subprocess.Process
    connected: int = 0
    errors: list[str] = field(default_factory=list)

    @classmethod
    async def start(
        cls, stack: contextlib.AsyncExitStack, url: str, sessions: int, speaking: int
    ) -> "Worker":
        args = [sys.executable, "-m", "voice_rtc.bench", "--worker", str(speaking)]
        args += ["--url", url, "--sessions", str(sessions)]
        process = await asyncio.create_subprocess_exec(
            *args,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=PIPE_LIMIT,
        )
        stack.push_async_callback(stop_process, process, STOP_TIMEOUT_S)  # it closes its clients
        return cls(process)

    async def ready(self) -> None:
        """Wait until every client of this worker has connected (or failed to)."""
        hello = await self._read()
        self.connected, self.errors = hello["connected"], hello["errors"]

    async def results(self, start: float, end: float) -> dict[str, Any]:
        """Arrival times and loop lags inside [start, end); the worker then closes its clients."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"start": start, "end": end}).encode() + b"\n")
        await self.process.stdin.drain()
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise BenchError(f"bench worker {self.process.pid} exited")
        body: dict[str, Any] = json.loads(line)
        return body


# --- a worker process ---------------------------------------------------------------------


async def _lag_probe(lags: list[tuple[float, float]]) -> None:
    """Record (when, how late) each short sleep of this event loop woke up."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(LAG_PROBE_S)
        now = time.monotonic()
        lags.append((now, now - before - LAG_PROBE_S))


async def _connect(client: VoiceClient, speak: str | None, limit: asyncio.Semaphore) -> str | None:
    """Connect (and start speaking); the error as text, or None."""
    try:
        async with limit:
            await client.connect()
        if speak is not None:
            await client.speak(speak)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def run_worker(url: str, sessions: int, speaking: int, utterance_s: float = 3600) -> None:
    """Connect the clients, report, wait for the window on stdin, report arrivals, close."""
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    text = f"440hz {utterance_s:.0f}s"
    clients = [VoiceClient(url) for _ in range(sessions)]
    lags: list[tuple[float, float]] = []
    probe = asyncio.create_task(_lag_probe(lags))
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    try:
        errors = await asyncio.gather(
            *(_connect(c, text if i < speaking else None, limit) for i, c in enumerate(clients))
        )
        ok = [c for c, error in zip(clients, errors, strict=True) if error is None]
        _emit({"connected": len(ok), "errors": [e for e in errors if e is not None]})
        line = await stdin.readline()
        if not line:
            return  # the bench went away
        window = json.loads(line)
        start, end = window["start"], window["end"]
        _emit(
            {
                "arrivals": [[t for t in c.recording.arrivals if start <= t < end] for c in ok],
                "lags": [lag for t, lag in lags if start <= t < end],
            }
        )
    finally:
        probe.cancel()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def _emit(body: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(body) + "\n")
    sys.stdout.flush()
