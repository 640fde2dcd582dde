"""A real nginx (Debian's) on loopback for tests, running the shipped deploy/nginx/voice-rtc.conf.

Tests take the `start_nginx` fixture (import `start_nginx_fixture` into the test module):
`await start_nginx([server.url, ...])` returns an `Nginx` whose `url` the clients use.

The shipped file is an http-level file (what /etc/nginx/conf.d/ holds). The test configuration
wraps it, line for line, in a main configuration of its own, with these changes:

- replaced: the `server` lines of the `voice_rtc` upstream, by one line per server the test
  started (`127.0.0.1:<port>`, with the shipped lines' parameters: max_fails, fail_timeout);
  `listen 80` by `listen 127.0.0.1:<free port>`.
- around it: `daemon off` (nginx stays the fixture's child, stopped by its PID), one worker,
  and the pid file, error log, access log and every `*_temp_path` in the test's directory. The
  access log records, per request, the upstream address(es) nginx tried.
"""

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

CONF = REPO / "deploy" / "nginx" / "voice-rtc.conf"
NGINX = "/usr/sbin/nginx"
UPSTREAM = re.compile(r"(upstream voice_rtc \{)(.*?)(\n\})", re.DOTALL)
UPSTREAM_SERVER = re.compile(r"^([ \t]*)server (\S+)(.*);$", re.MULTILINE)
LISTEN = re.compile(r"^([ \t]*)listen 80;$", re.MULTILINE)
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def upstream_servers(conf: str) -> list[str]:
    """The addresses in the `voice_rtc` upstream of an nginx configuration."""
    block = UPSTREAM.search(conf)
    assert block, "no `upstream voice_rtc { ... }` block"
    return [m[2] for m in UPSTREAM_SERVER.finditer(block[2])]


def locations(conf: str) -> dict[str, str]:
    """Each `location` block's body, by its match (`= /ws`, `/`)."""
    return {m[1].strip(): m[2] for m in re.finditer(r"location ([^{]+)\{([^}]*)\}", conf)}


def derived_config(directory: Path, port: int, servers: Sequence[str]) -> str:
    """The shipped file pointed at `servers`, inside a main configuration for a test."""
    shipped = CONF.read_text()
    block = UPSTREAM.search(shipped)
    assert block, "no `upstream voice_rtc { ... }` block"
    shipped_servers = list(UPSTREAM_SERVER.finditer(block[2]))
    assert shipped_servers, "the shipped upstream has no server line"
    indent, parameters = shipped_servers[0][1], shipped_servers[0][3]
    lines = "\n".join(f"{indent}server {server}{parameters};" for server in servers)
    start, end = (
        block.start(2) + shipped_servers[0].start(),
        block.start(2) + shipped_servers[-1].end(),
    )
    conf = shipped[:start] + lines + shipped[end:]
    conf, listens = LISTEN.subn(rf"\1listen 127.0.0.1:{port};", conf)
    assert listens == 1, "the shipped file should listen on 80 once"
    temp = "\n".join(f"    {kind}_temp_path {directory / kind};" for kind in TEMP_PATHS)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers reach the test's directory
    return f"""{user}daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$request_uri $status $upstream_addr';
    access_log {directory / "access.log"} upstreams;
{temp}
# --- deploy/nginx/voice-rtc.conf, pointed at the test's servers ---
{conf}
}}
"""


def write_config(directory: Path, port: int, servers: Sequence[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "nginx.conf"
    path.write_text(derived_config(directory, port, servers))
    return path


def nginx_test(directory: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the shipped file (upstream on a loopback port: nothing needs to listen)."""
    path = write_config(directory, 8, ["127.0.0.1:9"])
    return subprocess.run(
        [NGINX, "-t", "-q", "-c", str(path), "-e", str(directory / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@dataclass
class Nginx:
    url: str
    directory: Path
    process: asyncio.subprocess.Process

    def error_log(self) -> str:
        return (self.directory / "error.log").read_text(errors="replace")

    def access_log(self) -> list[tuple[str, str, str]]:
        """(request URI, status, upstream address(es) tried) per finished request."""
        path = self.directory / "access.log"
        entries = []
        for line in path.read_text().splitlines() if path.exists() else []:
            uri, status, upstream = line.split(" ", 2)
            entries.append((uri, status, upstream))
        return entries

    async def logged(self, uri: str, count: int, timeout: float = 10.0) -> list[str]:
        """The upstream address(es) of each request for `uri` (its path: the query aside), once
        `count` are logged (nginx logs a WebSocket when it closes, a moment after the client
        closed it)."""
        for _ in range(int(timeout / 0.05)):
            log = self.access_log()
            upstreams = [upstream for u, _status, upstream in log if u.split("?")[0] == uri]
            if len(upstreams) >= count:
                return upstreams
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} requests for {uri} not logged: {self.access_log()}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGTERM) by PID; SIGKILL to its process group if it will not go."""
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            os.killpg(self.process.pid, signal.SIGKILL)  # the master and its workers
            await self.process.wait()


@asynccontextmanager
async def running_nginx(directory: Path, port: int, servers: Sequence[str]) -> AsyncIterator[Nginx]:
    """nginx on 127.0.0.1:`port` in front of `servers` ("127.0.0.1:8080"), stopped afterwards."""
    path = write_config(directory, port, servers)
    process = await asyncio.create_subprocess_exec(
        NGINX, "-c", str(path), "-e", str(directory / "error.log"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its own process group: its workers go with it
    )  # fmt: skip
    nginx = Nginx(f"http://127.0.0.1:{port}/", directory, process)
    try:
        for _ in range(100):
            if process.returncode is not None:
                raise RuntimeError(f"nginx did not start:\n{nginx.error_log()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        else:
            raise RuntimeError(f"nginx is not listening:\n{nginx.error_log()}")
        yield nginx
    finally:
        await nginx.stop()


StartNginx = Callable[[Sequence[str]], Awaitable[Nginx]]


def _address(url: str) -> str:
    """`http://127.0.0.1:8080/` -> `127.0.0.1:8080`."""
    return url.split("//", 1)[1].rstrip("/")


@pytest.fixture(name="start_nginx")
async def start_nginx_fixture(tmp_path: Path) -> AsyncIterator[StartNginx]:
    """Start nginx with the shipped configuration in front of servers given by their URLs (as
    RunningServer.url has them), on a free loopback port; every one is stopped afterwards."""
    async with AsyncExitStack() as stack:

        async def start(server_urls: Sequence[str]) -> Nginx:
            directory = tmp_path / f"nginx-{free_port()}"
            servers = [_address(url) for url in server_urls]
            return await stack.enter_async_context(running_nginx(directory, free_port(), servers))

        yield start
