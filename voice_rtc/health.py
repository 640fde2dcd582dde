"""Liveness: GET /health answers while the event loop does."""

import asyncio
import time

from aiohttp import web

from .session import SessionRegistry


def health_routes(sessions: SessionRegistry, provider: str) -> list[web.RouteDef]:
    started = time.monotonic()

    async def health(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "uptime_s": round(time.monotonic() - started, 1),
                "sessions": len(sessions),
                "tasks": len(asyncio.all_tasks()),
                "tts": provider,
            }
        )

    return [web.get("/health", health)]
