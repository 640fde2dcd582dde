"""The token (a JWT) each hello carries: the app's, or one a dev-mode server hands out."""

from collections.abc import Awaitable, Callable

import aiohttp

from .signaling import http_url

# A token, or a coroutine function giving a fresh one: asked before every connection, since
# tokens are short-lived and a reconnection may come much later.
TokenSource = str | Callable[[], Awaitable[str | None]]


async def dev_token(http: aiohttp.ClientSession, url: str, user: str) -> str | None:
    """A token for `user` from the server at `url` in dev mode (loopback, no key configured:
    GET /api/dev-token); None from any other server."""
    async with http.get(http_url(url, "/api/dev-token"), params={"user": user}) as reply:
        return str((await reply.json())["token"]) if reply.status == 200 else None
