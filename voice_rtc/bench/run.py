"""One benchmark run against one target (voice-rtc or the reference), and several targets back
to back under the same load: start the server (pinned), prime it with one session and take its
idle RSS, start the workers (pinned to the other cores), warm up, measure one window, sum up."""

import asyncio
import contextlib
import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import aiohttp
import numpy as np
import psutil  # type: ignore[import-untyped]

from ..transports.webrtc import use_host_addresses
from . import BenchError
from .listener import LeanListener
from .measure import Usage, bucket_delta, histogram_quantile, ms, rss_mb, share_within
from .options import Options, Target
from .packets import FRAME_S, Delivery, hist_quantile
from .processes import Placement, server_command, start_redis, start_server
from .report import Report
from .speech import load_texts, probe_text
from .worker import Worker, WorkerConfig, WorkerResult, error_counts

SESSIONS_PER_WORKER = {"webrtc": 100, "websocket": 1000}
TAIL_S = 30.0  # speech asked for beyond warm-up and window, for slow connects


def split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal whole numbers."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def worker_configs(options: Options, url: str) -> list[WorkerConfig]:
    n = options.sessions
    speaking = round(n * options.speaking_fraction)
    per_worker = options.sessions_per_worker or SESSIONS_PER_WORKER[options.transport]
    count = max(1, math.ceil((n + options.probes) / per_worker))
    # Speech for as long as a listener may be in: through the ramp (patience), warmup and window.
    texts = load_texts(
        options.tts, options.patience + options.warmup + options.seconds + TAIL_S + n * 0.05
    )
    shares = zip(
        split(speaking, count),
        split(n - speaking, count),
        split(options.probes, count),
        strict=True,
    )
    return [
        WorkerConfig(
            url=url,
            transport=options.transport,
            codec=options.codec,
            speaking=talk,
            silent=quiet,
            probes=probes,
            load_texts=texts,
            probe_text=probe_text(options.tts),
            positions=options.positions,
            patience_s=options.patience,
        )
        for talk, quiet, probes in shares
    ]


async def prime(url: str, options: Options) -> None:
    """One session through the whole path (connect, speak, hear, close), so that what a
    server sets up once (codecs, thread pools) is in its idle RSS, not in the sessions'."""
    use_host_addresses(["127.0.0.1"])
    async with aiohttp.ClientSession() as http:
        listener = LeanListener(url, options.transport, options.codec, "probe")
        try:
            await listener.connect(http)
            await listener.time_to_audio(probe_text(options.tts))
        except Exception as exc:
            raise BenchError(
                f"a first session to {url} failed: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            await listener.close()
    await asyncio.sleep(0.5)


async def run_bench(options: Options, target: Target = "voice-rtc") -> Report:
    server_workers = options.server_workers if target == "voice-rtc" else 1
    external_url = options.url if target == "voice-rtc" else None  # a server started elsewhere
    if external_url is not None and options.server_pid is not None:
        placement = Placement.beside(options.server_pid, options.pin, options.nice)
    else:
        placement = Placement.choose(options.pin, options.nice, server_workers=server_workers)
    log_path = Path(tempfile.gettempdir()) / f"voice-rtc-bench-{target}-{os.getpid()}.log"
    skipped: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        if placement.clients is not None:  # the orchestration stays off the server's core
            affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, placement.clients)
            stack.callback(os.sched_setaffinity, 0, affinity)
        server_pid: int | None
        if external_url is not None:
            url, server_pid = external_url, options.server_pid
            placement = Placement(None, placement.clients, placement.nice)  # runs where it was
        else:
            sessions = options.sessions + options.probes
            args, skipped = server_command(
                target, options.tts, options.server_settings, sessions, server_workers
            )
            env = {}
            if target == "voice-rtc" and (options.shared_store or server_workers > 1):
                env["VOICE_RTC_REDIS_URL"] = await start_redis(stack)
            setup = placement.server_setup()
            url, server_pid = await start_server(stack, args, log_path, setup, env)
        server = psutil.Process(server_pid) if server_pid is not None else None
        http = await stack.enter_async_context(aiohttp.ClientSession())
        await prime(url, options)
        rss_idle = rss_mb(server) if server else None

        configs = worker_configs(options, url)
        setup = placement.client_setup()
        workers = [await Worker.start(stack, config, setup) for config in configs]
        await asyncio.gather(*(worker.ready() for worker in workers))
        if not any(worker.connected for worker in workers):
            errors = [e for w in workers for e in w.errors]
            raise BenchError(f"no session connected: {errors[0] if errors else 'no error?'}")
        clients = [psutil.Process(worker.process.pid) for worker in workers]
        await asyncio.sleep(options.warmup)

        first = await Usage.take(server, clients, http, url)
        await asyncio.sleep(options.seconds)
        last = await Usage.take(server, clients, http, url)
        rss_end = rss_mb(server) if server else None
        results = await asyncio.gather(*(w.results(first.at, last.at) for w in workers))
    server_logged = log_path.exists() and log_path.stat().st_size > 0
    if not server_logged:
        log_path.unlink(missing_ok=True)
    return summarize(
        options,
        target,
        placement,
        workers,
        results,
        first,
        last,
        rss_idle,
        rss_end,
        skipped,
        str(log_path) if server_logged else None,
        server_workers,
        server_pid,
    )


def summarize(
    options: Options,
    target: Target,
    placement: Placement,
    workers: list[Worker],
    results: list[WorkerResult],
    first: Usage,
    last: Usage,
    rss_idle: float | None,
    rss_end: float | None,
    skipped: list[str],
    server_log: str | None,
    server_workers: int = 1,
    server_pid: int | None = None,
) -> Report:
    window = last.at - first.at
    # With workers: each one's CPU (not the supervisor's; it sleeps), over the whole window.
    worker_cpu = [
        (cpu - first.server_parts[pid]) / window * 100
        for pid, cpu in last.server_parts.items()
        if server_workers > 1 and pid != server_pid and pid in first.server_parts
    ]
    speaking, silent = Delivery(), Delivery()
    for result in results:
        speaking.add(result.speaking)
        silent.add(result.silent)
    connected = sum(worker.connected for worker in workers)
    probes = min(options.probes, connected)
    pacing = bucket_delta(first.metrics, last.metrics)
    sent = {
        kind: round(
            last.metrics.frames_sent.get(kind, 0.0) - first.metrics.frames_sent.get(kind, 0.0)
        )
        for kind in ("speech", "silence")
    }
    sent_s = (sent["speech"] + sent["silence"]) * FRAME_S  # audio the server sent, in seconds
    client_cpu = [(b - a) / window * 100 for a, b in zip(first.clients, last.clients, strict=True)]
    server_s = None if first.server is None or last.server is None else last.server - first.server
    server_percent = None if server_s is None else server_s / window * 100
    ttfa = [t for result in results for t in result.ttfa_s]
    lags = [lag for result in results for lag in result.lags_s]
    cpu_count = psutil.cpu_count() or 1
    machine_busy = (last.machine.busy - first.machine.busy) / window * 100  # % of one core
    codec = ",".join(sorted({c for result in results for c in result.codecs})) or "-"

    def per_listener(total: float, sessions: int) -> float | None:
        return total / (sessions * window) if sessions else None

    return Report(
        target=target,
        transport=options.transport,
        codec=codec,
        tts=options.tts,
        placement=placement.describe(),
        sessions_requested=options.sessions + options.probes,
        sessions_connected=connected,
        speaking_sessions=speaking.sessions,
        probe_sessions=probes,
        workers=len(workers),
        window_s=window,
        frames_expected=speaking.expected,
        frames_delivered=speaking.frames,
        frames_on_time=speaking.on_time,
        packets_lost=speaking.lost,
        gaps=speaking.gaps,
        max_gap_ms=speaking.max_gap_s * 1000,
        client_lateness_p99_ms=ms(hist_quantile(speaking.lateness_hist, 0.99)),
        jitter_p50_ms=ms(hist_quantile(speaking.jitter_hist, 0.5)),
        jitter_p99_ms=ms(hist_quantile(speaking.jitter_hist, 0.99)),
        pacing_p50_ms=ms(histogram_quantile(0.5, pacing)),
        pacing_p99_ms=ms(histogram_quantile(0.99, pacing)),
        pacing_within_20ms=share_within(0.02, pacing),
        pacing_bounds_ms=[bound * 1000 for bound, _ in pacing if not math.isinf(bound)],
        server_speech_frames=sent["speech"],
        server_silence_frames=sent["silence"],
        ttfa_count=len(ttfa),
        ttfa_p50_ms=float(np.percentile(ttfa, 50)) * 1000 if ttfa else None,
        ttfa_p95_ms=float(np.percentile(ttfa, 95)) * 1000 if ttfa else None,
        speaking_payload_bytes_per_s=_per_audio_s(speaking.payload_bytes, speaking),
        speaking_wire_bytes_per_s=_per_audio_s(speaking.wire_bytes, speaking),
        silent_packets_per_s=per_listener(silent.packets, silent.sessions),
        silent_wire_bytes_per_s=per_listener(silent.wire_bytes, silent.sessions),
        server_cpu_percent=server_percent,
        server_cpu_ms_per_session_s=(
            None if server_s is None or not connected else server_s * 1000 / (connected * window)
        ),
        server_cpu_ms_per_sent_s=(
            None if server_s is None or not sent_s else server_s * 1000 / sent_s
        ),
        server_rss_idle_mb=rss_idle,
        server_rss_end_mb=rss_end,
        server_rss_per_session_mb=(
            None
            if rss_idle is None or rss_end is None or not connected
            else (rss_end - rss_idle) / connected
        ),
        client_cpu_percent=sum(client_cpu),
        client_cpu_busiest_percent=max(client_cpu),
        client_cores=placement.client_cores,
        client_loop_lag_p99_ms=ms(float(np.percentile(lags, 99))) if lags else None,
        client_loop_lag_max_ms=ms(max(lags)) if lags else None,
        client_event_loop=results[0].event_loop if results else "?",
        machine_cpu_percent=machine_busy / cpu_count,
        softirq_percent=(last.machine.softirq - first.machine.softirq) / window * 100,
        steal_percent=(last.machine.steal - first.machine.steal) / window * 100,
        # Sampled a little apart, the parts can add up to more than the whole: never below 0.
        other_cpu_percent=max(0.0, machine_busy - sum(client_cpu) - (server_percent or 0.0)),
        cpu_count=cpu_count,
        settings=dict(options.server_settings) if target == "voice-rtc" else {},
        settings_skipped=skipped,
        connect_errors=error_counts([e for worker in workers for e in worker.errors]),
        dropped=sum(result.dropped for result in results),
        server_log=server_log,
        server_workers=server_workers,
        server_worker_cpu_percent=worker_cpu,
    )


def _per_audio_s(count: int, delivery: Delivery) -> float | None:
    """Bytes per second of audio received: what the stream costs, whether or not the server
    kept up (a server that falls behind sends fewer seconds, not fewer bytes a second)."""
    return count / delivery.media_s if delivery.media_s else None


async def run_targets(options: Options, targets: list[Target]) -> list[Report]:
    """The same load against each target, one after the other."""
    reports = []
    for target in targets:
        reports.append(await run_bench(replace(options), target))
    return reports
