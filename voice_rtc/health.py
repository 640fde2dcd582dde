"""Liveness (GET /health: the event loop answers) and readiness (GET /ready: take new sessions?)."""

import asyncio
import time

from aiohttp import web

from .session import SessionRegistry
from .tts.base import TTSProvider


def health_routes(sessions: SessionRegistry, tts: TTSProvider) -> list[web.RouteDef]:
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
        status = "draining" if sessions.draining else "full" if sessions.full else "ready"
        accepting = status == "ready"
        body = {
            "status": status,
            "sessions": len(sessions),
            "tts": tts.status(),
        }
        return web.json_response(body, status=200 if accepting else 503)

    return [web.get("/health", health), web.get("/ready", ready)]
