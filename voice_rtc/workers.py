"""Several worker processes serving one port: `server.py --workers N`.

A process paces all its sessions on one event loop, so on one core. With N workers the kernel
spreads new connections over N processes listening on the same port (SO_REUSEPORT), each a
replica like any other: sessions live in Redis, so whichever worker a listener reaches can take
its session over (a crashed worker's sessions move on once their leases lapse).

The supervisor (this module's `supervise`) holds the port, makes the dev-mode secret before any
worker needs it, starts the workers (`server.py` again, as a worker), prints the URL once they
all serve, restarts a worker that dies (with backoff, and gives up if they keep dying), passes
SIGTERM / SIGINT on to every worker (each hands its sessions off, as one server does) and exits
when they have. It gives the workers a run directory: `metrics/` for prometheus-client's
multiprocess mode, and `worker-<i>.json`, each worker's status, which /health and /ready read.
"""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import multiprocess

from . import metrics
from .auth import DEFAULT_STATE_DIR, dev_secret
from .config import Settings

SLOT_ENV = "VOICE_RTC_WORKER_SLOT"  # set by the supervisor: which worker a process is
STATUS_EVERY_S = 1.0
STALE_S = 3.5  # a worker whose status is older than this counts as down (hung, or gone)
RESTART_BACKOFF_S = (0.5, 10.0)  # first delay, cap: doubling while workers keep dying
RESTART_WINDOW_S = 60.0
MAX_RESTARTS = 10  # deaths within the window before the supervisor gives up
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 15.0  # beyond the drain timeout, before the workers left are killed
POLL_S = 0.05
log = logging.getLogger("voice_rtc.workers")


@dataclass(frozen=True)
class WorkerSlot:
    """Which worker this process is, of how many, and where they report."""

    index: int
    count: int
    run_dir: Path
    supervisor_pid: int

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str]) -> "WorkerSlot | None":
        raw = env.get(SLOT_ENV)
        if not raw:
            return None
        body = json.loads(raw)
        return cls(body["index"], body["count"], Path(body["run_dir"]), body["supervisor_pid"])

    def to_env(self) -> str:
        body = {"index": self.index, "count": self.count, "run_dir": str(self.run_dir)}
        return json.dumps({**body, "supervisor_pid": self.supervisor_pid})

    def status_path(self, index: int) -> Path:
        return self.run_dir / f"worker-{index}.json"

    def report(self, status: dict[str, Any]) -> None:
        """Write this worker's status (whole: a rename), bring the shared metrics up to date,
        and stop if the supervisor is gone (killed: no one would restart or stop us)."""
        metrics.fold()
        body = {**status, "index": self.index, "pid": os.getpid(), "at": time.time()}
        path = self.status_path(self.index)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(body))  # a few hundred bytes: cheap enough on the loop
        temp.replace(path)
        if os.getppid() != self.supervisor_pid:
            log.warning("supervisor_gone", extra={"worker": self.index})
            os.kill(os.getpid(), signal.SIGTERM)  # drain, as on a deploy

    def statuses(self) -> list[dict[str, Any]]:
        """Every worker's last status; "down" if it has none, or none of late."""
        found = []
        for index in range(self.count):
            try:
                body = json.loads(self.status_path(index).read_text())
            except (OSError, ValueError):
                body = {}
            if time.time() - body.get("at", 0) > STALE_S:
                body = {"index": index, "status": "down", "last_pid": body.get("pid")}
            found.append(body)
        return found


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to the port the workers will share (port 0: a free one), never listening:
    it keeps the port ours while a worker restarts, and gets no connection."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


class Supervisor:
    def __init__(self, settings: Settings, command: Sequence[str]) -> None:
        self.settings = settings
        self.count = settings.worker_count
        self.run_dir = Path(tempfile.mkdtemp(prefix="voice-rtc-workers-"))
        self.metrics_dir = self.run_dir / "metrics"
        self.metrics_dir.mkdir()
        self.port_socket = reserve_port(settings.host, settings.port)
        self.host, self.port = self.port_socket.getsockname()[:2]
        self.command = [*command, "--port", str(self.port), "--workers", "1"]
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * self.count
        self.restart_at: dict[int, float] = {}
        self.deaths: list[float] = []
        self.stopping = False
        self.failed = False

    def slot(self, index: int) -> WorkerSlot:
        return WorkerSlot(index, self.count, self.run_dir, os.getpid())

    def start(self, index: int) -> None:
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            SLOT_ENV: self.slot(index).to_env(),
        }
        # Its own process group: a Ctrl-C in the terminal reaches the supervisor only, which
        # passes it on once (a second one would mean "stop at once").
        process = subprocess.Popen(self.command, env=env, process_group=0)
        self.workers[index] = process
        log.info("worker_started", extra={"worker": index, "pid": process.pid})

    def signal_all(self, signum: int) -> None:
        for process in self.workers:
            if process is not None and process.poll() is None:
                process.send_signal(signum)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("workers_stopping", extra={"signal": signal.Signals(signum).name})
        self.stopping = True
        self.signal_all(signum)  # a second signal reaches them too: they stop at once

    def serving(self) -> bool:
        """Has every worker written its first status?"""
        for index, process in enumerate(self.workers):
            try:
                status = json.loads(self.slot(index).status_path(index).read_text())
            except (OSError, ValueError):
                return False
            if process is None or status.get("pid") != process.pid:
                return False
        return True

    def reap(self, index: int, process: subprocess.Popen[bytes], announced: bool) -> None:
        """A worker exited: forget its live metrics and its status; restart it unless we are
        stopping (or it never came up: its settings or its voice are broken, say so)."""
        code = process.returncode
        self.workers[index] = None
        multiprocess.mark_process_dead(process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        with_pid = self.slot(index).status_path(index)
        try:
            if json.loads(with_pid.read_text()).get("pid") == process.pid:
                with_pid.unlink()
        except (OSError, ValueError):
            pass
        if self.stopping:
            self.failed |= code != 0
            return
        if not announced:
            sys.stderr.write(f"voice-rtc: worker {index} exited at start (code {code})\n")
            self.failed = True
            self.stop()
            return
        now = time.monotonic()
        self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW_S] + [now]
        if len(self.deaths) > MAX_RESTARTS:
            log.error("workers_keep_dying", extra={"deaths": len(self.deaths)})
            self.failed = True
            self.stop()
            return
        first, cap = RESTART_BACKOFF_S
        delay = min(cap, first * 2 ** (len(self.deaths) - 1))
        log.error("worker_died", extra={"worker": index, "code": code, "restart_in_s": delay})
        self.restart_at[index] = now + delay

    def stop(self) -> None:
        self.stopping = True
        self.restart_at.clear()
        self.signal_all(signal.SIGTERM)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)
        for index in range(self.count):
            self.start(index)
        announced, started_at, deadline = False, time.monotonic(), float("inf")
        while any(self.workers) or (self.restart_at and not self.stopping):
            for index, process in enumerate(self.workers):
                if process is not None and process.poll() is not None:
                    self.reap(index, process, announced)
            now = time.monotonic()
            for index, due in list(self.restart_at.items()):
                if due <= now and not self.stopping:
                    del self.restart_at[index]
                    self.start(index)
            if not announced and not self.stopping:
                if self.serving():
                    announced = True
                    url = f"http://{self.host}:{self.port}/"
                    print(f"voice-rtc is serving the demo with {self.count} workers at {url}")
                    sys.stdout.flush()
                elif now - started_at > START_TIMEOUT_S:
                    sys.stderr.write("voice-rtc: the workers did not start in time\n")
                    self.failed = True
                    self.stop()
            if self.stopping and deadline == float("inf"):
                deadline = now + self.settings.drain_timeout_s + STOP_GRACE_S
            if now > deadline:
                log.error("workers_killed", extra={"after_s": round(now - deadline, 1)})
                self.signal_all(signal.SIGKILL)
            time.sleep(POLL_S)
        log.info("workers_stopped")
        return 1 if self.failed else 0

    def close(self) -> None:
        self.port_socket.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def supervise(settings: Settings, command: Sequence[str]) -> int:
    """Run `settings.worker_count` workers, each `command` (server.py and its arguments) as a
    worker, until they have stopped; the exit code."""
    if not (settings.jwt_secret or settings.jwt_public_key_file):
        # Dev mode: one secret for every worker (a token one minted works at any other), made
        # before they start.
        dev_secret(Path(settings.state_dir or DEFAULT_STATE_DIR).expanduser())
    supervisor = Supervisor(settings, command)
    try:
        return supervisor.run()
    finally:
        supervisor.close()
