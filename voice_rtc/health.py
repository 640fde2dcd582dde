"""Liveness (GET /health: the event loop answers) and readiness (GET /ready: take new sessions?).

With several workers (`--workers N`) each one writes its own status to the supervisor's run
directory every second (`voice_rtc.workers`), and whichever worker answers covers them all: the
server is ready only while every worker is up and none is draining."""

import asyncio
import os
import time
from typing import Any

from aiohttp import web

from .limits import Limits
from .registry import SessionRegistry
from .tts.base import TTSProvider
from .workers import STATUS_EVERY_S, WorkerSlot


class Health:
    def __init__(
        self,
        sessions: SessionRegistry,
        tts: TTSProvider,
        limits: Limits,
        slot: WorkerSlot | None = None,
    ) -> None:
        self._sessions, self._tts, self._limits, self._slot = sessions, tts, limits, slot
        self._started = time.monotonic()
        self._last: dict[str, Any] = {"status": "starting", "sessions": 0}  # as last reported

    async def report(self) -> None:
        """With workers: write this worker's status for the others every second (its owner,
        the app, cancels it)."""
        assert self._slot is not None
        while True:
            self._last = await self.status()
            self._slot.report(self._last)
            await asyncio.sleep(STATUS_EVERY_S)

    async def status(self) -> dict[str, Any]:
        """This process's readiness: `status` is "ready", or why not."""
        sessions = self._sessions
        # Redis holds the rate limits and, shared between processes, the sessions: without it
        # sessions here play on, but none can be made or resumed.
        redis_ok = None
        if self._limits.shared or sessions.store.shared:
            redis_ok = await self._limits.healthy() and await sessions.store.healthy()
        full = sessions.room()
        if sessions.draining:
            status = "draining"
        elif full:
            status = "full"
        else:
            status = "ready" if redis_ok is not False else "redis_unavailable"
        body: dict[str, Any] = {
            "status": status,
            "sessions": len(sessions),
            "tts": self._tts.status(),
        }
        if sessions.store.shared:
            body["process"] = sessions.process_id
        if full:
            body["full"] = full  # max_sessions, or the measured load: late, busy
        if redis_ok is not None:
            body["redis"] = "ok" if redis_ok else "unavailable"
        return body

    def _workers(self, own: dict[str, Any]) -> list[dict[str, Any]]:
        """Every worker's status, this one's as of now."""
        assert self._slot is not None
        me = {"index": self._slot.index, "pid": os.getpid(), **own}
        return [me if w["index"] == self._slot.index else w for w in self._slot.statuses()]

    async def health(self, _request: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "status": "ok",
            "uptime_s": round(time.monotonic() - self._started, 1),
            "sessions": len(self._sessions),
            "tasks": len(asyncio.all_tasks()),
        }
        if self._slot is not None:
            own = {**self._last, "sessions": len(self._sessions)}
            workers = self._workers(own)
            body["worker"] = self._slot.index
            body["workers"] = [_brief(w) for w in workers]
            body["workers_up"] = sum(w["status"] != "down" for w in workers)
            body["sessions_total"] = sum(w.get("sessions", 0) for w in workers)
        return web.json_response(body)

    async def ready(self, _request: web.Request) -> web.Response:
        body = await self.status()
        if self._slot is not None:
            workers = self._workers(body)
            down = [w["index"] for w in workers if w["status"] == "down"]
            draining = [w["index"] for w in workers if w["status"] == "draining"]
            if body["status"] == "ready":
                # The kernel hands connections to any worker: one that cannot take them makes
                # the whole server not ready.
                others = [w["status"] for w in workers if w["status"] != "ready"]
                body["status"] = "worker_down" if down else (others[0] if others else "ready")
            body["worker"] = self._slot.index
            body["workers"] = [_brief(w) for w in workers]
            body["workers_down"], body["workers_draining"] = down, draining
        return web.json_response(body, status=200 if body["status"] == "ready" else 503)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/health", self.health), web.get("/ready", self.ready)]


def _brief(worker: dict[str, Any]) -> dict[str, Any]:
    keys = ("index", "pid", "status", "sessions", "process", "full")
    return {key: worker[key] for key in keys if key in worker}
