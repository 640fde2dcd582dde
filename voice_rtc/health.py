"""Liveness (GET /health: the event loop answers) and readiness (GET /ready: take new sessions?)."""

import asyncio
import time

from aiohttp import web

from .limits import Limits
from .registry import SessionRegistry
from .tts.base import TTSProvider


def health_routes(
    sessions: SessionRegistry, tts: TTSProvider, limits: Limits
) -> list[web.RouteDef]:
    started = time.monotonic()

    async def health(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "uptime_s": round(time.monotonic() - started, 1),
                "sessions": len(sessions),
                "tasks": len(asyncio.all_tasks()),
            }
        )

    async def ready(_request: web.Request) -> web.Response:
        # Redis holds the rate limits and, shared between processes, the sessions: without it
        # sessions here play on, but none can be made or resumed.
        redis_ok = None
        if limits.shared or sessions.store.shared:
            redis_ok = await limits.healthy() and await sessions.store.healthy()
        full = sessions.room()
        if sessions.draining:
            status = "draining"
        elif full:
            status = "full"
        else:
            status = "ready" if redis_ok is not False else "redis_unavailable"
        body: dict[str, object] = {"status": status, "sessions": len(sessions), "tts": tts.status()}
        if sessions.store.shared:
            body["process"] = sessions.process_id
        if full:
            body["full"] = full  # max_sessions, or the measured load: late, busy
        if redis_ok is not None:
            body["redis"] = "ok" if redis_ok else "unavailable"
        return web.json_response(body, status=200 if status == "ready" else 503)

    return [web.get("/health", health), web.get("/ready", ready)]
