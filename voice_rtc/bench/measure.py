"""What the bench measures: the server's metrics, CPU usage snapshots, quantiles."""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np
import psutil  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

PACING_BUCKET = "voice_rtc_pacing_lateness_seconds_bucket"
FRAMES_SENT = "voice_rtc_audio_frames_sent_total"


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


def share_within(bound: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """The share of observations at most `bound` (itself a bucket bound); None without any."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    within = max((count for upper, count in cumulative if upper <= bound), default=0.0)
    return within / cumulative[-1][1]


async def scrape(http: aiohttp.ClientSession, url: str) -> Scrape:
    async with http.get(url.rstrip("/") + "/metrics") as response:
        response.raise_for_status()
        return parse_metrics(await response.text())


# --- CPU usage ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """CPU seconds of every core together, by kind, so far."""

    busy: float  # anything but idle and iowait
    softirq: float  # interrupts: on loopback, much of the network stack's work
    steal: float  # taken by the hypervisor for other machines

    @classmethod
    def take(cls) -> "Machine":
        t = psutil.cpu_times()
        busy = sum(t) - t.idle - t.iowait - getattr(t, "guest", 0) - getattr(t, "guest_nice", 0)
        return cls(busy, t.softirq + t.irq, t.steal)


@dataclass(frozen=True)
class Usage:
    """A snapshot of the clock and of the CPU seconds each process has used so far."""

    at: float  # time.monotonic()
    server: float | None  # None: the server's pid is unknown; with workers, all of them
    clients: list[float]  # one per worker process
    server_parts: dict[int, float]  # the server's processes by pid (with workers: each)
    metrics: Scrape
    machine: Machine

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
        parts = {p.pid: cpu_seconds(p) for p in process_tree(server)} if server else {}
        server_s = sum(parts.values()) if server else None
        return cls(at, server_s, cpu, parts, await scrape(http, url), Machine.take())


def process_tree(process: psutil.Process) -> list[psutil.Process]:
    """A process and its children (a supervisor and its workers)."""
    return [process, *process.children(recursive=True)]


def rss_mb(process: psutil.Process) -> float:
    """Resident memory of a process and its children, in MB."""
    return float(sum(p.memory_info().rss for p in process_tree(process))) / 1e6


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1000 if len(values) else None


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
