"""`--sweep 20,50,100,...`: each load against each target, and the largest load each held.

A load is *held* when every session was admitted and stayed, >= 99.9% of the speaking
listeners' frames were on time, and the server's pacing p99 was under 10 ms (`Report.held`).
The largest held load is the largest one held in the sweep; a smaller load that was not held
is pointed out (noise from a shared machine, or clients at their limit), since then the figure
is less sure.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .options import Options, Target
from .report import Report
from .run import run_bench


@dataclass(frozen=True)
class Capacity:
    target: str
    largest_held: int | None
    not_held_below: list[int]  # loads under the largest held one that were not held
    client_bound: list[int]  # loads at which the load clients may have been the bottleneck


def capacity(target: str, points: Sequence[tuple[int, bool, bool]]) -> Capacity:
    """From (load, held, client_bound) points of one target."""
    held = [load for load, ok, _ in points if ok]
    largest = max(held) if held else None
    below = sorted(
        load for load, ok, _ in points if not ok and largest is not None and load < largest
    )
    bound = sorted(load for load, _, by_clients in points if by_clients)
    return Capacity(target, largest, below, bound)


def capacities(reports: Sequence[tuple[int, Report]]) -> list[Capacity]:
    targets = list(dict.fromkeys(report.target for _, report in reports))
    return [
        capacity(
            target,
            [
                (load, r.held, r.client_bound is not None)
                for load, r in reports
                if r.target == target
            ],
        )
        for target in targets
    ]


async def run_sweep(
    options: Options, loads: Sequence[int], targets: Sequence[Target]
) -> list[tuple[int, Report]]:
    """Each load, each target back to back at that load, in increasing load."""
    reports = []
    for load in sorted(loads):
        for target in targets:
            reports.append((load, await run_bench(replace(options, sessions=load), target)))
    return reports


def _fixed(value: float | None, digits: int, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _noise(r: Report) -> str:
    notes = [f"clients: {r.client_bound}"] if r.client_bound else []
    if r.contended:
        notes.append(f"machine: {r.other_cpu_percent:.0f}% of a core other work")
    return "; ".join(notes) or "ok"


def format_sweep(reports: Sequence[tuple[int, Report]]) -> str:
    head = (
        f"{'load':>6} {'target':<10} {'admitted':>9} {'on time':>8} {'pacing p99':>11} "
        f"{'CPU ms/sess-s':>13} {'/audio-s':>8} {'core':>5} {'RSS MB/sess':>11} "
        f"{'TTFA p95':>9}  held  noise"
    )
    lines = [head]
    for load, r in reports:
        lines.append(
            f"{load:>6} {r.target:<10} {r.sessions_connected:>4}/{r.sessions_requested:<4} "
            f"{100 * r.on_time_ratio:>7.2f}% {_fixed(r.pacing_p99_ms, 2, ' ms'):>11} "
            f"{_fixed(r.server_cpu_ms_per_session_s, 2):>13} "
            f"{_fixed(r.server_cpu_ms_per_sent_s, 2):>8} {_fixed(r.server_cpu_percent, 0, '%'):>5} "
            f"{_fixed(r.server_rss_per_session_mb, 3):>11} {_fixed(r.ttfa_p95_ms, 0, ' ms'):>9}  "
            f"{'yes ' if r.held else 'no  '}  {_noise(r)}"
        )
    lines.append("")
    found = capacities(reports)
    for c in found:
        largest = "none" if c.largest_held is None else str(c.largest_held)
        line = f"largest load held, {c.target}: {largest}"
        if c.not_held_below:
            line += f" (but not held at {', '.join(map(str, c.not_held_below))})"
        if c.client_bound:
            at = ", ".join(map(str, c.client_bound))
            line += f"; load clients may have been the bottleneck at {at}"
        lines.append(line)
    by_target = {c.target: c.largest_held for c in found}
    ours, theirs = by_target.get("voice-rtc"), by_target.get("reference")
    if ours and theirs:
        lines.append(f"voice-rtc / reference: {ours / theirs:.2f}x")
    lines.append(
        "held: every session admitted, >= 99.9% of frames on time, server pacing p99 < 10 ms; "
        "loads counted without the probes."
    )
    return "\n".join(lines)
