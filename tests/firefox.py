"""Headless Firefox ESR as a listener: Debian's firefox-esr driven over WebDriver BiDi by
puppeteer-core (tests/node/firefox-driver.mjs, a child process spoken to in JSON lines).

Playwright's own Firefox build cannot be downloaded here, and Debian's cannot be driven by it.
Evaluations run without user activation; `click` and `type` are real input, user gestures.
"""

import asyncio
import contextlib
import itertools
import json
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tests.pulse import PulseAudio

FIREFOX = "/usr/bin/firefox-esr"
DRIVER = Path(__file__).resolve().parent / "node" / "firefox-driver.mjs"

# Firefox's defaults but for what a test machine needs. Privacy settings (mDNS obfuscation of
# host candidates) and the autoplay policy stay as Firefox ships them.
BASE_PREFS: dict[str, object] = {}
# Firefox gathers no 127.0.0.1 candidate without it (like Chromium's loopback flag).
LOOPBACK_PREFS: dict[str, object] = {"media.peerconnection.ice.loopback": True}


class FirefoxError(Exception):
    """A command the driver could not carry out (the page threw, a selector matched nothing)."""


class FirefoxPage:
    """The one page of a Firefox the driver launched."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self.console: list[str] = []  # the page's console messages, in order
        self._console_changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def goto(self, url: str) -> None:
        await self._call("goto", url=url)

    async def init_script(self, source: str) -> None:
        """Run `source` in every document, before its own scripts."""
        await self._call("initScript", source=source)

    async def click(self, selector: str) -> None:
        await self._call("click", selector=selector)

    async def type(self, selector: str, text: str) -> None:
        """Replace what the field holds with `text`, typed."""
        await self._call("type", selector=selector, text=text)

    async def evaluate(self, source: str, arg: object = None) -> Any:
        """An expression's value, or a function's, called with `arg` (through JSON)."""
        return await self._call("evaluate", source=source, arg=arg)

    async def text(self, selector: str) -> str:
        text: str = await self.evaluate(
            "(s) => document.querySelector(s)?.textContent ?? ''", selector
        )
        return text

    async def wait_for_text(self, selector: str, pattern: str, timeout: float = 10) -> str:
        """Wait until the element's text matches the regular expression; its text then."""
        text = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = await self.text(selector)
            if re.search(pattern, text):
                return text
            await asyncio.sleep(0.1)
        raise AssertionError(f"{selector} is {text!r}, not matching {pattern!r} after {timeout} s")

    async def wait_for_console(self, matches: Callable[[str], bool], timeout: float = 10) -> str:
        """The first console message (since the page opened) that `matches`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for message in self.console[seen:]:
                if matches(message):
                    return message
            seen = len(self.console)
            self._console_changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no such console message after {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._console_changed.wait(), remaining)

    async def close(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(FirefoxError, ConnectionError, TimeoutError):
                await asyncio.wait_for(self._call("close"), 15)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _call(self, cmd: str, **args: object) -> Any:
        assert self._process.stdin is not None
        id = next(self._ids)
        reply = self._replies[id] = asyncio.get_running_loop().create_future()
        self._process.stdin.write((json.dumps({"id": id, "cmd": cmd, **args}) + "\n").encode())
        await self._process.stdin.drain()
        return await reply

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for line in self._process.stdout:
            message = json.loads(line)
            if "event" in message:
                text = message["text"]
                print(f"[firefox {message.get('type', message['event'])}] {text}")
                self.console.append(text)
                self._console_changed.set()
                continue
            reply = self._replies.pop(message["id"])
            if "error" in message:
                reply.set_exception(FirefoxError(message["error"]))
            else:
                reply.set_result(message["result"])
        for reply in self._replies.values():
            reply.set_exception(ConnectionError("the Firefox driver exited"))


@contextlib.asynccontextmanager
async def firefox(
    pulse: PulseAudio | None,
    prefs: dict[str, object] | None = None,
    netns: str | None = None,
) -> AsyncIterator[FirefoxPage]:
    """Headless Firefox with one page, playing to `pulse` (None: no sound device). With
    `netns`, Firefox and its driver run in that network namespace (the driver reaches Firefox
    over a loopback WebSocket, so both must be there)."""
    options = {"executablePath": FIREFOX, "prefs": {**BASE_PREFS, **(prefs or {})}}
    command = ["node", str(DRIVER), json.dumps(options)]
    if netns is not None:
        command = ["ip", "netns", "exec", netns, *command]
    with tempfile.TemporaryDirectory(prefix="vrtc-firefox-") as scratch:
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, **(pulse.env if pulse else {})}
        stderr_path = Path(scratch) / "stderr.log"
        with stderr_path.open("w") as stderr:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        page = FirefoxPage(process)
        try:
            # The first command waits for the launch: fails if Firefox did not start.
            await asyncio.wait_for(page.evaluate("navigator.userAgent"), 60)
            yield page
        except ConnectionError as error:
            log = stderr_path.read_text()[-3000:]
            raise RuntimeError(f"Firefox did not start:\n{log}") from error
        finally:
            await page.close()
            if process.returncode is None:
                process.kill()
            await process.wait()
