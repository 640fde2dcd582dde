"""`--plot out.png`: a sweep's curves, per target, against the load (matplotlib, imported only
here: `pip install -e .[bench]`)."""

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import BenchError
from .report import ON_TIME_TARGET, PACING_P99_TARGET_MS, Report

PACING_FLOOR_MS = 0.1  # the log scale's bottom (and where an unknown p99 is drawn)


def plot_sweep(reports: Sequence[tuple[int, Report]], path: Path) -> None:
    try:
        importlib.import_module("matplotlib").use("Agg")  # files only, no display
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError as exc:
        raise BenchError("--plot needs matplotlib: pip install -e '.[bench]'") from exc

    targets = list(dict.fromkeys(r.target for _, r in reports))
    figure, (on_time, pacing, cpu) = plt.subplots(3, 1, figsize=(8, 10), sharex=True)
    for target in targets:
        points = sorted((load, r) for load, r in reports if r.target == target)
        loads = [load for load, _ in points]
        on_time.plot(loads, [100 * r.on_time_ratio for _, r in points], marker="o", label=target)
        p99 = [max(r.pacing_p99_ms or 0.0, PACING_FLOOR_MS) for _, r in points]
        pacing.plot(loads, p99, marker="o", label=target)
        cpu.plot(loads, [r.server_cpu_percent or 0.0 for _, r in points], marker="o", label=target)
    on_time.axhline(100 * ON_TIME_TARGET, color="grey", linestyle="--", linewidth=1)
    on_time.set_ylabel("frames on time (%)")
    pacing.axhline(PACING_P99_TARGET_MS, color="grey", linestyle="--", linewidth=1)
    pacing.set_ylabel("server pacing p99 (ms)")
    pacing.set_yscale("log")
    pacing.set_ylim(bottom=PACING_FLOOR_MS)
    cpu.set_ylabel("server CPU (% of a core)")
    cpu.set_xlabel("sessions")
    first = reports[0][1]
    on_time.set_title(f"{first.transport}, {first.tts}, speaking listeners on one server core")
    for axes in (on_time, pacing, cpu):
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
