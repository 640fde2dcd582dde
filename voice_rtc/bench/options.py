"""What one benchmark run is asked to do."""

from dataclasses import dataclass, field
from typing import Literal

Target = Literal["voice-rtc", "reference"]
Transport = Literal["webrtc", "websocket"]
TARGETS: tuple[Target, ...] = ("voice-rtc", "reference")

# Server settings the bench passes on when it starts voice-rtc and server.py accepts them.
SERVER_TUNING = ("opus_bitrate", "opus_complexity", "opus_fec", "silence")


@dataclass(frozen=True)
class Options:
    sessions: int = 10
    seconds: float = 20.0
    transport: Transport = "webrtc"
    codec: str = (
        "auto"  # WebSocket: auto (opus when offered, else pcm_s16le), opus, pcm_s16le, mulaw
    )
    speaking_fraction: float = 1.0
    tts: str = "tone"  # the voice of the servers the bench starts: tone or espeak
    probes: int = 2  # extra sessions timing speak -> first audible packet, one after another
    positions: bool = True  # listeners report played positions (every position_interval_ms)
    warmup: float = 3.0
    patience: float = 20.0  # seconds a client refused as busy keeps asking (a crowd ramps up)
    sessions_per_worker: int | None = None  # default: by transport (see run.py)
    pin: bool = True  # server on one core, clients on the others (with >= 2 cores)
    nice: int = 0  # niceness of server and clients (root may go below 0 on a shared machine)
    url: str | None = None  # bench this running voice-rtc instead of starting one
    server_pid: int | None = None
    server_workers: int = 1  # voice-rtc's --workers (the load's client processes are `workers`)
    shared_store: bool = False  # start a redis-server for voice-rtc's sessions (with --workers)
    # voice-rtc settings by name (opus_bitrate=24000, silence=dtx, ...): passed on when the
    # server accepts them, listed as skipped in the report when it does not.
    server_settings: dict[str, str] = field(default_factory=dict)
