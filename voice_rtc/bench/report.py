"""The benchmark's result (`Report`, printed as JSON with `--json`) and its text form: one
target alone, or several side by side with the ratio voice-rtc / reference."""

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

ON_TIME_TARGET = 0.999  # the share of frames on time a load must keep to count as held
PACING_P99_TARGET_MS = 10.0
CLIENT_BUSY_PERCENT = 85.0  # load clients busier than this (of their cores) may be the bottleneck
CLIENT_LAG_P99_MS = 10.0
OTHER_WORK_PERCENT = 25.0  # of a core busy with neither server nor clients: a noisy machine


@dataclass
class Report:
    target: str  # voice-rtc or reference
    transport: str
    codec: str  # what the listeners received
    tts: str
    placement: str
    sessions_requested: int
    sessions_connected: int
    speaking_sessions: int  # connected and speaking the load's speech
    probe_sessions: int  # connected, timing speak -> first audio
    workers: int
    window_s: float
    # Speech delivered to the speaking listeners, seen by the clients
    frames_expected: int
    frames_delivered: int
    frames_on_time: int
    packets_lost: int
    gaps: int
    max_gap_ms: float
    client_lateness_p99_ms: float | None
    jitter_p50_ms: float | None
    jitter_p99_ms: float | None
    # ... and by the server's pacer
    pacing_p50_ms: float | None
    pacing_p99_ms: float | None
    pacing_within_20ms: float | None  # share of the server's frames at most 20 ms late
    pacing_bounds_ms: list[float]  # the histogram's finite bucket bounds: its resolution
    server_speech_frames: int
    server_silence_frames: int
    # Time to first audio: speak sent -> first audible packet at a probe
    ttfa_count: int
    ttfa_p50_ms: float | None
    ttfa_p95_ms: float | None
    # Bandwidth per listener
    speaking_payload_bytes_per_s: float | None
    speaking_wire_bytes_per_s: float | None  # with RTP headers, or WebSocket + audio headers
    silent_packets_per_s: float | None  # what a listener that hears nothing still receives
    silent_wire_bytes_per_s: float | None
    # The server
    server_cpu_percent: float | None  # of one core
    server_cpu_ms_per_session_s: float | None  # CPU ms per connected session per second
    server_cpu_ms_per_sent_s: float | None  # CPU ms per second of audio it sent (all frames)
    server_rss_idle_mb: float | None  # after one priming session, before the load
    server_rss_end_mb: float | None
    server_rss_per_session_mb: float | None
    # The load clients and the machine
    client_cpu_percent: float  # of one core, all worker processes together
    client_cpu_busiest_percent: float
    client_cores: int
    client_loop_lag_p99_ms: float | None
    client_loop_lag_max_ms: float | None
    client_event_loop: str
    machine_cpu_percent: float  # every core busy = 100
    other_cpu_percent: float  # of one core, outside server and clients (other work, interrupts)
    softirq_percent: float  # of one core: interrupt handling, loopback networking mostly
    steal_percent: float  # of one core: taken by the hypervisor
    cpu_count: int
    settings: dict[str, str] = field(default_factory=dict)  # passed on to the server
    settings_skipped: list[str] = field(default_factory=list)  # not accepted by this server
    connect_errors: dict[str, int] = field(default_factory=dict)  # by code or exception
    dropped: int = 0  # sessions whose signaling closed during the run
    server_log: str | None = None  # where the server's stderr went, when it logged anything
    server_workers: int = 1  # voice-rtc's worker processes (its CPU and RSS: all of them)
    server_worker_cpu_percent: list[float] = field(default_factory=list)  # each, of a core

    @property
    def sessions_per_core(self) -> float | None:
        """Sessions connected per core of server CPU they used."""
        if not self.server_cpu_percent or not self.sessions_connected:
            return None
        return self.sessions_connected / (self.server_cpu_percent / 100)

    @property
    def full_cores_estimate(self) -> float | None:
        """Sessions the server's cores (one per worker, as many as the machine has) would hold
        at this CPU per session, all of them busy: its capacity, as far as CPU goes."""
        per_core = self.sessions_per_core
        return None if per_core is None else per_core * min(self.server_workers, self.cpu_count)

    @property
    def on_time_ratio(self) -> float:
        return self.frames_on_time / self.frames_expected if self.frames_expected else 0.0

    @property
    def delivery_ratio(self) -> float:
        return self.frames_delivered / self.frames_expected if self.frames_expected else 0.0

    @property
    def client_bound(self) -> str | None:
        """Why the load clients may have been the bottleneck, or None."""
        reasons = []
        busy = self.client_cpu_percent / max(self.client_cores, 1)
        if busy > CLIENT_BUSY_PERCENT or self.client_cpu_busiest_percent > CLIENT_BUSY_PERCENT:
            reasons.append(
                f"clients {busy:.0f}% busy (busiest {self.client_cpu_busiest_percent:.0f}%)"
            )
        if (
            self.client_loop_lag_p99_ms is not None
            and self.client_loop_lag_p99_ms > CLIENT_LAG_P99_MS
        ):
            reasons.append(f"client loop lag p99 {self.client_loop_lag_p99_ms:.1f} ms")
        return "; ".join(reasons) or None

    @property
    def contended(self) -> str | None:
        """Why the machine's other work may have skewed the figures, or None."""
        if self.other_cpu_percent > OTHER_WORK_PERCENT:
            return f"{self.other_cpu_percent:.0f}% of a core busy with other work"
        return None

    @property
    def held(self) -> bool:
        """Every session admitted, >= 99.9% of frames on time, server pacing p99 < 10 ms."""
        return (
            self.sessions_connected == self.sessions_requested
            and self.dropped == 0
            and self.on_time_ratio >= ON_TIME_TARGET
            and self.pacing_p99_ms is not None
            and self.pacing_p99_ms < PACING_P99_TARGET_MS
        )


# --- text -------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _bucketed_ms(value: float | None, bounds: Sequence[float]) -> str:
    """`value` and the histogram bucket it was interpolated in, e.g. `0.42 (0.25-0.5)`."""
    if value is None:
        return "-"
    upper = bisect.bisect_left(bounds, value)
    lower = f"{bounds[upper - 1]:g}" if upper else "0"
    return f"{value:.2f} ({lower}-{bounds[upper]:g})" if upper < len(bounds) else f"{value:.2f}+"


@dataclass(frozen=True)
class Row:
    label: str
    text: Callable[[Report], str]
    value: Callable[[Report], float | None] = lambda _r: None  # for the ratio, where it means one


def _kb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:.2f} KB/s"


ROWS = (
    Row("sessions connected / asked", lambda r: f"{r.sessions_connected} / {r.sessions_requested}"),
    Row("  speaking, probes", lambda r: f"{r.speaking_sessions}, {r.probe_sessions}"),
    Row(
        "  refused or failed",
        lambda r: ", ".join(f"{k} x{v}" for k, v in r.connect_errors.items()) or "none",
    ),
    Row("  dropped during the run", lambda r: str(r.dropped)),
    Row("transport, codec, voice", lambda r: f"{r.transport}, {r.codec}, {r.tts}"),
    Row("measuring window", lambda r: f"{r.window_s:.2f} s"),
    Row(
        "frames on time / expected",
        lambda r: f"{r.frames_on_time} / {r.frames_expected} ({r.on_time_ratio:.4f})",
        lambda r: r.on_time_ratio,
    ),
    Row(
        "frames delivered",
        lambda r: f"{r.frames_delivered} ({r.delivery_ratio:.4f}), lost {r.packets_lost}",
        lambda r: r.delivery_ratio,
    ),
    Row(
        "server pacing p50 / p99 ms",
        lambda r: (
            f"{_bucketed_ms(r.pacing_p50_ms, r.pacing_bounds_ms)} / "
            f"{_bucketed_ms(r.pacing_p99_ms, r.pacing_bounds_ms)}"
        ),
        lambda r: r.pacing_p99_ms,
    ),
    Row(
        "server frames <= 20 ms late",
        lambda r: _num(
            None if r.pacing_within_20ms is None else 100 * r.pacing_within_20ms, 3, "%"
        ),
    ),
    Row(
        "client lateness p99",
        lambda r: _num(r.client_lateness_p99_ms, 1, " ms"),
        lambda r: r.client_lateness_p99_ms,
    ),
    Row(
        "client jitter p50 / p99",
        lambda r: f"{_num(r.jitter_p50_ms, 1)} / {_num(r.jitter_p99_ms, 1)} ms",
        lambda r: r.jitter_p99_ms,
    ),
    Row("client gaps > 40 ms, longest", lambda r: f"{r.gaps}, {r.max_gap_ms:.0f} ms"),
    Row(
        "time to first audio p50 / p95",
        lambda r: f"{_num(r.ttfa_p50_ms, 1)} / {_num(r.ttfa_p95_ms, 1)} ms (n={r.ttfa_count})",
        lambda r: r.ttfa_p95_ms,
    ),
    Row(
        "server CPU",
        lambda r: _num(r.server_cpu_percent, 1, "% of a core"),
        lambda r: r.server_cpu_percent,
    ),
    Row(
        "server workers, CPU each",
        lambda r: (
            f"{r.server_workers}"
            + (
                ", " + ", ".join(f"{c:.0f}%" for c in r.server_worker_cpu_percent)
                if r.server_worker_cpu_percent
                else ""
            )
        ),
    ),
    Row(
        "sessions per core of server CPU",
        lambda r: _num(r.sessions_per_core, 1),
        lambda r: r.sessions_per_core,
    ),
    Row(
        "  x its cores: sessions (est.)",
        lambda r: _num(r.full_cores_estimate, 0),
        lambda r: r.full_cores_estimate,
    ),
    Row(
        "server CPU per session-second",
        lambda r: _num(r.server_cpu_ms_per_session_s, 2, " ms"),
        lambda r: r.server_cpu_ms_per_session_s,
    ),
    Row(
        "  per second of audio it sent",
        lambda r: _num(r.server_cpu_ms_per_sent_s, 2, " ms"),
        lambda r: r.server_cpu_ms_per_sent_s,
    ),
    Row(
        "server RSS idle -> end",
        lambda r: f"{_num(r.server_rss_idle_mb, 1)} -> {_num(r.server_rss_end_mb, 1)} MB",
        lambda r: r.server_rss_end_mb,
    ),
    Row(
        "server RSS per session",
        lambda r: _num(r.server_rss_per_session_mb, 3, " MB"),
        lambda r: r.server_rss_per_session_mb,
    ),
    Row(
        "bandwidth per speaking listener",
        lambda r: (
            f"{_kb(r.speaking_wire_bytes_per_s)} (payload {_kb(r.speaking_payload_bytes_per_s)})"
        ),
        lambda r: r.speaking_wire_bytes_per_s,
    ),
    Row(
        "per silent listener",
        lambda r: f"{_num(r.silent_packets_per_s, 1)} packets/s, {_kb(r.silent_wire_bytes_per_s)}",
    ),
    Row(
        "server frames sent",
        lambda r: f"speech {r.server_speech_frames}, silence {r.server_silence_frames}",
    ),
    Row(
        "client CPU",
        lambda r: (
            f"{r.client_cpu_percent:.1f}% of {r.client_cores} core(s), {r.workers} "
            f"worker(s), busiest {r.client_cpu_busiest_percent:.1f}%"
        ),
    ),
    Row(
        "client loop lag p99, max",
        lambda r: (
            f"{_num(r.client_loop_lag_p99_ms, 1)}, {_num(r.client_loop_lag_max_ms, 0)} ms "
            f"({r.client_event_loop})"
        ),
    ),
    Row(
        "load clients the bottleneck?",
        lambda r: f"YES: {r.client_bound}" if r.client_bound else "no",
    ),
    Row("held (99.9% on time, p99 < 10)", lambda r: "yes" if r.held else "no"),
    Row(
        "machine CPU",
        lambda r: (
            f"{r.machine_cpu_percent:.0f}% of {r.cpu_count} cores; of a core: "
            f"{r.other_cpu_percent:.0f}% neither server nor clients"
        ),
    ),
    Row(
        "  of which",
        lambda r: f"interrupts {r.softirq_percent:.0f}%, stolen {r.steal_percent:.0f}%",
    ),
    Row("other work skewed it?", lambda r: f"YES: {r.contended}" if r.contended else "no"),
    Row("placement", lambda r: r.placement),
)

NOTES = """\
on time: each speaking listener's frames are due on a 20 ms grid, its media time (RTP timestamp,
  or WebSocket frame seq) on the best arrival-minus-media-time the session saw in the window;
  a frame is on time when it came at most 20 ms after its slot; expected = the slots inside the
  window. Client lateness: how far after its slot a frame came. Jitter: |inter-arrival - media
  spacing|. Pacing: the server's voice_rtc_pacing_lateness_seconds histogram over the window,
  interpolated within its bucket (in brackets): no finer than that. Arrival: the kernel's
  receive timestamp (WebRTC: a busy client does not make packets late), or when the client
  read the message (WebSocket: its loop lag counts).
bandwidth: bytes received per second of speech (media time, so a server that falls behind
  does not look thrifty): UDP payloads (SRTP: RTP header, payload, auth tag; no UDP/IP
  headers), or WebSocket frames (frame header, 14-byte audio header, payload); payload: the
  codec's bytes alone.
RSS per session: (RSS at the end - RSS idle) / sessions connected, probes included; CPU per
  session-second likewise. Time to first audio: sending speak -> the first packet that decodes
  to more than -40 dBFS, at probe sessions speaking short utterances one after another.
workers: server CPU, RSS and CPU per session-second are every worker's together; sessions per
  core of server CPU = sessions / (server CPU / one core); x its cores = that times one core
  per worker (at most the machine's): what its cores would hold, all of them busy, at this
  CPU per session (measure held loads with --sweep)."""


def format_report(r: Report) -> str:
    lines = [f"{r.target}"]
    lines += [f"  {row.label:<33} {row.text(r)}" for row in ROWS]
    lines += _footnotes([r])
    lines += ["", NOTES]
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return ""
    return f"{a / b:.2f}x"


def format_side_by_side(reports: Sequence[Report]) -> str:
    """Columns per target; with two, the ratio of the first to the second."""
    cells = [[row.text(r) for r in reports] for row in ROWS]
    width = max(len(r.target) for r in reports)
    width = max([width, *(len(cell) for line in cells for cell in line)]) + 2
    head = f"  {'':<33} " + "".join(f"{r.target:<{width}}" for r in reports)
    if len(reports) == 2:
        head += f"{reports[0].target} / {reports[1].target}"
    lines = [head.rstrip()]
    for row, texts in zip(ROWS, cells, strict=True):
        ratio = _ratio(row.value(reports[0]), row.value(reports[1])) if len(reports) == 2 else ""
        lines.append(f"  {row.label:<33} {''.join(f'{t:<{width}}' for t in texts)}{ratio}".rstrip())
    lines += _footnotes(reports)
    lines += ["", NOTES]
    return "\n".join(lines)


def _footnotes(reports: Sequence[Report]) -> list[str]:
    lines = []
    for r in reports:
        if r.settings:
            given = ", ".join(f"{k}={v}" for k, v in r.settings.items())
            lines.append(f"{r.target}: server settings {given}")
        if r.settings_skipped:
            lines.append(f"{r.target}: this server does not accept {', '.join(r.settings_skipped)}")
        if r.server_log:
            lines.append(f"{r.target}: the server logged warnings: {r.server_log}")
    return lines
