"""The command line: ask a voice-rtc server to speak, and record what arrives to a WAV file.

    python -m voice_rtc.client --url http://127.0.0.1:8080 --text "Hello there." --out hello.wav

Exits 0 when the speech was all played, 1 when it ended otherwise (failed, cancelled), 2 when
the server could not be reached or refused.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import get_args

from .errors import ServerError
from .events import TransportKind, UtteranceEvent
from .recording import Recording
from .transports import WebSocketCodec
from .voice_client import VoiceClient

TAIL_S = 0.3  # after the last frame left the server: for it to arrive


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options (`argv`, or the command line's)."""
    parser = argparse.ArgumentParser(
        prog="python -m voice_rtc.client",
        description="Ask a voice-rtc server to speak; record what arrives.",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's address")
    parser.add_argument("--text", required=True, help="what to say")
    parser.add_argument("--out", default="out.wav", help="WAV file to write what arrived to")
    parser.add_argument("--transport", choices=get_args(TransportKind), default="webrtc")
    parser.add_argument(
        "--codec", choices=get_args(WebSocketCodec), default="pcm_s16le", help="of WebSocket audio"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for speech")
    return parser.parse_args(argv)


async def say(args: argparse.Namespace) -> tuple[UtteranceEvent, Recording]:
    """Speak `args.text` and wait until it has all arrived: its end event, and what played."""
    recording = Recording()
    client = VoiceClient(args.url, transport=args.transport, codec=args.codec, sink=recording)
    async with client:
        ended: asyncio.Future[UtteranceEvent] = asyncio.get_running_loop().create_future()
        utterance_id: int | None = None

        def on_utterance(event: UtteranceEvent) -> None:
            # The reply to speak() (the id) comes before any event of the utterance.
            if event["type"] == "utterance_ended" and event["utterance_id"] == utterance_id:
                if not ended.done():
                    ended.set_result(event)

        client.on("utterance", on_utterance)
        utterance_id = await client.speak(args.text)
        async with asyncio.timeout(args.timeout):
            event = await ended
        await asyncio.sleep(TAIL_S)
    return event, recording


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; exits with its status."""
    args = parse_args(argv)
    try:
        ended, recording = asyncio.run(say(args))
    except (ServerError, OSError, TimeoutError) as exc:
        print(f"voice_rtc.client: {exc!r}", file=sys.stderr)
        sys.exit(2)
    recording.save_wav(args.out)
    reason = ended.get("reason")
    print(f"utterance {ended['utterance_id']} {reason}: {recording.seconds:.2f} s in {args.out}")
    sys.exit(0 if reason == "done" else 1)
