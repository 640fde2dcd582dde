"""One benchmark run: start the server (unless given one) and the workers, warm up, measure one
window, and sum it up in a `Report`."""

import asyncio
import contextlib
import itertools
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil  # type: ignore[import-untyped]

from ..audio import FRAME_MS
from . import BenchError
from .measure import Usage, bucket_delta, histogram_quantile, ms, percentile_ms
from .processes import start_server
from .report import Report
from .worker import Worker

FRAME_S = FRAME_MS / 1000


@dataclass(frozen=True)
class Options:
    sessions: int = 10
    seconds: float = 20.0
    url: str | None = None
    server_pid: int | None = None
    speaking_fraction: float = 1.0
    sessions_per_worker: int = 25
    warmup: float = 2.0


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
        # Sampled a little apart, the parts can add up to more than the whole: never below 0.
        other_cpu_percent=max(
            0.0, machine_cpu * cpu_count - sum(client_cpu) - (server_percent or 0.0)
        ),
        cpu_count=cpu_count,
        connect_errors=[e for worker in workers for e in worker.errors],
        server_log=str(log_path) if server_logged else None,
    )
