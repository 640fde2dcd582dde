"""Child processes: the servers the bench starts (voice-rtc, the reference), where they run
(pinned to cores), and stopping any child."""

import asyncio
import contextlib
import functools
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from . import BenchError
from .options import Target

REPO = Path(__file__).resolve().parent.parent.parent
STOP_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Placement:
    """Which cores the server and the load clients run on; None: wherever the OS likes."""

    server: frozenset[int] | None
    clients: frozenset[int] | None
    nice: int = 0  # of server and clients; below 0 puts them ahead of the machine's other work

    @classmethod
    def choose(
        cls, pin: bool, nice: int = 0, sample_s: float = 0.5, server_workers: int = 1
    ) -> "Placement":
        """The server on one core, the clients on the rest, when this process may use two or
        more; otherwise no pinning. The server gets the core least busy over `sample_s`
        (on a shared machine, other work may hold one of them). Several server workers get
        every core (one each, as the kernel schedules them) and the clients share them: a
        machine has no core to spare for them then."""
        cores = sorted(os.sched_getaffinity(0))
        if not pin or len(cores) < 2:
            return cls(None, None, nice)
        if server_workers > 1:
            return cls(frozenset(cores), frozenset(cores), nice)
        busy = psutil.cpu_percent(interval=sample_s, percpu=True) if sample_s > 0 else []
        server = min(cores, key=lambda c: busy[c] if c < len(busy) else 0.0)
        return cls(frozenset({server}), frozenset(cores) - {server}, nice)

    @classmethod
    def beside(cls, server_pid: int, pin: bool, nice: int = 0) -> "Placement":
        """For a server started elsewhere (it stays where it runs): the clients on the cores
        its affinity leaves, where it leaves any."""
        free = frozenset(os.sched_getaffinity(0)) - frozenset(os.sched_getaffinity(server_pid))
        return cls(None, free if pin and free else None, nice)

    def server_setup(self) -> Callable[[], None] | None:
        return child_setup(self.server, self.nice)

    def client_setup(self) -> Callable[[], None] | None:
        return child_setup(self.clients, self.nice)

    @property
    def client_cores(self) -> int:
        return len(self.clients) if self.clients else len(os.sched_getaffinity(0))

    def describe(self) -> str:
        where = self._where()
        return where if self.nice == 0 else f"{where}; nice {self.nice}"

    def _where(self) -> str:
        if self.clients is None:
            count = len(os.sched_getaffinity(0))
            return f"not pinned ({count} core{'s' if count > 1 else ''} available)"
        if self.server is None:
            return f"load clients on core {_cores(self.clients)}; the server is not the bench's"
        if self.server == self.clients:
            return f"server workers and load clients share cores {_cores(self.server)}"
        return f"server on core {_cores(self.server)}, load clients on core {_cores(self.clients)}"


def _cores(cores: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


def child_setup(cores: frozenset[int] | None, nice: int) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and every thread it will start) to `cores`, at
    `nice`; None when there is nothing to set."""
    if cores is None and nice == 0:
        return None

    def setup() -> None:
        if cores is not None:
            os.sched_setaffinity(0, cores)
        if nice:
            os.nice(nice)

    return setup


async def stop_process(process: asyncio.subprocess.Process, grace: float = 0.0) -> None:
    """Close its stdin and give it `grace` seconds to exit by itself; then SIGTERM, then SIGKILL
    if it has not exited within STOP_TIMEOUT_S."""
    if process.stdin is not None:
        process.stdin.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()


@functools.lru_cache(maxsize=1)
def server_options() -> frozenset[str]:
    """The settings `server.py --help` lists (as names: opus_bitrate), so that the bench can
    drive today's server and tomorrow's alike."""
    shown = subprocess.run(
        [sys.executable, str(REPO / "server.py"), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return frozenset(m.replace("-", "_") for m in re.findall(r"--([a-z][a-z0-9-]*)", shown))


def voice_rtc_args(
    tts: str, settings: Mapping[str, str], sessions: int, workers: int = 1
) -> tuple[list[str], list[str]]:
    """server.py's command line, and the names of the `settings` it does not accept."""
    args = [sys.executable, str(REPO / "server.py"), "--host", "127.0.0.1", "--port", "0"]
    args += ["--tts", tts, "--log-level", "WARNING"]
    if workers > 1:
        if "workers" not in server_options():
            raise BenchError("this server.py has no --workers")
        args += ["--workers", str(workers)]
    # Every listener connects from this one address, and speaks a lot: lift those limits. The
    # capacity setting is an upper bound just above the load (admission control, where the
    # server has it, still decides).
    lifted = {
        "limit_connections_per_minute": "1000000",
        "limit_speak_per_hour": "1000000",
        "limit_chars_per_minute": "100000000",
        "sockets_per_second_per_ip": "1000000",
        "max_pending_per_ip": "1000000",
        "max_sessions": str(sessions // workers + 16),  # per worker
    }
    accepted = server_options()
    skipped = [name for name in settings if name not in accepted]
    for name, value in {**lifted, **settings}.items():
        if name in accepted:
            args += ["--" + name.replace("_", "-"), value]
    return args, skipped


def reference_args(tts: str) -> list[str]:
    return [sys.executable, "-m", "voice_rtc.bench.reference", "--port", "0", "--tts", tts]


async def start_server(
    stack: contextlib.AsyncExitStack,
    args: list[str],
    log_path: Path,
    setup: Callable[[], None] | None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, int]:
    """Start a server that prints its URL as the last word of its first line; (url, pid)."""
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            *args,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            preexec_fn=setup,
            env={**os.environ, **(env or {})},
        )
    stack.push_async_callback(stop_process, process)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
    if not line:
        raise BenchError(f"the server did not start; its log is {log_path}")
    return line.decode().split()[-1], process.pid


def server_command(
    target: Target, tts: str, settings: Mapping[str, str], sessions: int, workers: int = 1
) -> tuple[list[str], list[str]]:
    """The command that starts `target` for `sessions` listeners, and the settings skipped."""
    if target == "reference":
        return reference_args(tts), []
    return voice_rtc_args(tts, settings, sessions, workers)


async def start_redis(stack: contextlib.AsyncExitStack) -> str:
    """A redis-server on a free loopback port, nothing persisted, for the length of `stack`;
    its URL. Several voice-rtc workers share their sessions through it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        process = await asyncio.create_subprocess_exec(
            "redis-server", "--bind", "127.0.0.1", "--port", str(port),
            "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError:
        raise BenchError("several workers need Redis: install redis-server") from None
    stack.push_async_callback(stop_process, process)
    for _ in range(100):
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return f"redis://127.0.0.1:{port}/0"
        await asyncio.sleep(0.05)
    raise BenchError("redis-server did not start")
