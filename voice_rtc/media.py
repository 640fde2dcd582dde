"""The process's media engine: one clock, one speech codec (with the threads it encodes on),
how loaded the process is, the heap its frames churn through, and the audio transports made
from them for a session."""

import asyncio
import os

from aiohttp import web

from . import metrics
from .clock import Ticker
from .config import Settings
from .encoding import EncodingThread
from .fec import LinkLoss
from .heap import HeapTrimmer
from .load import LoadMonitor
from .opus import OpusCodec, OpusSettings
from .transports.dtls import share_one_certificate
from .transports.rtp import keep_no_rtp_history, send_no_mid
from .transports.webrtc import (
    FrameSource,
    Silence,
    WebRTCOptions,
    WebRTCPeer,
    ice_configuration,
)
from .transports.websocket import Codec, WebSocketAudio, websocket_sink


def opus_settings(settings: Settings) -> OpusSettings:
    return OpusSettings(settings.opus_bitrate, settings.opus_complexity, settings.opus_fec)


class Media:
    def __init__(self, settings: Settings, workers: int = 1) -> None:
        """`workers`: processes like this one sharing the machine's cores (`--workers`)."""
        self._encoding = EncodingThread()
        self.codec = OpusCodec(opus_settings(settings), self._encoding)
        self.ticker = Ticker()
        self.load = LoadMonitor(
            metrics.COUNTERS.speech_frames,
            lambda: self._encoding.busy_s,
            # Workers share the cores: each may count on its part of them only, or together
            # they would take on more than the machine has.
            cores=len(os.sched_getaffinity(0)) / workers,
            max_loop_utilization=settings.admission_loop_percent / 100,
            max_cpu_utilization=settings.admission_cpu_percent / 100,
            max_lateness_s=settings.admission_lateness_ms / 1000,
        )
        self.ticker.on_lateness = self.load.record_lateness
        self._heap = HeapTrimmer(settings.heap_trim_interval_s)
        keep_no_rtp_history()
        send_no_mid()
        share_one_certificate()
        self._webrtc = WebRTCOptions(
            ice_configuration(settings.ice_server_urls),
            settings.max_sdp_bytes,
            self.codec.silent_packet,
            Silence(settings.silence),
            self.codec.new_stream,
        )

    def start(self) -> None:
        self.ticker.start()
        self.load.start()
        self._heap.start()

    async def close(self) -> None:
        await self._heap.stop()
        await self.load.stop()
        await self.ticker.stop()
        self._encoding.stop()

    def webrtc_peer(self, source: FrameSource, link: LinkLoss) -> WebRTCPeer:
        return WebRTCPeer(source, self.ticker, self._webrtc, link)

    def websocket_audio(
        self,
        source: FrameSource,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        codec: str,
    ) -> WebSocketAudio:
        return WebSocketAudio(
            source,
            websocket_sink(ws, transport),
            Codec.from_label(codec),
            self.ticker,
            self.codec.new_stream,
        )
