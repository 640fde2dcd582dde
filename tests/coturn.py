"""A real coturn on loopback for tests, started from the shipped turn/coturn.conf.

The test configuration is the shipped file line for line (its authentication, realm, denied
peers, quotas, hardening and logging all apply), with these loopback overrides:

- replaced: `listening-port` (a free port, not 3478, so runs do not collide); `min-port` and
  `max-port` (a small free range, which also makes relay addresses recognisable);
  `static-auth-secret` (a random secret per test instead of the placeholder); `userdb` and
  `pidfile` (files in the test's temporary directory).
- removed: `tls-listening-port`, and added `no-tls`, `no-dtls`: there is no certificate in tests
  (TURN over UDP is what is tested). Also removed if an operator uncommented them:
  `listening-ip`, `relay-ip`, `external-ip`, `cert`, `pkey`.
- added: `listening-ip=127.0.0.1`, `relay-ip=127.0.0.1`: everything stays on loopback.
- added: `allow-loopback-peers` and `allowed-peer-ip=127.0.0.1`: the media server under test
  is on 127.0.0.1, which the shipped file refuses (as production must). `allowed-peer-ip` is
  the shipped file's documented exception for a media server on a denied address; any other
  loopback address (127.0.0.2, say) is still refused by the shipped `denied-peer-ip` lines.

`log-file=stdout` is kept: the fixture sends coturn's stdout to a file.
"""

import asyncio
import random
import secrets
import signal
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from aioice.turn import TurnClientUdpProtocol

REPO = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = REPO / "turn" / "coturn.conf"
TURNSERVER = "/usr/bin/turnserver"
SECRET_PLACEHOLDER = "REPLACE-WITH-THE-VALUE-OF-VOICE_RTC_TURN_SECRET"
RELAY_PORTS = 16  # allocations a test may hold at once
STUN_MAGIC_COOKIE = 0x2112A442


@dataclass
class Coturn:
    port: int
    secret: str
    realm: str
    relay_ports: range
    config_path: Path
    log_path: Path
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        """The end of coturn's log, for assertion messages."""
        tail = self.log().splitlines()[-lines:]
        return "coturn log (tail):\n" + "\n".join(tail)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by PID, wait for it to go (up to 1-2 s), SIGKILL if it will not."""
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def read_config(path: Path = SHIPPED_CONFIG) -> list[tuple[str, str | None]]:
    """The active lines of a coturn configuration file: (option, value or None for a flag)."""
    options: list[tuple[str, str | None]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        options.append((key.strip(), value.strip() if sep else None))
    return options


def loopback_config(
    shipped: list[tuple[str, str | None]],
    *,
    port: int,
    relay_ports: range,
    secret: str,
    workdir: Path,
) -> list[str]:
    """The shipped options with the loopback overrides of the module docstring applied."""
    replaced: dict[str, str | None] = {  # None: removed
        "listening-port": str(port),
        "min-port": str(relay_ports.start),
        "max-port": str(relay_ports.stop - 1),
        "static-auth-secret": secret,
        "userdb": str(workdir / "turndb"),
        "pidfile": str(workdir / "turnserver.pid"),
        "tls-listening-port": None,
    }
    # Deployment-specific lines an operator may have uncommented: loopback replaces them.
    dropped = {"listening-ip", "relay-ip", "external-ip", "cert", "pkey"}
    keys = {key for key, _ in shipped}
    missing = set(replaced) - keys
    assert not missing, f"{SHIPPED_CONFIG} no longer sets {sorted(missing)}: update tests/coturn.py"
    shipped_secret = dict(shipped)["static-auth-secret"]
    assert shipped_secret == SECRET_PLACEHOLDER, (
        f"{SHIPPED_CONFIG} must carry the placeholder, never a real secret: {shipped_secret!r}"
    )
    unsafe = keys & {"allow-loopback-peers", "no-auth"}
    assert not unsafe, f"{SHIPPED_CONFIG} must not set {sorted(unsafe)} in production"
    lines = []
    for key, value in shipped:
        if key in dropped:
            continue
        if key in replaced:
            value = replaced[key]
            if value is None:
                continue
        lines.append(key if value is None else f"{key}={value}")
    lines += [
        "no-tls",
        "no-dtls",
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        "allow-loopback-peers",
        "allowed-peer-ip=127.0.0.1",
    ]
    return lines


def _free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def _free_udp_range(size: int) -> range:
    """`size` consecutive UDP ports free right now, below the kernel's ephemeral range."""
    while True:
        start = random.randrange(20000, 32000 - size)
        ports = range(start, start + size)
        sockets = []
        try:
            for port in ports:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return ports
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()


def stun_binding_request() -> tuple[bytes, bytes]:
    """A STUN Binding request with no attributes, and its transaction id."""
    transaction = secrets.token_bytes(12)
    return struct.pack("!HHI", 0x0001, 0, STUN_MAGIC_COOKIE) + transaction, transaction


async def stun_binding(port: int, timeout: float = 0.2) -> bool:
    """Whether a STUN server answers a Binding request on 127.0.0.1:`port` (UDP)."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes] = loop.create_future()

    class Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not answered.done():
                answered.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Protocol, remote_addr=("127.0.0.1", port))
    try:
        request, transaction = stun_binding_request()
        transport.sendto(request)
        data = await asyncio.wait_for(answered, timeout)
        # Binding success response (0x0101) to our transaction.
        return data[:2] == b"\x01\x01" and data[8:20] == transaction
    except (TimeoutError, ConnectionRefusedError):
        return False
    finally:
        transport.close()


def write_loopback_config(workdir: Path, secret: str) -> tuple[Path, int, range]:
    """Write the test configuration into `workdir`: its path, the port and the relay ports."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    relay_ports = _free_udp_range(RELAY_PORTS)
    lines = loopback_config(
        read_config(), port=port, relay_ports=relay_ports, secret=secret, workdir=workdir
    )
    config_path = workdir / "coturn.conf"
    config_path.write_text("\n".join(lines) + "\n")
    return config_path, port, relay_ports


@asynccontextmanager
async def running_coturn(workdir: Path, secret: str | None = None) -> AsyncIterator[Coturn]:
    """Start coturn from the shipped configuration with the loopback overrides; stop it after.

    Ready once it answers a STUN Binding request on its port (the UDP listener is up).
    """
    secret = secret or secrets.token_hex(32)
    config_path, port, relay_ports = write_loopback_config(workdir, secret)
    log_path = workdir / "coturn.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            TURNSERVER,
            "-c",
            str(config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of pytest does not reach it; we stop it by PID
        )
    coturn = Coturn(
        port=port,
        secret=secret,
        realm=dict(read_config())["realm"] or "",
        relay_ports=relay_ports,
        config_path=config_path,
        log_path=log_path,
        process=process,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not await stun_binding(port):
            if process.returncode is not None:
                raise RuntimeError(f"coturn exited with {process.returncode}\n{coturn.log_tail()}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"coturn did not answer STUN in 10 s\n{coturn.log_tail()}")
        pidfile = workdir / "turnserver.pid"
        with suppress(FileNotFoundError, ValueError):
            # The pidfile names the process we started (no daemonizing, no stray coturn).
            assert int(pidfile.read_text()) == process.pid, coturn.log_tail()
        yield coturn
    finally:
        await coturn.stop()


@asynccontextmanager
async def turn_allocation(
    port: int, username: str, credential: str
) -> AsyncIterator[TurnClientUdpProtocol]:
    """A TURN allocation on 127.0.0.1:`port` over UDP, made as aiortc makes its own (aioice),
    released afterwards. Raises aioice.stun.TransactionFailed if coturn refuses it."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            ("127.0.0.1", port),
            username=username,
            password=credential,
            lifetime=600,
            channel_refresh_time=500,
        ),
        remote_addr=("127.0.0.1", port),
    )
    try:
        await protocol.connect()
        yield protocol
    finally:
        if protocol.relayed_address is not None:
            await protocol.delete()  # Refresh with lifetime 0; closes the socket
        transport.close()
