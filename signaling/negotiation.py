"""How a listener's audio gets to it: a WebRTC answer to its offer, or frames on its signaling
socket. The transports themselves are the media engine's (voice_rtc.media): this only decides,
checks what the server allows, and says so."""

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from voice_rtc import metrics
from voice_rtc.config import Settings
from voice_rtc.errors import ErrorCode
from voice_rtc.media import Media
from voice_rtc.session import Session
from voice_rtc.transports.sdp import InvalidOffer
from voice_rtc.transports.webrtc import RunStart, WebRTCPeer

from .messages import ProtocolError, Transport, message

log = logging.getLogger(__name__)


async def answer_offer(
    session: Session,
    media: Media,
    settings: Settings,
    sdp: str,
    on_failed: Callable[[WebRTCPeer], None],
    on_sync: Callable[[int, RunStart], None],
) -> dict[str, Any]:
    """A new WebRTC transport for the session; the `answer` message. `on_sync(transport id,
    run)`: where a stretch of speech starts in RTP time (for the listener's captions)."""
    if settings.transport == "websocket":
        raise ProtocolError(ErrorCode.TRANSPORT_NOT_ALLOWED, "this server streams over WebSocket")
    peer = media.webrtc_peer(session, session.playout.link)
    transport_id = session.next_transport_id

    def on_state(state: str) -> None:
        log.info("webrtc_state", extra={"session_id": session.id, "state": state})
        if state == "failed" and session.audio is peer:
            on_failed(peer)

    peer.on_state = on_state
    peer.track.on_run_start = lambda run: on_sync(transport_id, run)
    try:
        answer = await peer.answer(sdp)
    except InvalidOffer as exc:
        await peer.close()
        raise ProtocolError(ErrorCode.INVALID_SDP, str(exc)) from None
    await session.set_audio(peer)  # replaces any previous transport
    return message("answer", sdp=answer, transport_id=transport_id)


async def websocket_audio(
    session: Session,
    media: Media,
    settings: Settings,
    msg: Transport,
    ws: web.WebSocketResponse,
    transport: Any,
    reply: Callable[[dict[str, Any]], Any],
) -> None:
    """Audio on the listener's signaling socket from now on. The reply goes out before the
    frames start, so it comes first."""
    if settings.transport == "webrtc":
        raise ProtocolError(ErrorCode.TRANSPORT_NOT_ALLOWED, "this server streams over WebRTC")
    metrics.TRANSPORT_FALLBACKS.labels(msg.reason).inc()
    audio = media.websocket_audio(session, ws, transport, msg.codec)
    await reply(
        message(
            "transport",
            mode="websocket",
            codec=audio.codec.label,
            transport_id=session.next_transport_id,
        )
    )
    await session.set_audio(audio)
