"""Time-limited TURN credentials (the TURN REST API scheme coturn's `use-auth-secret` checks).

username   = "<unix expiry>:<user id>"
credential = base64(HMAC-SHA1(shared secret, username))

The server and coturn share the secret; each user gets credentials that stop working at expiry,
so a leaked one is worth little and no TURN user database is needed.
"""

import base64
import hashlib
import hmac
import time
from typing import Any


def turn_credentials(
    secret: str, user_id: str, ttl_s: int, now: float | None = None
) -> tuple[str, str]:
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(
    stun_urls: list[str], turn_urls: list[str], secret: str, user_id: str, ttl_s: int
) -> list[dict[str, Any]]:
    """The RTCIceServer list for one user: STUN as configured, TURN with fresh credentials."""
    servers: list[dict[str, Any]] = [{"urls": url} for url in stun_urls]
    if turn_urls and secret:
        username, credential = turn_credentials(secret, user_id, ttl_s)
        servers.append({"urls": turn_urls, "username": username, "credential": credential})
    return servers
