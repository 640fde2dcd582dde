"""voice-rtc entry point: `python server.py` reads settings, builds the app and serves it."""

import asyncio
import gc
import logging
import os
import re
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path

from aiohttp import web

from signaling.api import api_routes
from signaling.commands import Commands
from signaling.endpoint import SignalingEndpoint
from signaling.protocol import AGENT_PATH, LISTENER_PATH
from signaling.protocol import description as protocol_description
from voice_rtc import metrics
from voice_rtc.audio import FRAME_MS
from voice_rtc.auth import DEV_TOKEN_TTL_S, Authenticator, Role
from voice_rtc.config import Settings, SettingsError, load_settings
from voice_rtc.errors import error_table
from voice_rtc.event_loop import new_event_loop
from voice_rtc.health import Health
from voice_rtc.http_security import add_security_headers
from voice_rtc.limits import Limits
from voice_rtc.logs import AccessLogger, setup_logging
from voice_rtc.media import Media
from voice_rtc.registry import SessionRegistry
from voice_rtc.sockets import ConnectionGuard, connection_limit, raise_descriptor_limit
from voice_rtc.store import open_store
from voice_rtc.telemetry import telemetry_routes
from voice_rtc.transports.webrtc import use_host_addresses
from voice_rtc.tts import create_provider
from voice_rtc.tts.base import TTSProvider
from voice_rtc.workers import WorkerSlot, supervise

CLIENT_DIR = Path(__file__).parent / "client"
SESSIONS = web.AppKey("sessions", SessionRegistry)
ENDPOINT = web.AppKey("endpoint", SignalingEndpoint)
log = logging.getLogger("voice_rtc.server")
DEV_USER = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEEPALIVE_S = 15.0  # an idle HTTP keep-alive connection is closed after this
GC_THRESHOLDS = (2_000, 20, 50)  # Python's defaults: (700, 10, 10)
BACKLOG = 64  # asyncio accepts up to this many in one turn of the loop, however long it takes


def build_app(
    settings: Settings, tts: TTSProvider | None = None, slot: WorkerSlot | None = None
) -> web.Application:
    """The application; `tts` replaces the provider the settings name (tests use it); `slot`:
    it is one of several workers."""
    app = web.Application()
    app.on_response_prepare.append(add_security_headers)
    metrics.start(version("voice-rtc"), settings.max_sessions)
    tts = tts or create_provider(settings)
    auth = Authenticator.from_settings(settings)
    limits = Limits.from_settings(settings)
    media = Media(settings, workers=slot.count if slot else 1)
    sessions = SessionRegistry(
        tts,
        media.codec,
        limits,
        settings.max_sessions,
        settings.max_queued_utterances,
        resume_window_frames=settings.resume_window_ms // FRAME_MS,
        lookahead_frames=settings.lookahead_ms // FRAME_MS,
        pcm_lookahead_frames=settings.pcm_lookahead_ms // FRAME_MS,
        load=media.load,
        grace_s=settings.session_grace_s,
        # Two position reports and a little: by then a listener has said what it played.
        heard_settle_s=2 * settings.position_interval_ms / 1000 + 0.2,
        store=open_store(settings.redis_url),
        lease_s=settings.session_lease_s,
    )
    sessions.command_handler = Commands(sessions, limits, settings.max_text_chars)
    endpoint = SignalingEndpoint(settings, sessions, media, auth, limits)
    app[SESSIONS], app[ENDPOINT] = sessions, endpoint
    use_host_addresses(settings.host_addresses)

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(CLIENT_DIR / "index.html")

    async def prometheus(_request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def errors(_request: web.Request) -> web.Response:
        return web.json_response(error_table())

    async def protocol(_request: web.Request) -> web.Response:
        return web.json_response(protocol_description())

    async def start_media(_app: web.Application) -> None:
        media.start()
        await sessions.start()

    async def renew_session_slots(_app: web.Application) -> AsyncIterator[None]:
        renewing = asyncio.create_task(limits.keep_sessions(sessions.leases), name="leases")
        yield
        renewing.cancel()

    async def report_status(_app: web.Application) -> AsyncIterator[None]:
        reporting = asyncio.create_task(health.report(), name="worker-status")
        yield
        reporting.cancel()

    async def close_sessions(_app: web.Application) -> None:
        await sessions.close_all()
        await media.close()  # after the sessions: their synthesis may still be encoding
        await tts.close()
        await limits.close()

    health = Health(sessions, tts, limits, slot)
    app.add_routes(health.routes())
    app.add_routes(api_routes(settings, sessions, auth, limits))
    app.add_routes(telemetry_routes(auth, limits, settings.http_timeout_s))
    if auth.dev_mode:
        app.add_routes(dev_token_routes(auth))
    app.add_routes(
        [
            web.get("/", index),
            web.get(LISTENER_PATH, endpoint.listener),
            web.get(AGENT_PATH, endpoint.agent),
            web.get("/metrics", prometheus),
            web.get("/api/errors", errors),
            web.get("/api/protocol", protocol),
            web.static("/client", CLIENT_DIR),
        ]
    )
    app.on_startup.append(start_media)
    app.cleanup_ctx.append(renew_session_slots)
    if slot is not None:
        app.cleanup_ctx.append(report_status)
    app.on_shutdown.append(endpoint.close_all)
    app.on_cleanup.append(close_sessions)
    return app


def dev_token_routes(auth: Authenticator) -> list[web.RouteDef]:
    """Dev mode (loopback, no key configured): short-lived tokens for the demo page, tests and
    the example agent. `?user=` keeps a user id across reconnections, so a resumed session
    stays its own; `?role=service` is an app backend's (it makes sessions for its users)."""

    async def dev_token(request: web.Request) -> web.Response:
        user_id = request.query.get("user") or f"dev-{secrets.token_hex(4)}"
        if not DEV_USER.fullmatch(user_id):
            return web.json_response({"error": "user: 1-64 of A-Z a-z 0-9 _ -"}, status=400)
        role = request.query.get("role", Role.USER.value)
        if role not in (Role.USER, Role.SERVICE):
            return web.json_response({"error": "role: user or service"}, status=400)
        token = auth.mint(user_id, DEV_TOKEN_TTL_S, Role(role))
        return web.json_response(
            {"token": token, "user_id": user_id, "role": role, "expires_in": DEV_TOKEN_TTL_S}
        )

    return [web.get("/api/dev-token", dev_token)]


async def serve(settings: Settings, slot: WorkerSlot | None = None) -> None:
    descriptors = raise_descriptor_limit()
    app = build_app(settings, slot=slot)
    runner = web.AppRunner(
        app, handle_signals=False, access_log_class=AccessLogger, keepalive_timeout=KEEPALIVE_S
    )
    await runner.setup()
    assert runner.server is not None
    tune_garbage_collector()
    max_connections = connection_limit(settings.max_connections, descriptors)
    guard = ConnectionGuard(runner.server, max_connections, settings.http_timeout_s)
    loop = asyncio.get_running_loop()
    # A worker shares its port with the others: the kernel spreads connections over them.
    listener = await loop.create_server(
        guard, settings.host, settings.port, backlog=BACKLOG, reuse_port=slot is not None
    )
    host, port = listener.sockets[0].getsockname()[:2]
    log.info("listening", extra={"max_connections": max_connections, "descriptors": descriptors})
    if slot is None:  # the supervisor says it once for all its workers
        print(f"voice-rtc is serving the demo at http://{host}:{port}/", flush=True)

    # The first SIGTERM (or Ctrl-C) drains; a second one stops at once.
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stop.wait()
        if app[SESSIONS].store.shared:
            # Others go on with its sessions: take no connection more (a load balancer tries
            # the next server), and hand off.
            listener.close()
        await drain(app, settings.drain_timeout_s, hurry)
    finally:
        listener.close()
        await runner.cleanup()  # closes the sockets (1001), then the sessions and the voice


def tune_garbage_collector() -> None:
    """Python's collector stops the world for as long as a full collection takes: with tens of
    thousands of objects (a thousand listeners, or an attack's sockets) that is a hundred ms
    and more, and every listener's clock waits. Everything made so far (modules, the app) is
    moved out of its sight for good, and collections run less often (each young one bigger)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def drain(app: web.Application, timeout_s: float, hurry: asyncio.Event) -> None:
    """Graceful shutdown: not ready, no new sessions, clients told; speech in progress may end
    here, or, with a shared store, goes on at once in another process."""
    sessions, endpoint = app[SESSIONS], app[ENDPOINT]
    sessions.begin_drain()
    log.info("draining", extra={"sessions": len(sessions), "timeout_s": timeout_s})
    if sessions.store.shared:
        # Another process can go on with every session: hand them all off now (a rolling
        # deploy waits for no one), and their listeners resume there.
        await endpoint.announce_drain(0)
        await sessions.hand_off_all()
        log.info("handed_off")
        return
    await endpoint.announce_drain(timeout_s)
    quiet = asyncio.ensure_future(sessions.wait_until_quiet(timeout_s))
    interrupted = asyncio.ensure_future(hurry.wait())
    await asyncio.wait([quiet, interrupted], return_when=asyncio.FIRST_COMPLETED)
    for waiter in (quiet, interrupted):
        waiter.cancel()
    log.info("drained", extra={"still_speaking": sessions.speaking()})


def main() -> None:
    try:
        settings = load_settings(os.environ, sys.argv[1:])
    except SettingsError as exc:
        sys.exit(f"voice-rtc: bad settings: {exc}")
    setup_logging(settings.log_level)
    slot = WorkerSlot.from_env(os.environ)
    if slot is None and settings.worker_count > 1:
        sys.exit(
            supervise(settings, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
        )
    # The encoding thread holds the GIL between libopus calls; the event loop gives it up at
    # every send. At the default 5 ms it may then wait that long to get it back, each time:
    # a millisecond keeps the clock's ticks on time.
    sys.setswitchinterval(0.001)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(settings, slot))


if __name__ == "__main__":
    main()
