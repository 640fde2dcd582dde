"""The command line: `python -m voice_rtc.bench` runs the benchmark and prints its report; with
the hidden `--worker SPEAKING` it is one of the bench's worker processes instead."""

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

import aiohttp
import psutil  # type: ignore[import-untyped]

from . import BenchError
from .report import format_report
from .run import Options, run_bench
from .worker import run_worker

Result = TypeVar("Result")


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
