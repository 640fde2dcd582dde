"""Settings: each declared once, below, as a field of `Settings` (name, type, default, meaning,
bounds or choices, secret or not). From that declaration come:

- the environment variable, VOICE_RTC_<NAME> (or the name the declaration gives);
- the command-line option, --kebab-name, which overrides the environment; secrets have none
  (a command line is visible in `ps`): they come from the environment only;
- validation: a bad value stops the server with a message naming the variable or option and
  why; the checks that span settings are in `Settings._consistent`;
- the README's settings table: `python -m voice_rtc.config --markdown` prints it, and
  `python -m voice_rtc.config --readme README.md` rewrites it in place.

Secrets never appear in the repr of Settings, nor in a validation message. The defaults run a
working demo on 127.0.0.1 with no setup.

To add a setting: add a field with `setting(...)`, then run the `--readme` command above.
"""

import argparse
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

ENV_PREFIX = "VOICE_RTC_"
TTS_PROVIDERS = ("espeak", "tone", "cartesia")
TRANSPORTS = ("auto", "webrtc", "websocket")
SILENCE_MODES = ("dtx", "packet")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The speech codec's defaults (voice_rtc.opus), chosen with the benchmark's quality check.
OPUS_BITRATE = 28000
OPUS_COMPLEXITY = 6
README_BEGIN = "<!-- settings: made by `python -m voice_rtc.config --markdown`; do not edit -->"
README_END = "<!-- end of settings -->"


class SettingsError(ValueError):
    pass


def setting(
    default: object,
    meaning: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[str] = (),
    env: str = "",
    secret: bool = False,
    shown: str = "",
) -> Any:
    """Declare a setting. `meaning` is Markdown (the README's words; --help shows it plain);
    `env` replaces VOICE_RTC_<NAME>; `secret`: environment only, never shown; `shown` is the
    README's default column when the value alone would say too little."""
    extra: dict[str, Any] = {"choices": list(choices), "env": env, "shown": shown}
    return Field(
        default, description=meaning, ge=ge, gt=gt, le=le, lt=lt, repr=not secret,
        json_schema_extra=extra,
    )  # fmt: skip


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _each(check: Callable[[str], bool], problem: str) -> AfterValidator:
    """A comma-separated list whose every item passes `check`; else "'item' <problem>"."""

    def validate(value: str) -> str:
        for item in _split(value):
            if not check(item):
                raise ValueError(f"{item!r} {problem}")
        return value

    return AfterValidator(validate)


def _is_ip(item: str) -> bool:
    try:
        ipaddress.ip_address(item)
    except ValueError:
        return False
    return True


def _either(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + " or " + items[-1] if len(items) > 1 else items[0]


def _url(*schemes: str) -> AfterValidator:
    return _each(lambda url: url.startswith(schemes), f"is not a {_either(schemes)} URL")


def _readable_file(path: str) -> str:
    if path and not (Path(path).is_file() and os.access(path, os.R_OK)):
        raise ValueError(f"{path!r} is not a readable file")
    return path


def _worker_count(value: str) -> str:
    if value != "auto" and not (value.isdigit() and int(value) >= 1):
        raise ValueError("must be a number of at least 1, or auto")
    return value


IpList = Annotated[str, _each(_is_ip, "is not an IP address")]
IceUrlList = Annotated[str, _url("stun:", "turn:", "turns:")]
TurnUrlList = Annotated[str, _url("turn:", "turns:")]
RedisUrl = Annotated[str, _url("redis://", "rediss://", "unix://")]
HttpUrl = Annotated[str, _url("http://", "https://")]
OptionalFile = Annotated[str, AfterValidator(_readable_file)]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(
        8080, "port to listen on (`0`: any free port; the URL printed says which)", ge=0, le=65535
    )
    tts: str = setting(
        "espeak",
        "speech provider: `espeak` (embedded eSpeak NG), `cartesia` (remote, with eSpeak as "
        "its fallback), `tone` (a test signal)",
        choices=TTS_PROVIDERS,
    )
    espeak_voice: str = setting("en-us", "eSpeak NG voice name")
    espeak_words_per_minute: int = setting(175, "eSpeak NG speaking rate", ge=1)
    tone_frequency_hz: float = setting(
        440.0,
        "`tone` frequency when the text names none (`660hz 2s` names both)",
        gt=0,
        lt=11025,  # half the sample rate
    )
    cartesia_model: str = setting("sonic-2", "Cartesia model id (with `VOICE_RTC_TTS=cartesia`)")
    cartesia_voice: str = setting("", "Cartesia voice id; required with `cartesia`")
    cartesia_base_url: HttpUrl = setting("https://api.cartesia.ai", "Cartesia API address")
    cartesia_api_key: str = setting(
        "",
        "Cartesia API key, never in a file in the repo; required with `cartesia`",
        env="CARTESIA_API_KEY",
        secret=True,
    )
    tts_max_retries: int = setting(
        2, "retries of a failed remote TTS request (before any of its audio played)", ge=0
    )
    tts_first_audio_timeout_s: float = setting(
        3.0, "a remote TTS request with no audio by then has failed", gt=0
    )
    tts_stall_timeout_s: float = setting(
        2.0, "a remote TTS stream silent this long has failed", gt=0
    )
    breaker_failure_threshold: int = setting(
        5, "remote TTS failures in a row that open the circuit breaker", ge=1
    )
    breaker_recovery_s: float = setting(
        60.0, "how long the breaker stays open before one trial request", gt=0
    )
    ice_servers: IceUrlList = setting(
        "",
        "comma-separated `stun:`/`turn:` URLs handed to both peers; none by default, never a "
        "public default",
    )
    ice_host_addresses: IpList = setting(
        "",
        "comma-separated IPs offered as ICE host candidates; default the listen address, or "
        "every interface when listening on `0.0.0.0`",
        shown="*(the listen address)*",
    )
    turn_urls: TurnUrlList = setting(
        "",
        "comma-separated `turn:`/`turns:` URLs; each listener gets time-limited credentials "
        "for them",
    )
    turn_secret: str = setting(
        "",
        "the secret shared with coturn (`static-auth-secret`); required with TURN URLs",
        secret=True,
    )
    turn_ttl_s: int = setting(3600, "how long minted TURN credentials stay valid", ge=60)
    jwt_secret: str = setting(
        "",
        "HS256 secret for client tokens, 32+ characters",
        secret=True,
        shown="*(dev mode)*",
    )
    jwt_public_key_file: OptionalFile = setting("", "a PEM public key: verify RS256 tokens instead")
    jwt_audience: str = setting("voice-rtc", "the `aud` tokens must carry")
    jwt_issuer: str = setting("", "the `iss` tokens must carry", shown="*(unchecked)*")
    service_api_key: str = setting(
        "",
        "an app backend's key (32+ characters) for `POST /api/sessions` and the agent channel, "
        "as `Authorization: Bearer` (a token with `role: service` works too)",
        secret=True,
    )
    session_token_ttl_s: int = setting(
        3600,
        "how long the listener and agent tokens that `POST /api/sessions` hands out stay valid",
        ge=60,
    )
    allowed_origins: str = setting(
        "",
        "comma-separated origins allowed to open the WebSocket besides pages served from here",
        shown="*(this server)*",
    )
    trust_x_forwarded_for: bool = setting(
        False,
        "take client addresses from `X-Forwarded-For` (only behind a proxy you run, which sets it)",
    )
    redis_url: RedisUrl = setting(
        "", "share sessions and rate limits between processes through this Redis"
    )
    limit_connections_per_minute: int = setting(
        30, "new connections per user, and per address, per minute", ge=1
    )
    limit_speak_per_hour: int = setting(600, "utterances a user may start per hour", ge=1)
    limit_chars_per_minute: int = setting(
        6000, "characters of text a user may send per minute", ge=1
    )
    limit_telemetry_events_per_minute: int = setting(
        600, "telemetry events a user may send per minute", ge=1
    )
    limit_sessions_per_user: int = setting(
        5, "sessions a user may have open at once (across processes with Redis)", ge=1
    )
    max_sessions: int = setting(
        1000,
        "sessions open at once on this process, at most (`SERVER_BUSY` beyond); the measured "
        'load usually says "full" sooner (see *Capacity*)',
        ge=1,
    )
    admission_loop_percent: float = setting(
        75.0,
        "refuse new sessions (`SERVER_BUSY`, `retry_after_s`) once the event loop is this "
        "busy, counting the sessions just admitted as speaking: it paces everyone, so it "
        "keeps room for bursts",
        ge=10,
        le=100,
    )
    admission_cpu_percent: float = setting(
        90.0,
        "...or once the process's cores or its encoding thread are this busy: encoding runs "
        "below the loop's priority, seconds ahead of playback, so it may fill more",
        ge=10,
        le=100,
    )
    admission_lateness_ms: float = setting(
        20.0,
        "...or once the clock's ticks leave this late (p90 over 2 s) while the process is busy "
        "itself",
        gt=0,
    )
    heap_trim_interval_s: float = setting(
        30.0,
        "how often the heap's free pages go back to the OS (glibc's `malloc_trim`; 0: never): "
        "what a crowd connecting or leaving freed among memory still in use",
        ge=0,
    )
    # Measured with eSpeak NG speech (python -m voice_rtc.bench --quality): see the README.
    opus_bitrate: int = setting(
        OPUS_BITRATE,
        "Opus bitrate for speech, bits per second (mono, wide-band: 16 kHz input)",
        ge=6000,
        le=128000,
    )
    opus_complexity: int = setting(
        OPUS_COMPLEXITY,
        "Opus encoder complexity, 0 (cheapest) to 10 (best quality per bit)",
        ge=0,
        le=10,
    )
    opus_fec: bool = setting(
        True,
        "Opus in-band forward error correction (a lost packet is rebuilt from the next one), "
        "coded while a WebRTC listener's receiver reports loss",
    )
    silence: str = setting(
        "dtx",
        "while nothing is said: `dtx` sends a silent packet only every 400 ms, `packet` one "
        "every 20 ms",
        choices=SILENCE_MODES,
    )
    lookahead_ms: int = setting(
        5000, "speech synthesized and encoded ahead of playback, at most", ge=200, le=60_000
    )
    pcm_lookahead_ms: int = setting(
        1000,
        "the same, for a listener taking PCM over WebSocket (kept unencoded: 44 KB a second)",
        ge=200,
        le=60_000,
    )
    max_queued_utterances: int = setting(
        16, "utterances queued per session (`QUEUE_FULL` beyond)", ge=1
    )
    max_text_chars: int = setting(
        2000, "characters in one speak request (`TEXT_TOO_LONG` beyond)", ge=1
    )
    max_message_bytes: int = setting(
        65536,
        "bytes in one signaling message (`MESSAGE_TOO_LARGE`; 4 times this closes the socket)",
        ge=1024,
    )
    max_sdp_bytes: int = setting(16384, "bytes in one SDP offer (`INVALID_SDP` beyond)", ge=1024)
    session_grace_s: float = setting(
        30.0, "how long a session waits for its listener to come back after a drop", gt=0
    )
    session_lease_s: float = setting(
        3.0,
        "with Redis: how long a process's claim on a session lasts unrenewed (a crashed "
        "process's sessions move on this much later)",
        ge=0.5,
        le=60,
    )
    resume_window_ms: int = setting(
        3000,
        "audio sent but not yet reported played, kept to replay on resume; past it the session "
        "holds",
        ge=1,
    )
    position_interval_ms: int = setting(
        250, "how often clients report their playback position", ge=1
    )
    hello_timeout_s: float = setting(
        5.0, "a socket that has not said a valid `hello` by then is closed", gt=0
    )
    max_pending_per_ip: int = setting(
        32, "sockets one address may hold open before their `hello` (HTTP 429 beyond)", ge=1
    )
    sockets_per_second_per_ip: float = setting(
        20.0,
        "new WebSockets one address may open per second (and at once); beyond, HTTP 429 before "
        "the upgrade",
        gt=0,
    )
    connection_messages_per_second: float = setting(
        50.0,
        "messages a connection may send per second once it has said `hello`, sustained "
        "(before `hello`: 5 a second, 10 at once)...",
        gt=0,
    )
    connection_message_burst: int = setting(
        100,
        "...and at once; beyond, the client is told once (`RATE_LIMIT_EXCEEDED`) and the "
        "socket closed (1008)",
        ge=1,
    )
    http_timeout_s: float = setting(
        10.0,
        "HTTP request headers, and bodies, must arrive within this; slower connections are dropped",
        gt=0,
    )
    max_connections: int = setting(
        0,
        "open connections at most; beyond, new ones are closed at once (0: a third of the "
        "process's file descriptor limit, which the server raises to its hard limit at start)",
        ge=0,
    )
    state_dir: str = setting(
        "",
        "where a dev-mode server keeps its token secret, so a restart does not sign everyone out",
        shown="`~/.local/state/voice-rtc`",
    )
    heartbeat_interval_s: float = setting(10.0, "how often clients ping", gt=0)
    heartbeat_timeout_s: float = setting(
        5.0, "a client silent for two intervals plus this is dead (closed with 4002)", gt=0
    )
    reconnect_max_attempts: int = setting(
        10,
        "reconnection attempts a client makes (backoff 1 s base, 30 s cap, full jitter)",
        ge=1,
    )
    transport: str = setting(
        "auto",
        "`auto` (WebRTC, falling back to WebSocket), or force `webrtc` or `websocket`",
        choices=TRANSPORTS,
    )
    ice_timeout_ms: int = setting(
        5000, "browsers fall back to WebSocket if ICE has not connected by then", ge=1
    )
    fallback_loss_percent: float = setting(
        10.0,
        "browsers fall back to WebSocket when packet loss stays above this...",
        gt=0,
        le=100,
    )
    fallback_loss_window_s: float = setting(5.0, "...for this long", gt=0)
    drain_timeout_s: float = setting(
        30.0,
        "on SIGTERM, how long speech in progress may go on before the process exits",
        gt=0,
    )
    log_level: str = setting(
        "INFO",
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`; logs are JSON lines on stderr",
        choices=LOG_LEVELS,
    )
    workers: Annotated[str, AfterValidator(_worker_count)] = setting(
        "1",
        "processes serving the port (`SO_REUSEPORT`), each with its own event loop, or `auto`: "
        "one per core; more than one needs `VOICE_RTC_REDIS_URL` (they share sessions there)",
    )

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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("*")
    @classmethod
    def _one_of_the_choices(cls, value: object, info: ValidationInfo) -> object:
        choices = SPECS_BY_NAME[str(info.field_name)].choices
        if choices and value not in choices:
            raise ValueError(f"must be {_either(choices)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        """The checks that span settings."""
        problems = []
        if self.tts == "cartesia":
            if not self.cartesia_api_key:
                problems.append(
                    "tts cartesia needs the API key in the environment: CARTESIA_API_KEY"
                )
            if not self.cartesia_voice:
                problems.append("tts cartesia needs a voice id: VOICE_RTC_CARTESIA_VOICE")
        if self.turn_url_list and not self.turn_secret:
            problems.append("VOICE_RTC_TURN_URLS needs the shared secret in VOICE_RTC_TURN_SECRET")
        if not (self.jwt_secret or self.jwt_public_key_file) and not self.loopback_only:
            problems.append(
                f"listening on {self.host or 'every address'} needs authentication: set "
                "VOICE_RTC_JWT_SECRET (HS256) or VOICE_RTC_JWT_PUBLIC_KEY_FILE (RS256); without "
                "either, only a loopback address is allowed (dev mode)"
            )
        for secret in ("jwt_secret", "service_api_key"):
            if 0 < len(getattr(self, secret)) < 32:
                problems.append(f"{SPECS_BY_NAME[secret].env} must be at least 32 characters")
        if self.worker_count > 1 and not self.redis_url:
            problems.append(
                f"workers {self.workers} needs VOICE_RTC_REDIS_URL: several workers share their "
                "sessions through Redis (or set VOICE_RTC_WORKERS=1)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True)
class Spec:
    """One setting's declaration, as the loader and the README table read it."""

    name: str
    kind: type
    default: object
    meaning: str  # Markdown
    env: str
    secret: bool
    choices: tuple[str, ...]
    shown: str  # the README's default column, Markdown

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def plain_meaning(self) -> str:
        return self.meaning.replace("**", "").replace("`", "")


def _spec(name: str, info: FieldInfo) -> Spec:
    extra = info.json_schema_extra
    assert isinstance(extra, dict), f"{name} is not declared with setting()"
    kind, choices = info.annotation, extra["choices"]  # pydantic keeps Annotated's metadata apart
    assert isinstance(kind, type) and isinstance(choices, list)
    return Spec(
        name=name,
        kind=kind,
        default=info.default,
        meaning=info.description or "",
        env=str(extra["env"]) or ENV_PREFIX + name.upper(),
        secret=not info.repr,
        choices=tuple(str(choice) for choice in choices),
        shown=str(extra["shown"]) or _shown(info.default),
    )


def _shown(default: object) -> str:
    if default == "":
        return "*(none)*"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float):
        return f"`{default:g}`"
    return f"`{default}`"


SPECS_BY_NAME = {name: _spec(name, info) for name, info in Settings.model_fields.items()}
SPECS: tuple[Spec, ...] = tuple(SPECS_BY_NAME.values())

# What a validation error says, by pydantic's error type; anything else, pydantic's message.
_WHY = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "finite_number": "is not a finite number",
    "bool_parsing": "is not true or false",
    "value_error": "{error}",
}


def _problem(error: ErrorDetails, sources: Mapping[str, str]) -> str:
    template = _WHY.get(error["type"])
    why = template.format(**error.get("ctx", {})) if template else error["msg"]
    if not error["loc"]:
        return why
    spec = SPECS_BY_NAME[str(error["loc"][0])]
    where = sources.get(spec.name, spec.env)
    return f"{where}: {why}" if spec.secret else f"{where}={error['input']!r}: {why}"


def option_parser() -> argparse.ArgumentParser:
    """The server's command line: an option per setting that is not a secret."""
    parser = argparse.ArgumentParser(
        description="voice-rtc media server. Every option is also an environment variable "
        "(--max-sessions: VOICE_RTC_MAX_SESSIONS); the option wins. Secrets "
        f"({', '.join(s.env for s in SPECS if s.secret)}) come from the environment only."
    )
    for spec in SPECS:
        if not spec.secret:
            metavar = "|".join(spec.choices) or spec.kind.__name__.upper()
            meaning = f"{spec.plain_meaning} [{spec.env}]".replace("%", "%%")
            parser.add_argument(spec.option, dest=spec.name, metavar=metavar, help=meaning)
    return parser


def load_settings(env: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
    """Defaults, then the environment's variables, then command-line options; validated."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}  # where each value came from, for error messages
    for spec in SPECS:
        if spec.env in env:
            values[spec.name], sources[spec.name] = env[spec.env], spec.env
    for name, raw in vars(option_parser().parse_args(list(argv))).items():
        if raw is not None:
            values[name], sources[name] = raw, SPECS_BY_NAME[name].option
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = [_problem(error, sources) for error in exc.errors()]
        raise SettingsError("; ".join(problems)) from None


def markdown_table() -> str:
    """The README's settings table."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for spec in SPECS:
        meaning = f"**environment only**: {spec.meaning}" if spec.secret else spec.meaning
        rows.append(f"| `{spec.env}` | {spec.shown} | {meaning} |")
    return "\n".join(rows) + "\n"


def with_table(readme: str) -> str:
    """`readme` with the table between its markers made anew."""
    pattern = re.compile(re.escape(README_BEGIN) + r"\n.*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(readme):
        raise SettingsError(f"no settings markers in the README: {README_BEGIN} ... {README_END}")
    return pattern.sub(lambda _: f"{README_BEGIN}\n{markdown_table()}{README_END}", readme)


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m voice_rtc.config", description="The settings table, as the README has it."
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print it")
    group.add_argument("--readme", type=Path, help="rewrite it in this file, between its markers")
    args = parser.parse_args(argv)
    if args.readme:
        args.readme.write_text(with_table(args.readme.read_text()))
    else:
        sys.stdout.write(markdown_table())


if __name__ == "__main__":
    main(sys.argv[1:])
