"""Load benchmark: N WebRTC listeners on loopback, all hearing speech, for T seconds.

    python -m voice_rtc.bench --sessions 10 --seconds 20          # starts its own server
    python -m voice_rtc.bench --url http://127.0.0.1:8080 --server-pid 1234 --json

Each listener is a `VoiceClient` (a real aiortc peer that decodes every packet). The clients run
in worker processes (`python -m voice_rtc.bench --worker ...`, one asyncio loop each) so that the
load client is less likely to be the bottleneck; the report shows the clients' CPU and event-loop
lag next to the server's so a reader can tell which side saturated. After every session has
connected and a warm-up, one measuring window of T seconds yields:

- frames delivered to the clients in the window vs T / 20 ms per session;
- the server's pacing lateness, from the delta of its `voice_rtc_pacing_lateness_seconds`
  histogram between a scrape at each end of the window (bucket resolution);
- the inter-arrival jitter at the clients, |gap between consecutive frames - 20 ms|;
- the server's CPU per session per second of audio, its RSS, and the clients' CPU.
"""

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np
import psutil  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from .audio import FRAME_MS
from .client import VoiceClient

Result = TypeVar("Result")
REPO = Path(__file__).resolve().parent.parent
FRAME_S = FRAME_MS / 1000
PACING_BUCKET = "voice_rtc_pacing_lateness_seconds_bucket"
FRAMES_SENT = "voice_rtc_audio_frames_sent_total"
LAG_PROBE_S = 0.01
CONNECT_CONCURRENCY = 5  # per worker: parallel handshakes beyond this only queue up on the CPU
STOP_TIMEOUT_S = 10.0
PIPE_LIMIT = 1 << 26  # a worker's result is one JSON line with every arrival time


class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Options:
    sessions: int = 10
    seconds: float = 20.0
    url: str | None = None
    server_pid: int | None = None
    speaking_fraction: float = 1.0
    sessions_per_worker: int = 25
    warmup: float = 2.0


@dataclass
class Report:
    sessions_requested: int
    sessions_connected: int
    speaking_sessions: int
    workers: int
    window_s: float
    frames_expected: int
    frames_delivered: int
    delivery_ratio: float
    server_speech_frames: int
    server_silence_frames: int
    pacing_p50_ms: float | None
    pacing_p99_ms: float | None
    pacing_bounds_ms: list[float]  # the histogram's finite bucket bounds: its resolution
    jitter_p50_ms: float | None
    jitter_p99_ms: float | None
    server_cpu_ms_per_session_s: float | None  # CPU ms per session per second of the window
    server_cpu_ms_per_sent_s: float | None  # CPU ms per second of audio the server sent
    server_cpu_percent: float | None  # of one core
    server_rss_mb: float | None
    client_cpu_percent: float  # of one core, all worker processes together
    client_cpu_busiest_percent: float  # the busiest worker process
    client_loop_lag_p99_ms: float | None
    machine_cpu_percent: float  # every core busy = 100
    other_cpu_percent: float  # of one core, outside the bench (and the server, if pid unknown)
    cpu_count: int
    connect_errors: list[str] = field(default_factory=list)
    server_log: str | None = None  # where the server's stderr went, when it logged anything


# --- the server's metrics ---------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    pacing_buckets: dict[float, float]  # upper bound -> cumulative count
    frames_sent: dict[str, float]  # kind (speech, silence) -> count, over every transport


def parse_metrics(text: str) -> Scrape:
    buckets: dict[float, float] = {}
    frames: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == PACING_BUCKET:
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == FRAMES_SENT:
                kind = sample.labels["kind"]
                frames[kind] = frames.get(kind, 0.0) + sample.value
    return Scrape(buckets, frames)


def bucket_delta(start: Scrape, end: Scrape) -> list[tuple[float, float]]:
    """Cumulative bucket counts observed between two scrapes, by ascending upper bound."""
    return [
        (bound, count - start.pacing_buckets.get(bound, 0.0))
        for bound, count in sorted(end.pacing_buckets.items())
    ]


def histogram_quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """Like Prometheus: linear within the bucket holding the q-th observation; a quantile in the
    +Inf bucket is reported as the highest finite bound. None without observations."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


async def scrape(http: aiohttp.ClientSession, url: str) -> Scrape:
    async with http.get(url.rstrip("/") + "/metrics") as response:
        response.raise_for_status()
        return parse_metrics(await response.text())


# --- processes ----------------------------------------------------------------------------


async def stop_process(process: asyncio.subprocess.Process, grace: float = 0.0) -> None:
    """Close its stdin and give it `grace` seconds to exit by itself; then SIGTERM, then SIGKILL
    if it has not exited within STOP_TIMEOUT_S."""
    if process.stdin is not None:
        process.stdin.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()


async def start_server(stack: contextlib.AsyncExitStack, log_path: Path) -> tuple[str, int]:
    """Start `server.py` with the tone provider on a free loopback port; (url, pid)."""
    args = [sys.executable, str(REPO / "server.py"), "--host", "127.0.0.1", "--port", "0"]
    args += ["--tts", "tone", "--log-level", "WARNING"]
    # Every listener connects from this one address: lift the per-address and capacity limits.
    args += ["--limit-connections-per-minute", "100000", "--max-sessions", "100000"]
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=log
        )
    stack.push_async_callback(stop_process, process)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    if not line:
        raise BenchError(f"the server did not start; its log is {log_path}")
    return line.decode().split()[-1], process.pid


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


@dataclass(frozen=True)
class Usage:
    """A snapshot of the clock and of the CPU seconds each process has used so far."""

    at: float  # time.monotonic()
    server: float | None  # None: the server's pid is unknown
    clients: list[float]  # one per worker process
    metrics: Scrape

    @classmethod
    async def take(
        cls,
        server: psutil.Process | None,
        clients: Sequence[psutil.Process],
        http: aiohttp.ClientSession,
        url: str,
    ) -> "Usage":
        at = time.monotonic()
        cpu = [cpu_seconds(c) for c in clients]
        return cls(at, cpu_seconds(server) if server else None, cpu, await scrape(http, url))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1000 if len(values) else None


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# --- the benchmark ------------------------------------------------------------------------


def split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal whole numbers."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def run_bench(options: Options) -> Report:
    n = options.sessions
    worker_count = max(1, math.ceil(n / options.sessions_per_worker))
    speaking = round(n * options.speaking_fraction)
    log_path = Path(tempfile.gettempdir()) / f"voice-rtc-bench-server-{os.getpid()}.log"
    async with contextlib.AsyncExitStack() as stack:
        server_pid: int | None
        if options.url is None:
            url, server_pid = await start_server(stack, log_path)
        else:
            url, server_pid = options.url, options.server_pid
        server = psutil.Process(server_pid) if server_pid is not None else None
        http = await stack.enter_async_context(aiohttp.ClientSession())

        shares = zip(split(n, worker_count), split(speaking, worker_count), strict=True)
        workers = [await Worker.start(stack, url, size, talk) for size, talk in shares]
        await asyncio.gather(*(worker.ready() for worker in workers))
        if not any(worker.connected for worker in workers):
            raise BenchError(f"no session connected: {workers[0].errors[0]}")
        clients = [psutil.Process(worker.process.pid) for worker in workers]
        await asyncio.sleep(options.warmup)

        psutil.cpu_percent()  # starts the machine-wide measurement
        first = await Usage.take(server, clients, http, url)
        await asyncio.sleep(options.seconds)
        last = await Usage.take(server, clients, http, url)
        machine_cpu = psutil.cpu_percent()
        rss_mb = server.memory_info().rss / 1e6 if server else None
        results = await asyncio.gather(*(w.results(first.at, last.at) for w in workers))
    server_logged = log_path.exists() and log_path.stat().st_size > 0
    if not server_logged:
        log_path.unlink(missing_ok=True)

    window = last.at - first.at
    connected = sum(worker.connected for worker in workers)
    arrivals: list[list[float]] = [a for result in results for a in result["arrivals"]]
    jitter = [abs(b - a - FRAME_S) for times in arrivals for a, b in itertools.pairwise(times)]
    lags = [lag for result in results for lag in result["lags"]]
    expected = round(connected * window / FRAME_S)
    delivered = sum(len(a) for a in arrivals)
    pacing = bucket_delta(first.metrics, last.metrics)
    sent = {
        kind: round(
            last.metrics.frames_sent.get(kind, 0.0) - first.metrics.frames_sent.get(kind, 0.0)
        )
        for kind in ("speech", "silence")
    }
    client_cpu = [(b - a) / window * 100 for a, b in zip(first.clients, last.clients, strict=True)]
    server_s = None if first.server is None or last.server is None else last.server - first.server
    server_percent = None if server_s is None else server_s / window * 100
    audio_sent_s = max(sent["speech"] + sent["silence"], 1) * FRAME_S
    expected_s = connected * window
    cpu_count = psutil.cpu_count() or 1
    return Report(
        sessions_requested=n,
        sessions_connected=connected,
        speaking_sessions=speaking,
        workers=worker_count,
        window_s=window,
        frames_expected=expected,
        frames_delivered=delivered,
        delivery_ratio=delivered / expected if expected else 0.0,
        server_speech_frames=sent["speech"],
        server_silence_frames=sent["silence"],
        pacing_p50_ms=ms(histogram_quantile(0.5, pacing)),
        pacing_p99_ms=ms(histogram_quantile(0.99, pacing)),
        pacing_bounds_ms=[bound * 1000 for bound, _ in pacing if not math.isinf(bound)],
        jitter_p50_ms=percentile_ms(jitter, 50),
        jitter_p99_ms=percentile_ms(jitter, 99),
        server_cpu_ms_per_session_s=None if server_s is None else server_s * 1000 / expected_s,
        server_cpu_ms_per_sent_s=None if server_s is None else server_s * 1000 / audio_sent_s,
        server_cpu_percent=server_percent,
        server_rss_mb=rss_mb,
        client_cpu_percent=sum(client_cpu),
        client_cpu_busiest_percent=max(client_cpu),
        client_loop_lag_p99_ms=percentile_ms(lags, 99),
        machine_cpu_percent=machine_cpu,
        other_cpu_percent=machine_cpu * cpu_count - sum(client_cpu) - (server_percent or 0.0),
        cpu_count=cpu_count,
        connect_errors=[e for worker in workers for e in worker.errors],
        server_log=str(log_path) if server_logged else None,
    )


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def _bucketed_ms(value: float | None, bounds: Sequence[float]) -> str:
    """`value` and the histogram bucket it was interpolated in, e.g. `0.42 (0.25-0.5)`."""
    if value is None:
        return "unknown"
    upper = bisect.bisect_left(bounds, value)
    lower = f"{bounds[upper - 1]:g}" if upper else "0"
    return f"{value:.2f} ({lower}-{bounds[upper]:g})" if upper < len(bounds) else f"{value:.2f}+"


def format_report(r: Report) -> str:
    unknown = "unknown (no --server-pid)"
    cpu = unknown if r.server_cpu_percent is None else f"{r.server_cpu_percent:.1f}% of one core"
    cpu_per_session = (
        unknown
        if r.server_cpu_ms_per_session_s is None
        else f"{r.server_cpu_ms_per_session_s:.2f} ms "
        f"({r.server_cpu_ms_per_sent_s:.2f} ms per second of audio it sent)"
    )
    rss = unknown if r.server_rss_mb is None else f"{r.server_rss_mb:.1f} MB"
    rows = [
        ("sessions connected", f"{r.sessions_connected} / {r.sessions_requested}"),
        ("sessions speaking", f"{r.speaking_sessions}"),
        ("measuring window", f"{r.window_s:.2f} s"),
        (
            "frames delivered / expected",
            f"{r.frames_delivered} / {r.frames_expected} ({r.delivery_ratio:.3f})",
        ),
        (
            "server frames sent",
            f"speech {r.server_speech_frames}, silence {r.server_silence_frames}",
        ),
        (
            "server pacing error p50 / p99",
            f"{_bucketed_ms(r.pacing_p50_ms, r.pacing_bounds_ms)} / "
            f"{_bucketed_ms(r.pacing_p99_ms, r.pacing_bounds_ms)} ms",
        ),
        ("client jitter p50 / p99", f"{_ms(r.jitter_p50_ms)} / {_ms(r.jitter_p99_ms)} ms"),
        ("server CPU", cpu),
        ("server CPU per session-second", cpu_per_session),
        ("server RSS at end", rss),
        (
            "client CPU",
            f"{r.client_cpu_percent:.1f}% of one core in {r.workers} worker process(es), "
            f"busiest {r.client_cpu_busiest_percent:.1f}%",
        ),
        ("client event-loop lag p99", f"{_ms(r.client_loop_lag_p99_ms)} ms"),
        (
            "machine CPU",
            f"{r.machine_cpu_percent:.1f}% of {r.cpu_count} cores; "
            f"{r.other_cpu_percent:.0f}% of one core outside the bench",
        ),
    ]
    lines = [f"{label:<31} {value}" for label, value in rows]
    lines += [
        "",
        "pacing error: the server's lateness histogram over the window, interpolated linearly",
        "within the bucket (in brackets, ms): bucket resolution, no finer.",
        "jitter: |gap between consecutive frames - 20 ms| at the clients.",
    ]
    if r.connect_errors:
        lines.append(f"connect errors ({len(r.connect_errors)}): {r.connect_errors[0]}")
    if r.server_log:
        lines.append(f"the server logged warnings: {r.server_log}")
    return "\n".join(lines)


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


# --- command line -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voice_rtc.bench",
        description="Benchmark a voice-rtc server with N WebRTC listeners hearing speech.",
    )
    defaults = Options()
    parser.add_argument("--sessions", type=int, default=defaults.sessions, help="listeners")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="window length")
    parser.add_argument("--url", help="bench this running server instead of starting one")
    parser.add_argument("--server-pid", type=int, help="its pid, for CPU and RSS (with --url)")
    parser.add_argument(
        "--speaking-fraction",
        type=float,
        default=defaults.speaking_fraction,
        help="share of the sessions that speak; the rest receive silence",
    )
    parser.add_argument(
        "--sessions-per-worker",
        type=int,
        default=defaults.sessions_per_worker,
        help="clients per worker process",
    )
    parser.add_argument(
        "--warmup", type=float, default=defaults.warmup, help="seconds after connecting"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--worker", type=int, metavar="SPEAKING", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.seconds <= 0 or args.sessions_per_worker < 1:
        parser.error("--sessions, --seconds and --sessions-per-worker must be positive")
    if not 0 <= args.speaking_fraction <= 1:
        parser.error("--speaking-fraction must be between 0 and 1")
    return args


async def _cancel_on_sigterm(work: Coroutine[Any, Any, Result]) -> Result:
    """Run `work`, cancelling it on SIGTERM as asyncio.run does on SIGINT, so cleanup runs."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.worker is not None:
            asyncio.run(_cancel_on_sigterm(run_worker(args.url, args.sessions, args.worker)))
            return
        options = Options(
            sessions=args.sessions,
            seconds=args.seconds,
            url=args.url,
            server_pid=args.server_pid,
            speaking_fraction=args.speaking_fraction,
            sessions_per_worker=args.sessions_per_worker,
            warmup=args.warmup,
        )
        report = asyncio.run(_cancel_on_sigterm(run_bench(options)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)
    except (BenchError, aiohttp.ClientError, psutil.Error) as exc:
        sys.exit(f"voice-rtc bench: {exc}")
    print(json.dumps(asdict(report), indent=2) if args.json else format_report(report))


if __name__ == "__main__":
    main()
