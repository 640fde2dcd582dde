"""The benchmark's result (`Report`, printed as JSON with `--json`) and its text form."""

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field


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
