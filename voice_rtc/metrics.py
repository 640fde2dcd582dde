"""Prometheus metrics, served at /metrics.

Names carry their unit and counters end in `_total`. Labels take few values (transport, kind,
provider, code, reason, outcome): never a session, user or utterance id.

What happens per frame (thousands of times a second) is counted in plain ints (`COUNTERS`) and
turned into metrics only when /metrics is scraped, so counting costs an addition, not a lock and
a label lookup.

Several workers (`--workers N`) share one /metrics: prometheus-client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by the supervisor), where each process writes its metrics to files
and any of them sums them all at a scrape. A custom collector would only see its own process, so
there each worker folds its plain ints into ordinary counters every second (`fold`), and at a
scrape.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# prometheus-client reads this at import too (it then writes every metric to that directory).
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ

# Sessions and transports
ACTIVE_SESSIONS = Gauge(
    "voice_rtc_active_sessions",
    "Sessions open on this process, by the audio transport they use now (none: between transports"
    " or waiting for a listener to come back)",
    ["transport"],
    multiprocess_mode="livesum",  # several workers: the whole server's, live ones only
)
RECONNECTS = Counter(
    "voice_rtc_reconnects_total",
    "Clients coming back with a resume token, by outcome (resumed, session_not_found)",
    ["outcome"],
)
TRANSPORT_FALLBACKS = Counter(
    "voice_rtc_transport_fallbacks_total",
    "Listeners moved from WebRTC to the WebSocket fallback, by the reason their client gave",
    ["reason"],
)
HEARTBEAT_RTT = Histogram(
    "voice_rtc_heartbeat_rtt_seconds",
    "Round-trip time of client heartbeats, as the clients measured them",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 2.0, 5.0),
)
TAKEOVERS = Counter(
    "voice_rtc_session_takeovers_total",
    "Sessions this process took over from another (a listener resumed here, or its owner died)",
)
LEASES_LOST = Counter(
    "voice_rtc_session_leases_lost_total",
    "Sessions this process stopped serving because another one had claimed them",
)
ERRORS = Counter(
    "voice_rtc_errors_total",
    "Errors by code: sent to clients (source=server) or reported by them (source=client)",
    ["code", "source"],
)

# Audio
PACING_LATENESS = Histogram(
    "voice_rtc_pacing_lateness_seconds",
    "How late the last frame of each turn of the clock (5 ms) left after the turn's deadline",
    buckets=(
        *(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02),
        *(0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.25, 1.0),
    ),
)
LOSSY_LISTENERS = Gauge(
    "voice_rtc_lossy_listeners",
    "WebRTC listeners whose receiver reports say their link loses packets: their speech is coded"
    " with Opus in-band FEC (unless opus_fec is off)",
    multiprocess_mode="livesum",
)
CLIENT_UNDERRUNS = Counter(
    "voice_rtc_client_underruns_total",
    "Times a listener's jitter buffer ran dry, as clients reported them",
    ["transport"],
)

# Speech synthesis
TTS_FIRST_AUDIO = Histogram(
    "voice_rtc_tts_first_audio_seconds",
    "From handing an utterance's first sentence to the provider to its first audio",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
TTS_REQUESTS = Counter(
    "voice_rtc_tts_requests_total",
    "Requests to a remote TTS provider, by outcome (ok, failed): the failure ratio's base",
    ["provider", "outcome"],
)
TTS_FAILURES = Counter(
    "voice_rtc_tts_failures_total",
    "Failed requests to a remote TTS provider",
    ["provider", "reason"],
)
TTS_FALLBACKS = Counter(
    "voice_rtc_tts_fallbacks_total", "Text spoken by the fallback voice instead", ["reason"]
)
TTS_BREAKER_STATE = Gauge(
    "voice_rtc_tts_breaker_state",
    "Circuit breaker: 0 closed, 1 half-open, 2 open",
    ["provider"],
    multiprocess_mode="livemax",  # the worst worker's
)

# The process
DRAINING = Gauge(
    "voice_rtc_draining", "1 while the server drains before it stops", multiprocess_mode="livemax"
)
MAX_SESSIONS = Gauge(
    "voice_rtc_max_sessions",
    "Sessions this process (with workers: all of them) takes before SERVER_BUSY",
    multiprocess_mode="livesum",
)
BUILD_INFO = Gauge(
    "voice_rtc_build_info", "Always 1: the version running", ["version"], multiprocess_mode="max"
)
HEAP_TRIM = Histogram(
    "voice_rtc_heap_trim_seconds",
    "How long each hand-back of freed heap memory to the OS took (the loop's larger allocations"
    " wait for it)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
)
HEAP_RETURNED = Counter(
    "voice_rtc_heap_returned_bytes_total",
    "Resident memory handed back to the OS from the heap's free pages",
)
TELEMETRY_EVENTS = Counter(
    "voice_rtc_telemetry_events_total", "Client telemetry events accepted, by type", ["type"]
)


def start(version: str, max_sessions: int) -> None:
    """Set what is known at start, and create the labelled series a dashboard expects, so that
    they exist (at 0) before their first event and `rate()` sees that event too."""
    BUILD_INFO.labels(version).set(1)
    MAX_SESSIONS.set(max_sessions)
    for transport in ("webrtc", "websocket", "none"):
        ACTIVE_SESSIONS.labels(transport)
    for transport in ("webrtc", "websocket"):
        CLIENT_UNDERRUNS.labels(transport)
    for outcome in ("resumed", "session_not_found"):
        RECONNECTS.labels(outcome)


TRANSPORTS = ("webrtc", "websocket")
FRAME_KINDS = ("speech", "silence")


@dataclass
class MediaCounters:
    """The per-frame counts, as plain ints; `MediaCollector` exports them at scrape time."""

    frames: dict[tuple[str, str], int] = field(
        default_factory=lambda: {(t, k): 0 for t in TRANSPORTS for k in FRAME_KINDS}
    )
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRANSPORTS, 0))
    pacing_skipped: int = 0

    def speech_frames(self) -> int:
        """Speech frames sent so far, over every transport."""
        return sum(self.frames[transport, "speech"] for transport in TRANSPORTS)


COUNTERS = MediaCounters()


FRAMES_HELP = "20 ms audio frames sent to listeners, by transport and kind (speech, silence)"
BYTES_HELP = "Bytes of audio payload sent to listeners, by transport (headers not counted)"
SKIPPED_HELP = (
    "turns of the clock (5 ms, each a 20 ms slot for a quarter of the streams) given up after a "
    "stall longer than the pacer's burst: audio delayed, not lost"
)


class MediaCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        frames = CounterMetricFamily(
            "voice_rtc_audio_frames_sent", FRAMES_HELP, labels=["transport", "kind"]
        )
        for (transport, kind), count in COUNTERS.frames.items():
            frames.add_metric([transport, kind], count)
        sent = CounterMetricFamily("voice_rtc_audio_bytes_sent", BYTES_HELP, labels=["transport"])
        for transport, count in COUNTERS.bytes.items():
            sent.add_metric([transport], count)
        skipped = CounterMetricFamily("voice_rtc_pacing_skipped_slots", SKIPPED_HELP)
        skipped.add_metric([], COUNTERS.pacing_skipped)
        yield from (frames, sent, skipped)


class _Folded:
    """Multiprocess mode: the plain ints as counters in the shared directory, brought up to date
    by `fold` (registered nowhere: the multiprocess collector reads the files)."""

    def __init__(self) -> None:
        self.frames = Counter(
            "voice_rtc_audio_frames_sent", FRAMES_HELP, ["transport", "kind"], registry=None
        )
        self.bytes = Counter("voice_rtc_audio_bytes_sent", BYTES_HELP, ["transport"], registry=None)
        self.skipped = Counter("voice_rtc_pacing_skipped_slots", SKIPPED_HELP, registry=None)
        self.done = MediaCounters()  # what has been folded in so far
        for transport, kind in self.done.frames:
            self.frames.labels(transport, kind)
        for transport in self.done.bytes:
            self.bytes.labels(transport)

    def fold(self) -> None:
        for key, count in COUNTERS.frames.items():
            if count > self.done.frames[key]:
                self.frames.labels(*key).inc(count - self.done.frames[key])
                self.done.frames[key] = count
        for transport, count in COUNTERS.bytes.items():
            if count > self.done.bytes[transport]:
                self.bytes.labels(transport).inc(count - self.done.bytes[transport])
                self.done.bytes[transport] = count
        if COUNTERS.pacing_skipped > self.done.pacing_skipped:
            self.skipped.inc(COUNTERS.pacing_skipped - self.done.pacing_skipped)
            self.done.pacing_skipped = COUNTERS.pacing_skipped


_FOLDED = _Folded() if MULTIPROCESS else None
if _FOLDED is None:
    REGISTRY.register(MediaCollector())


def fold() -> None:
    """Multiprocess mode: make the shared counters include this process's plain ints (every
    second, and before a scrape); nothing otherwise."""
    if _FOLDED is not None:
        _FOLDED.fold()


def exposition() -> tuple[bytes, str]:
    """The body of /metrics and its content type: this process's metrics, or with workers the
    whole server's (every worker's files, live and dead, summed)."""
    if not MULTIPROCESS:
        return generate_latest(), CONTENT_TYPE_LATEST
    fold()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
