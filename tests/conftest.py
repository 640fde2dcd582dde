"""Fixtures that run real servers on loopback and stop them afterwards."""

import asyncio
import fcntl
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis
from playwright.async_api import Browser, Page

from tests import netns as netns_module
from tests.browser import chromium, new_page

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def machine_share(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """With tests run in parallel (pytest-xdist, as scripts/test does), a `solo` test has the
    machine to itself: it asserts timing under a load it makes (floods, restarts, the
    benchmark), which another test's browser on the same cores would distort. The others run
    side by side. A shared lock for the others and an exclusive one for a solo test, behind a
    turnstile so that the others cannot keep a solo test waiting forever."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: each test has the machine
        yield
        return
    solo = request.node.get_closest_marker("solo") is not None
    shared = tmp_path_factory.getbasetemp().parent  # the run's, which every worker's is in
    with open(shared / "turnstile.lock", "a") as turnstile, open(shared / "cpu.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        yield


@dataclass
class RunningServer:
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "ws"

    def log(self) -> str:
        return self.log_path.read_text()

    async def stop(self, timeout: float = 15.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)


StartServer = Callable[..., Awaitable[RunningServer]]


async def dev_token(
    http: aiohttp.ClientSession, server: RunningServer, user: str = "tester"
) -> str:
    """A token from a dev-mode server (loopback, no key configured), for raw-protocol tests."""
    async with http.get(server.url + "api/dev-token", params={"user": user}) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["token"])


@pytest.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Start `python server.py` on a free loopback port with the given settings (as CLI options)."""
    servers: list[RunningServer] = []

    async def start(
        env: dict[str, str] | None = None, wrap: list[str] | None = None, **settings: object
    ) -> RunningServer:
        """`wrap` runs the server under another command, e.g. `ip netns exec NAME`."""
        args = [*(wrap or []), sys.executable, str(REPO / "server.py"), "--host", "127.0.0.1"]
        args += ["--port", "0"]
        settings.setdefault("tts", "tone")
        settings.setdefault("state_dir", tmp_path / "state")  # the dev-mode secret, per test
        for name, value in settings.items():
            args += ["--" + name.replace("_", "-"), str(value)]
        log_path = tmp_path / f"server-{len(servers)}.log"
        process = await asyncio.create_subprocess_exec(
            *args,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_path.open("w"),
            env={**os.environ, **(env or {})},
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
        server = RunningServer(line.decode().split()[-1], process, log_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    """A server with the `tone` provider."""
    return await start_server()


@pytest.fixture
def netns() -> Iterator[netns_module.Namespace]:
    """A network namespace behind a veth pair, with controllable UDP loss (needs root)."""
    namespace = netns_module.create()
    yield namespace
    netns_module.delete(namespace)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A real redis-server on a loopback port, nothing persisted, that a test can stop and
    start again (on the same port: an outage, then a restart that lost everything)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
            "--daemonize", "no", "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    if await client.ping():
                        return
                except redis.ConnectionError:
                    await asyncio.sleep(0.05)
            raise RuntimeError("redis-server did not start")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> str:
    """The URL of a real redis-server (see RedisServer)."""
    return redis_server.url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium, as tests/browser.py launches it."""
    async with chromium() as browser:
        yield browser


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a fresh context of `browser`."""
    async with new_page(browser) as page:
        yield page
