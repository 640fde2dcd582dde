"""Child processes: the server the bench starts for itself, and stopping any child."""

import asyncio
import contextlib
import sys
from pathlib import Path

from . import BenchError

REPO = Path(__file__).resolve().parent.parent.parent
STOP_TIMEOUT_S = 10.0


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


async def start_server(stack: contextlib.AsyncExitStack, log_path: Path) -> tuple[str, int]:
    """Start `server.py` with the tone provider on a free loopback port; (url, pid)."""
    args = [sys.executable, str(REPO / "server.py"), "--host", "127.0.0.1", "--port", "0"]
    args += ["--tts", "tone", "--log-level", "WARNING"]
    # Every listener connects from this one address: lift the per-address and capacity limits.
    args += ["--limit-connections-per-minute", "100000", "--max-sessions", "100000"]
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=log
        )
    stack.push_async_callback(stop_process, process)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    if not line:
        raise BenchError(f"the server did not start; its log is {log_path}")
    return line.decode().split()[-1], process.pid
