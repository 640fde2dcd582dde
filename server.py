"""voice-rtc entry point: `python server.py` reads settings, builds the app and serves it."""

import asyncio
import os
import signal
import sys
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from signaling.endpoint import SignalingEndpoint
from voice_rtc import metrics
from voice_rtc.audio import FRAME_MS
from voice_rtc.config import Settings, SettingsError, load_settings
from voice_rtc.errors import error_table
from voice_rtc.health import health_routes
from voice_rtc.logs import AccessLogger, setup_logging
from voice_rtc.session import SessionRegistry
from voice_rtc.transports.webrtc import use_host_addresses
from voice_rtc.tts import create_provider
from voice_rtc.tts.base import TTSProvider

CLIENT_DIR = Path(__file__).parent / "client"


def build_app(settings: Settings, tts: TTSProvider | None = None) -> web.Application:
    """The application; `tts` replaces the provider the settings name (tests use it)."""
    app = web.Application()
    tts = tts or create_provider(settings)
    sessions = SessionRegistry(
        tts,
        settings.max_sessions,
        settings.max_queued_utterances,
        resume_window_frames=settings.resume_window_ms // FRAME_MS,
    )
    sessions.on_change = metrics.ACTIVE_SESSIONS.set
    endpoint = SignalingEndpoint(settings, sessions)
    use_host_addresses(settings.host_addresses)

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(CLIENT_DIR / "index.html")

    async def prometheus(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def errors(_request: web.Request) -> web.Response:
        return web.json_response(error_table())

    async def close_sessions(_app: web.Application) -> None:
        await sessions.close_all()
        await tts.close()

    app.add_routes(health_routes(sessions, tts))
    app.add_routes(
        [
            web.get("/", index),
            web.get("/ws", endpoint.handle),
            web.get("/metrics", prometheus),
            web.get("/api/errors", errors),
            web.static("/client", CLIENT_DIR),
        ]
    )
    app.on_shutdown.append(endpoint.close_all)
    app.on_cleanup.append(close_sessions)
    return app


async def serve(settings: Settings) -> None:
    runner = web.AppRunner(build_app(settings), handle_signals=False, access_log_class=AccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"voice-rtc is serving the demo at http://{host}:{port}/", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    try:
        settings = load_settings(os.environ, sys.argv[1:])
    except SettingsError as exc:
        sys.exit(f"voice-rtc: bad settings: {exc}")
    setup_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
