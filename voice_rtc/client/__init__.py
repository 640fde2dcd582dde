"""A Python voice-rtc client: a listener's session with a voice-rtc server, kept through
network trouble, with the browser library's states and events (client/voice-client.js).

    from voice_rtc.client import VoiceClient

    async with VoiceClient("http://127.0.0.1:8080") as client:
        client.on("state", print)
        utterance_id = await client.speak("Hello there.")

Apps and tools use it; so do the tests (tests/listener.py adds what only they need). The
command line: `python -m voice_rtc.client --url ... --text ... --out out.wav` (cli.py).

The parts: voice_client (the session: connect, speak, cancel, switch transport, reconnect and
resume), events (states and events, as the browser's), words (the word being heard, for `word`
events), signaling (one socket: requests, heartbeats), reconnection (backoff and attempts),
transports (WebRTC, WebSocket audio), playback (what arrives -> played frames for a sink, and
the position to report), recording (the default sink: keeps it all), tokens, errors.
"""

from .errors import ServerError
from .events import (
    ClientState,
    ErrorBody,
    FallbackReason,
    StateDetail,
    TransportEvent,
    TransportKind,
    UtteranceEvent,
)
from .playback import AudioSink, PlayedFrame
from .recording import Recording
from .tokens import TokenSource
from .transports import WebSocketCodec
from .voice_client import VoiceClient
from .words import Word

__all__ = [
    "AudioSink",
    "ClientState",
    "ErrorBody",
    "FallbackReason",
    "PlayedFrame",
    "Recording",
    "ServerError",
    "StateDetail",
    "TokenSource",
    "TransportEvent",
    "TransportKind",
    "UtteranceEvent",
    "VoiceClient",
    "WebSocketCodec",
    "Word",
]
