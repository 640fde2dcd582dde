"""A PulseAudio server with one null sink: a sound device for headless Firefox, which otherwise
has none here and keeps every AudioContext `suspended`.

Debian's `pulseaudio`, run as the test's own child (no system service, no D-Bus), with its
runtime directory and home in a temporary directory; clients find it through XDG_RUNTIME_DIR.
What the sink plays can be recorded from its monitor: what a listener would hear.
"""

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RECORD_RATE = 48000


@dataclass
class Peak:
    hz: float  # the loudest frequency
    rms: float  # 0..1


@dataclass
class PulseAudio:
    runtime_dir: Path
    process: asyncio.subprocess.Process

    @property
    def env(self) -> dict[str, str]:
        """What a client's environment needs to play to this server."""
        return {"XDG_RUNTIME_DIR": str(self.runtime_dir)}

    async def record(self, seconds: float) -> Peak:
        """What the null sink plays for `seconds` (its monitor, through parec): its loudest
        frequency and its RMS, to tell a listener would hear it."""
        process = await asyncio.create_subprocess_exec(
            "parec", "--device=null.monitor", "--raw", "--format=s16le",
            f"--rate={RECORD_RATE}", "--channels=1", "--latency-msec=20",
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert process.stdout is not None
        wanted = int(seconds * RECORD_RATE) * 2
        try:
            data = await asyncio.wait_for(process.stdout.readexactly(wanted), seconds + 10)
        finally:
            process.kill()
            await process.wait()
        samples = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
        loudest = int(np.argmax(spectrum[1:]) + 1)
        return Peak(
            hz=loudest * RECORD_RATE / len(samples), rms=float(np.sqrt(np.mean(samples**2)))
        )


@contextlib.asynccontextmanager
async def pulseaudio() -> AsyncIterator[PulseAudio]:
    with tempfile.TemporaryDirectory(prefix="vrtc-pulse-") as scratch:
        runtime_dir = Path(scratch)
        log = (runtime_dir / "pulseaudio.log").open("w")
        process = await asyncio.create_subprocess_exec(
            "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1",
            "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=null",
            env={**os.environ, "XDG_RUNTIME_DIR": scratch, "HOME": scratch},
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            socket = runtime_dir / "pulse" / "native"
            deadline = time.monotonic() + 10
            while not socket.exists():
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"pulseaudio did not start:\n{(runtime_dir / 'pulseaudio.log').read_text()}"
                    )
                await asyncio.sleep(0.05)
            yield PulseAudio(runtime_dir, process)
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 5)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            log.close()
