"""Settings: one object, read from VOICE_RTC_* environment variables, overridden on the command
line (`--port 9000` for VOICE_RTC_PORT), validated before the server starts.

The defaults run a working demo on 127.0.0.1 with no setup.
"""

import argparse
import dataclasses
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

ENV_PREFIX = "VOICE_RTC_"
TTS_PROVIDERS = ("espeak", "tone", "cartesia")
# Secrets come from the environment only: never a command-line option (visible in `ps`), never
# in the repr of Settings (logged at start).
SECRET_ENV = {
    "cartesia_api_key": "CARTESIA_API_KEY",
    "service_api_key": "VOICE_RTC_SERVICE_API_KEY",
    "turn_secret": "VOICE_RTC_TURN_SECRET",
    "jwt_secret": "VOICE_RTC_JWT_SECRET",
}
TRANSPORTS = ("auto", "webrtc", "websocket")
SILENCE_MODES = ("dtx", "packet")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    tts: str = "espeak"
    espeak_voice: str = "en-us"
    espeak_words_per_minute: int = 175
    tone_frequency_hz: float = 440.0
    cartesia_model: str = "sonic-2"
    cartesia_voice: str = ""
    cartesia_base_url: str = "https://api.cartesia.ai"
    cartesia_api_key: str = field(default="", repr=False)
    tts_max_retries: int = 2
    tts_first_audio_timeout_s: float = 3.0
    tts_stall_timeout_s: float = 2.0
    breaker_failure_threshold: int = 5
    breaker_recovery_s: float = 60.0
    ice_servers: str = ""
    ice_host_addresses: str = ""
    turn_urls: str = ""
    turn_secret: str = field(default="", repr=False)
    turn_ttl_s: int = 3600
    jwt_secret: str = field(default="", repr=False)
    jwt_public_key_file: str = ""
    jwt_audience: str = "voice-rtc"
    jwt_issuer: str = ""
    service_api_key: str = field(default="", repr=False)
    session_token_ttl_s: int = 3600
    allowed_origins: str = ""
    trust_x_forwarded_for: bool = False
    redis_url: str = ""
    limit_connections_per_minute: int = 30
    limit_speak_per_hour: int = 600
    limit_chars_per_minute: int = 6000
    limit_telemetry_events_per_minute: int = 600
    limit_sessions_per_user: int = 5
    # An upper bound only: a process refuses sessions sooner when its measured load says so.
    max_sessions: int = 1000
    admission_loop_percent: float = 75.0
    admission_lateness_ms: float = 20.0
    # Measured with eSpeak NG speech (python -m voice_rtc.bench --quality): see the README.
    opus_bitrate: int = 24000
    opus_complexity: int = 8
    opus_fec: bool = True
    silence: str = "dtx"
    lookahead_ms: int = 5000
    max_queued_utterances: int = 16
    max_text_chars: int = 2000
    max_message_bytes: int = 65536
    max_sdp_bytes: int = 16384
    session_grace_s: float = 30.0
    session_lease_s: float = 3.0
    resume_window_ms: int = 3000
    position_interval_ms: int = 250
    hello_timeout_s: float = 5.0
    max_pending_per_ip: int = 32
    sockets_per_second_per_ip: float = 20.0
    connection_messages_per_second: float = 50.0
    connection_message_burst: int = 100
    http_timeout_s: float = 10.0
    max_connections: int = 0
    state_dir: str = ""
    heartbeat_interval_s: float = 10.0
    heartbeat_timeout_s: float = 5.0
    reconnect_max_attempts: int = 10
    transport: str = "auto"
    ice_timeout_ms: int = 5000
    fallback_loss_percent: float = 10.0
    fallback_loss_window_s: float = 5.0
    drain_timeout_s: float = 30.0
    log_level: str = "INFO"
    workers: str = "1"  # a number, or "auto": one per core (see worker_count)

    @property
    def worker_count(self) -> int:
        return (os.cpu_count() or 1) if self.workers == "auto" else int(self.workers)

    @property
    def ice_server_urls(self) -> list[str]:
        return _split(self.ice_servers)

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def origin_list(self) -> list[str]:
        return _split(self.allowed_origins)

    @property
    def turn_url_list(self) -> list[str]:
        return _split(self.turn_urls)

    @property
    def host_addresses(self) -> list[str] | None:
        """Addresses to offer as ICE host candidates; None means every interface."""
        if self.ice_host_addresses:
            return _split(self.ice_host_addresses)
        if self.host in ("0.0.0.0", "::", ""):
            return None
        return [self.host]

    def validate(self) -> "Settings":
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is not in 0-65535")
        if self.tts not in TTS_PROVIDERS:
            problems.append(f"tts {self.tts!r} is not one of {', '.join(TTS_PROVIDERS)}")
        for name in (
            "max_sessions",
            "max_queued_utterances",
            "max_text_chars",
            "espeak_words_per_minute",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.tts == "cartesia":
            if not self.cartesia_api_key:
                problems.append(
                    "tts cartesia needs the API key in the environment: CARTESIA_API_KEY"
                )
            if not self.cartesia_voice:
                problems.append("tts cartesia needs a voice id: VOICE_RTC_CARTESIA_VOICE")
        if self.tts_max_retries < 0:
            problems.append("tts_max_retries must be 0 or more")
        for name in (
            "tts_first_audio_timeout_s",
            "tts_stall_timeout_s",
            "breaker_failure_threshold",
            "breaker_recovery_s",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.transport not in TRANSPORTS:
            problems.append(f"transport {self.transport!r} is not one of {', '.join(TRANSPORTS)}")
        for name in (
            "session_grace_s",
            "resume_window_ms",
            "position_interval_ms",
            "heartbeat_interval_s",
            "heartbeat_timeout_s",
            "reconnect_max_attempts",
            "ice_timeout_ms",
            "fallback_loss_window_s",
            "drain_timeout_s",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        for name in (
            "hello_timeout_s",
            "connection_messages_per_second",
            "http_timeout_s",
            "sockets_per_second_per_ip",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.max_pending_per_ip < 1 or self.connection_message_burst < 1:
            problems.append("max_pending_per_ip and connection_message_burst must be at least 1")
        if self.max_connections < 0:
            problems.append("max_connections must be 0 (from the descriptor limit) or more")
        if not 6000 <= self.opus_bitrate <= 128000:
            problems.append("opus_bitrate must be in 6000-128000 (bits per second)")
        if not 0 <= self.opus_complexity <= 10:
            problems.append("opus_complexity must be in 0-10")
        if self.silence not in SILENCE_MODES:
            problems.append(f"silence {self.silence!r} is not one of {', '.join(SILENCE_MODES)}")
        if not 0.5 <= self.session_lease_s <= 60:
            problems.append("session_lease_s must be in 0.5-60")
        if not 200 <= self.lookahead_ms <= 60_000:
            problems.append("lookahead_ms must be in 200-60000")
        if not 10 <= self.admission_loop_percent <= 100:
            problems.append("admission_loop_percent must be in 10-100")
        if self.admission_lateness_ms <= 0:
            problems.append("admission_lateness_ms must be positive")
        if not 0 < self.fallback_loss_percent <= 100:
            problems.append("fallback_loss_percent must be in (0, 100]")
        if self.max_message_bytes < 1024 or self.max_sdp_bytes < 1024:
            problems.append("max_message_bytes and max_sdp_bytes must be at least 1024")
        if logging.getLevelName(self.log_level.upper()) not in range(0, 60, 10):
            problems.append(f"log_level {self.log_level!r} is not a logging level")
        for address in self.host_addresses or []:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                problems.append(f"ice_host_addresses: {address!r} is not an IP address")
        for url in self.ice_server_urls:
            if not url.startswith(("stun:", "turn:", "turns:")):
                problems.append(f"ice_servers: {url!r} is not a stun:, turn: or turns: URL")
        for url in self.turn_url_list:
            if not url.startswith(("turn:", "turns:")):
                problems.append(f"turn_urls: {url!r} is not a turn: or turns: URL")
        if self.turn_url_list and not self.turn_secret:
            problems.append("turn_urls needs the shared secret in VOICE_RTC_TURN_SECRET")
        if not (self.jwt_secret or self.jwt_public_key_file) and not self.loopback_only:
            problems.append(
                f"listening on {self.host} needs authentication: set VOICE_RTC_JWT_SECRET "
                "(HS256) or VOICE_RTC_JWT_PUBLIC_KEY_FILE (RS256); without either, only a "
                "loopback address is allowed (dev mode)"
            )
        if self.jwt_secret and len(self.jwt_secret) < 32:
            problems.append("VOICE_RTC_JWT_SECRET must be at least 32 characters")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append(f"redis_url {self.redis_url!r} is not a redis:// URL")
        for name in (
            "limit_connections_per_minute",
            "limit_speak_per_hour",
            "limit_chars_per_minute",
            "limit_telemetry_events_per_minute",
            "limit_sessions_per_user",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.service_api_key and len(self.service_api_key) < 32:
            problems.append("VOICE_RTC_SERVICE_API_KEY must be at least 32 characters")
        if self.session_token_ttl_s < 60:
            problems.append("session_token_ttl_s must be at least 60")
        if self.turn_ttl_s < 60:
            problems.append("turn_ttl_s must be at least 60")
        if self.workers != "auto" and not (self.workers.isdigit() and int(self.workers) >= 1):
            problems.append(f"workers {self.workers!r} is not a number of at least 1, or auto")
        elif self.worker_count > 1 and not self.redis_url:
            problems.append(
                f"workers {self.workers} needs VOICE_RTC_REDIS_URL: several workers share their "
                "sessions through Redis (or set VOICE_RTC_WORKERS=1)"
            )
        if problems:
            raise SettingsError("; ".join(problems))
        return self


HELP = {
    "host": "address to listen on",
    "port": "port to listen on",
    "tts": f"speech provider: {', '.join(TTS_PROVIDERS)}",
    "espeak_voice": "eSpeak NG voice name",
    "espeak_words_per_minute": "eSpeak NG speaking rate",
    "tone_frequency_hz": "frequency of the tone provider when the text names none",
    "cartesia_model": "Cartesia model id",
    "cartesia_voice": "Cartesia voice id",
    "cartesia_base_url": "Cartesia API address",
    "cartesia_api_key": "Cartesia API key: from CARTESIA_API_KEY in the environment only",
    "tts_max_retries": "retries of a failed remote TTS request before the fallback voice speaks",
    "tts_first_audio_timeout_s": "a remote TTS request with no audio by then has failed",
    "tts_stall_timeout_s": "a remote TTS stream silent this long has failed",
    "breaker_failure_threshold": "remote TTS failures in a row that open the circuit breaker",
    "breaker_recovery_s": "how long the breaker stays open before a trial request",
    "ice_servers": "comma-separated STUN/TURN URLs handed to both peers (none by default)",
    "ice_host_addresses": "comma-separated IPs the server offers as ICE host candidates "
    "(default: the listen address, or every interface when it listens on all)",
    "turn_urls": "comma-separated turn:/turns: URLs; clients get time-limited credentials for them",
    "turn_secret": "the secret shared with coturn (static-auth-secret): environment only",
    "turn_ttl_s": "how long minted TURN credentials stay valid",
    "jwt_secret": "HS256 secret for client tokens (32+ characters): environment only",
    "jwt_public_key_file": "PEM public key file: verify RS256 client tokens instead",
    "jwt_audience": "the `aud` client tokens must carry",
    "jwt_issuer": "the `iss` client tokens must carry (unchecked when empty)",
    "service_api_key": "an app backend's key for POST /api/sessions and the agent channel: "
    "environment only",
    "session_token_ttl_s": "how long the listener and agent tokens a made session comes with "
    "stay valid",
    "allowed_origins": "comma-separated origins allowed to open the WebSocket besides this one",
    "trust_x_forwarded_for": "take client IPs from X-Forwarded-For (behind a proxy you run)",
    "redis_url": "share rate limits between processes through this Redis",
    "limit_connections_per_minute": "new connections a user, and an IP, may open per minute",
    "limit_speak_per_hour": "utterances a user may start per hour",
    "limit_chars_per_minute": "characters of text a user may send per minute",
    "limit_telemetry_events_per_minute": "telemetry events a user may send per minute",
    "limit_sessions_per_user": "sessions a user may have open at once",
    "max_sessions": "sessions open at once on this process, at most (measured load may say less)",
    "admission_loop_percent": "refuse new sessions (SERVER_BUSY) when the event loop is this busy",
    "admission_lateness_ms": "...or when the clock's ticks leave this late (p99 over 2 s)",
    "opus_bitrate": "Opus bitrate for speech, bits per second",
    "opus_complexity": "Opus encoder complexity, 0 (cheapest) to 10 (best)",
    "opus_fec": "Opus in-band forward error correction",
    "silence": "dtx (send next to nothing while silent) or packet (a silent packet every 20 ms)",
    "lookahead_ms": "speech synthesized and encoded ahead of playback, at most",
    "max_queued_utterances": "utterances queued per session",
    "max_text_chars": "characters in one speak request",
    "max_message_bytes": "bytes in one signaling message",
    "max_sdp_bytes": "bytes in one SDP offer",
    "session_grace_s": "how long a session waits for its listener to come back",
    "session_lease_s": "with Redis: how long a process's claim on a session lasts unrenewed "
    "(a crashed process's sessions move on this much later)",
    "resume_window_ms": "audio sent but not acknowledged as played, kept to replay on resume",
    "position_interval_ms": "how often clients report their playback position",
    "hello_timeout_s": "a socket that has not said a valid hello by then is closed",
    "max_pending_per_ip": "sockets one address may hold open before their hello",
    "sockets_per_second_per_ip": "new WebSockets one address may open per second (and at once)",
    "connection_messages_per_second": "messages a connection may send per second after hello, "
    "sustained (before it: 5, and 10 at once)...",
    "connection_message_burst": "...and in a burst; beyond, it is told once and closed (1008)",
    "http_timeout_s": "HTTP request headers and bodies must arrive within this",
    "max_connections": "open connections at most (0: a third of the file descriptor limit)",
    "state_dir": "where a dev-mode server keeps its token secret across restarts "
    "(default ~/.local/state/voice-rtc)",
    "heartbeat_interval_s": "how often clients ping",
    "heartbeat_timeout_s": "a client silent for two intervals plus this is dead",
    "reconnect_max_attempts": "reconnection attempts a client makes before giving up",
    "transport": "auto (WebRTC, falling back to WebSocket), or force webrtc or websocket",
    "ice_timeout_ms": "browsers fall back to WebSocket if ICE has not connected by then",
    "fallback_loss_percent": "browsers fall back to WebSocket above this packet loss...",
    "fallback_loss_window_s": "...sustained for this long",
    "drain_timeout_s": "on SIGTERM, how long speech in progress may go on before the server stops",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "workers": "processes serving one port (SO_REUSEPORT), or auto: one per core; more than "
    "one needs VOICE_RTC_REDIS_URL",
}


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _convert(name: str, kind: type, raw: str) -> Any:
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{name}: {raw!r} is not true or false")
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a valid {kind.__name__}") from None


def load_settings(env: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
    """Defaults, then VOICE_RTC_* from `env`, then command-line options; validated."""
    kinds = {f.name: type(f.default) for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, kind in kinds.items():
        variable = SECRET_ENV.get(name, ENV_PREFIX + name.upper())
        raw = env.get(variable)
        if raw is not None:
            values[name] = _convert(variable, kind, raw)
    parser = argparse.ArgumentParser(description="voice-rtc media server")
    for name in kinds:
        if name not in SECRET_ENV:
            parser.add_argument("--" + name.replace("_", "-"), dest=name, type=str, help=HELP[name])
    for name, raw in vars(parser.parse_args(list(argv))).items():
        if raw is not None:
            values[name] = _convert("--" + name.replace("_", "-"), kinds[name], raw)
    return dataclasses.replace(Settings(), **values).validate()
