"""HTTP hardening: security headers on every response, the WebSocket Origin allowlist, and
which address a request comes from."""

from urllib.parse import urlsplit

from aiohttp import web

from .config import Settings

# The demo page and the browser library load only their own scripts, styles and worklet, and
# talk only to this origin (its WebSocket and APIs); media arrives over WebRTC, which CSP does
# not govern. Nothing may frame the page.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "worker-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


async def add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """An `on_response_prepare` hook: runs for every response, WebSocket upgrades included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def origin_allowed(origin: str, host: str, settings: Settings) -> bool:
    """A browser page may open the socket if it was served from here or is on the allowlist."""
    if origin in settings.origin_list or "*" in settings.origin_list:
        return True
    return urlsplit(origin).netloc == host


def client_ip(request: web.Request, trust_x_forwarded_for: bool) -> str:
    """The caller's address; behind a proxy we run, the first hop it recorded."""
    if trust_x_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.remote or "unknown"
