"""The worker processes that run the load clients: the bench's handle on one (`Worker`), and the
process itself (`run_worker`, started as `python -m voice_rtc.bench --worker CONFIG`). They
talk over the worker's stdin and stdout, one JSON line each way per step:

    worker -> bench   {"connected": n, "errors": [...]}                 all clients connected
    bench -> worker   {"start": t0, "end": t1}                          the window (monotonic)
    worker -> bench   {"speaking": Delivery, "silent": Delivery, ...}   then it closes them
"""

import asyncio
import collections
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from ..transports.webrtc import use_host_addresses
from . import BenchError
from .listener import LeanListener, Role
from .packets import Delivery, delivery
from .processes import REPO, STOP_TIMEOUT_S, stop_process
from .signaling import Refused

LAG_PROBE_S = 0.01
CONNECT_CONCURRENCY = 8  # per worker: parallel handshakes beyond this only queue on the CPU
PIPE_LIMIT = 1 << 24
PROBE_PAUSE_S = 0.3
KEEPALIVE_STEP_S = 0.01
CLOSE_TIMEOUT_S = STOP_TIMEOUT_S / 2  # then the process exits anyway, before the bench kills it


@dataclass(frozen=True)
class WorkerConfig:
    url: str
    transport: str
    codec: str
    speaking: int
    silent: int
    probes: int
    load_texts: list[str]
    probe_text: str
    positions: bool = True  # report played positions, as real listeners do
    patience_s: float = 20.0  # how long a client refused as busy keeps asking

    def roles(self) -> list[Role]:
        roles: list[Role] = ["probe"] * self.probes
        return roles + ["speaking"] * self.speaking + ["silent"] * self.silent


@dataclass
class WorkerResult:
    speaking: Delivery
    silent: Delivery
    ttfa_s: list[float]
    lags_s: list[float]
    dropped: int
    event_loop: str
    codecs: list[str]  # what the listeners' audio came as

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "WorkerResult":
        return cls(
            speaking=Delivery.from_json(body["speaking"]),
            silent=Delivery.from_json(body["silent"]),
            ttfa_s=list(body["ttfa_s"]),
            lags_s=list(body["lags_s"]),
            dropped=int(body["dropped"]),
            event_loop=str(body["event_loop"]),
            codecs=list(body["codecs"]),
        )


# --- the bench's side ---------------------------------------------------------------------


@dataclass
class Worker:
    """A `--worker` process running some of the clients."""

    process: asyncio.subprocess.Process
    config: WorkerConfig
    connected: int = 0
    errors: list[str] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        stack: contextlib.AsyncExitStack,
        config: WorkerConfig,
        setup: Callable[[], None] | None,
    ) -> "Worker":
        args = [sys.executable, "-m", "voice_rtc.bench", "--worker", json.dumps(asdict(config))]
        process = await asyncio.create_subprocess_exec(
            *args,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=PIPE_LIMIT,
            preexec_fn=setup,  # pinned, as the bench's Placement says
        )
        stack.push_async_callback(stop_process, process, STOP_TIMEOUT_S)  # it closes its clients
        return cls(process, config)

    async def ready(self) -> None:
        """Wait until every client of this worker has connected (or failed to)."""
        hello = await self._read()
        self.connected, self.errors = hello["connected"], hello["errors"]

    async def results(self, start: float, end: float) -> WorkerResult:
        """What arrived inside [start, end); the worker then closes its clients."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"start": start, "end": end}).encode() + b"\n")
        await self.process.stdin.drain()
        return WorkerResult.from_json(await self._read())

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


async def _keep_alive(listeners: list[LeanListener], positions: bool) -> None:
    """One task for every listener's position reports and pings (not one per listener),
    spread over the interval in KEEPALIVE_STEP_S slices: real listeners are not in step, and a
    burst of hundreds of messages at once would stall both ends for a while. `listeners` grows
    as they connect: a crowd let in over a minute is kept alive from the first one on."""
    step = 0
    while True:
        interval = listeners[0].position_interval() if listeners and positions else 1.0
        slices = max(1, round(interval / KEEPALIVE_STEP_S))
        await asyncio.sleep(interval / slices)
        now = time.monotonic()
        for listener in listeners[step % slices :: slices]:
            listener.keepalive(now, positions)
        step += 1


async def _connect(
    listener: LeanListener,
    http: aiohttp.ClientSession,
    texts: list[str],
    limit: asyncio.Semaphore,
    patience_s: float,
    connected: list[LeanListener],
) -> str | None:
    """Connect (and, for a speaking listener, ask for the load's speech); the error, or None.
    Refused as busy, it asks again when told to, as a real client does, for a while. Once up,
    it is in `connected` (and out again if asking for speech fails)."""
    give_up = time.monotonic() + patience_s
    try:
        while True:
            try:
                async with limit:
                    await listener.connect(http)
                connected.append(listener)
                break
            except Refused as exc:
                wait_s = float(exc.body.get("retry_after_s", 1.0)) * random.uniform(1.0, 1.5)
                if exc.code != "SERVER_BUSY" or time.monotonic() + wait_s > give_up:
                    raise
                await listener.close()
                await asyncio.sleep(wait_s)
        if listener.role == "speaking":
            for text in texts:
                await listener.speak(text)
    except Exception as exc:
        if listener in connected:
            connected.remove(listener)
        return exc.code if isinstance(exc, Refused) else f"{type(exc).__name__}: {exc}"
    return None


def _merge(listeners: list[LeanListener], start: float, end: float) -> Delivery:
    total = Delivery()
    for listener in listeners:
        total.add(delivery(listener.log, start, end))
    return total


async def run_worker(config: WorkerConfig) -> None:
    """Connect the clients, report, wait for the window on stdin, report arrivals, close."""
    loop = asyncio.get_running_loop()
    use_host_addresses(["127.0.0.1"])  # aioice skips loopback by default
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    listeners = [
        LeanListener(config.url, config.transport, config.codec, role) for role in config.roles()
    ]
    lags: list[tuple[float, float]] = []
    tasks = [asyncio.create_task(_lag_probe(lags))]
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    http = aiohttp.ClientSession()
    ok: list[LeanListener] = []
    tasks.append(asyncio.create_task(_keep_alive(ok, config.positions)))
    try:
        errors = await asyncio.gather(
            *(
                _connect(listener, http, config.load_texts, limit, config.patience_s, ok)
                for listener in listeners
            )
        )
        _emit({"connected": len(ok), "errors": [e for e in errors if e is not None]})
        tasks += [
            asyncio.create_task(li.probe(config.probe_text, PROBE_PAUSE_S))
            for li in ok
            if li.role == "probe"
        ]
        line = await stdin.readline()
        if not line:
            return  # the bench went away
        window = json.loads(line)
        start, end = window["start"], window["end"]
        result = WorkerResult(
            speaking=_merge([li for li in ok if li.role == "speaking"], start, end),
            silent=_merge([li for li in ok if li.role == "silent"], start, end),
            ttfa_s=[s for li in ok for at, s in li.ttfa if start <= at < end],
            lags_s=[lag for t, lag in lags if start <= t < end],
            dropped=sum(li.dropped for li in ok),
            event_loop=type(loop).__module__.split(".")[0],
            codecs=sorted({li.codec for li in ok}),
        )
        _emit(asdict(result))
    finally:
        await http.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        closing = asyncio.gather(*(li.close() for li in listeners), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)


def error_counts(errors: list[str]) -> dict[str, int]:
    return dict(collections.Counter(errors))


def _emit(body: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(body) + "\n")
    sys.stdout.flush()
