"""The command line: `python -m voice_rtc.bench` runs the benchmark and prints its report; with
the hidden `--worker CONFIG` it is one of the bench's worker processes instead."""

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import aiohttp
import psutil  # type: ignore[import-untyped]

from . import BenchError
from .options import SERVER_TUNING, TARGETS, Options, Target, Transport
from .report import Report, format_report, format_side_by_side
from .run import run_bench, run_targets
from .worker import WorkerConfig, run_worker

Result = TypeVar("Result")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voice_rtc.bench",
        description="Benchmark voice-rtc (and a plain aiortc reference) with N listeners.",
    )
    defaults = Options()
    parser.add_argument("--sessions", type=int, default=defaults.sessions, help="listeners")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="window length")
    parser.add_argument("--transport", choices=("webrtc", "websocket"), default="webrtc")
    parser.add_argument(
        "--codec",
        choices=("auto", "opus", "pcm_s16le", "mulaw"),
        default="auto",
        help="WebSocket codec; auto: opus when the server offers it, else pcm_s16le",
    )
    parser.add_argument(
        "--speaking-fraction",
        type=float,
        default=defaults.speaking_fraction,
        help="share of the sessions that speak; the rest receive silence",
    )
    parser.add_argument(
        "--tts",
        choices=("tone", "espeak"),
        default=defaults.tts,
        help="the servers' voice (tone for load; espeak for a real time to first audio)",
    )
    parser.add_argument(
        "--probes", type=int, default=defaults.probes, help="extra sessions timing first audio"
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also run the plain-aiortc reference under the same load, side by side",
    )
    parser.add_argument(
        "--targets",
        help="comma-separated: voice-rtc, reference (default voice-rtc; --reference: both)",
    )
    parser.add_argument("--sweep", help="comma-separated loads, e.g. 20,50,100,150")
    parser.add_argument("--plot", type=Path, help="with --sweep: draw the curves to this PNG")
    parser.add_argument(
        "--quality",
        action="store_true",
        help="PESQ of eSpeak speech through voice-rtc's WebRTC vs aiortc's default encoder",
    )
    parser.add_argument("--sessions-per-worker", type=int, help="clients per worker process")
    parser.add_argument("--warmup", type=float, default=defaults.warmup, help="seconds")
    parser.add_argument(
        "--patience",
        type=float,
        default=defaults.patience,
        help="seconds a client refused as busy keeps asking (admission lets a big crowd in "
        "over a minute or more)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and clients")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of server and clients (e.g. -10, as root, ahead of other work)",
    )
    parser.add_argument(
        "--no-positions",
        action="store_true",
        help="listeners do not report played positions (real ones do, 4 times a second)",
    )
    parser.add_argument("--url", help="bench this running voice-rtc instead of starting one")
    parser.add_argument("--server-pid", type=int, help="its pid, for CPU and RSS (with --url)")
    for name in SERVER_TUNING:
        parser.add_argument(
            "--" + name.replace("_", "-"),
            help="voice-rtc setting, passed on if its server.py accepts it",
        )
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other voice-rtc setting (e.g. max_sessions=200), passed on if accepted",
    )
    parser.add_argument(
        "--workers",
        help="voice-rtc's server workers (--workers N; they share a redis-server the bench "
        "starts); comma-separated, e.g. 1,2: one run each, side by side",
    )
    parser.add_argument("--json", action="store_true", help="print the report(s) as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.seconds <= 0 or args.probes < 0:
        parser.error("--sessions and --seconds must be positive, --probes at least 0")
    if not 0 <= args.speaking_fraction <= 1:
        parser.error("--speaking-fraction must be between 0 and 1")
    if args.plot and not args.sweep:
        parser.error("--plot draws a --sweep")
    if args.workers is not None:
        try:
            args.workers = [int(n) for n in args.workers.split(",") if n.strip()]
        except ValueError:
            parser.error("--workers: numbers, e.g. 2 or 1,2")
        if not args.workers or min(args.workers) < 1:
            parser.error("--workers: at least 1")
        if len(args.workers) > 1 and (args.sweep or args.reference or args.targets or args.url):
            parser.error("--workers with several counts compares voice-rtc with itself alone")
    return args


def targets_of(args: argparse.Namespace) -> list[Target]:
    if args.targets:
        names = [name.strip() for name in args.targets.split(",") if name.strip()]
        unknown = [name for name in names if name not in TARGETS]
        if unknown:
            raise BenchError(f"unknown target(s) {', '.join(unknown)}: use {', '.join(TARGETS)}")
        return [cast(Target, name) for name in names]
    return ["voice-rtc", "reference"] if args.reference else ["voice-rtc"]


def settings_of(args: argparse.Namespace) -> dict[str, str]:
    settings = {
        name: str(getattr(args, name)) for name in SERVER_TUNING if getattr(args, name) is not None
    }
    for item in args.server_setting:
        name, sep, value = item.partition("=")
        if not sep:
            raise BenchError(f"--server-setting {item!r}: NAME=VALUE")
        settings[name.strip().replace("-", "_")] = value
    return settings


def options_of(args: argparse.Namespace) -> Options:
    return Options(
        sessions=args.sessions,
        seconds=args.seconds,
        transport=cast(Transport, args.transport),
        codec=args.codec,
        speaking_fraction=args.speaking_fraction,
        tts=args.tts,
        probes=args.probes,
        warmup=args.warmup,
        patience=args.patience,
        sessions_per_worker=args.sessions_per_worker,
        pin=not args.no_pin,
        nice=args.nice,
        positions=not args.no_positions,
        url=args.url,
        server_pid=args.server_pid,
        server_settings=settings_of(args),
        server_workers=args.workers[0] if args.workers else 1,
        shared_store=args.workers is not None,  # every run alike: Redis for sessions
    )


def as_json(report: Report) -> dict[str, Any]:
    return {
        **asdict(report),
        "on_time_ratio": report.on_time_ratio,
        "delivery_ratio": report.delivery_ratio,
        "held": report.held,
        "client_bound": report.client_bound,
        "contended": report.contended,
        "sessions_per_core": report.sessions_per_core,
        "full_cores_estimate": report.full_cores_estimate,
    }


async def _cancel_on_sigterm(work: Coroutine[Any, Any, Result]) -> Result:
    """Run `work`, cancelling it on SIGTERM as asyncio.run does on SIGINT, so cleanup runs."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


async def _main(args: argparse.Namespace) -> str:
    if args.quality:
        from .quality import format_quality, run_quality

        quality = await run_quality(settings_of(args), pin=not args.no_pin)
        return json.dumps(asdict(quality), indent=2) if args.json else format_quality(quality)
    options, targets = options_of(args), targets_of(args)
    if args.sweep:
        from .sweep import format_sweep, run_sweep

        loads = [int(load) for load in args.sweep.split(",") if load.strip()]
        points = await run_sweep(options, loads, targets)
        if args.plot:
            from .plot import plot_sweep

            plot_sweep(points, args.plot)
        if args.json:
            return json.dumps([{"load": load, **as_json(r)} for load, r in points], indent=2)
        return format_sweep(points) + (f"\nplot: {args.plot}" if args.plot else "")
    if args.workers and len(args.workers) > 1:
        reports = []
        for count in args.workers:
            report = await run_bench(replace(options, server_workers=count))
            reports.append(replace(report, target=f"voice-rtc x{count}"))
    else:
        reports = await run_targets(options, targets)
    if args.json:
        return json.dumps([as_json(r) for r in reports], indent=2)
    return format_report(reports[0]) if len(reports) == 1 else format_side_by_side(reports)


def _worker(config: str) -> None:
    with contextlib.suppress(ImportError):
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    body = json.loads(config)
    asyncio.run(_cancel_on_sigterm(run_worker(WorkerConfig(**body))))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.worker is not None:
            _worker(args.worker)
            return
        output = asyncio.run(_cancel_on_sigterm(_main(args)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)
    except (BenchError, aiohttp.ClientError, psutil.Error, OSError) as exc:
        sys.exit(f"voice-rtc bench: {exc}" if str(exc) else f"voice-rtc bench: {exc!r}")
    print(output)


if __name__ == "__main__":
    main()
