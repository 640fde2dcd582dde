"""An example agent: it greets the listener when they connect and answers what they type.

The three parties: this script plays both the app's backend (it makes a session for a user and
prints the link the user opens) and the agent (it speaks into that session). The answer is
canned; a real agent would stream its LLM's tokens into `reply.write` the same way.

    python examples/greeter.py --url http://127.0.0.1:8080

With a server in dev mode (loopback, no key configured) it needs nothing else; otherwise give
it the service API key in VOICE_RTC_SERVICE_API_KEY.
"""

import argparse
import asyncio
import logging
import os
import secrets
from urllib.parse import urlencode

import aiohttp

from voice_rtc.agent import Agent, create_session, http_url

GREETING = "Hello! I am the example agent. Type something and I will answer."


async def service_credential(url: str) -> str:
    """The service API key from the environment, or a dev-mode server's service token."""
    if key := os.environ.get("VOICE_RTC_SERVICE_API_KEY"):
        return key
    async with (
        aiohttp.ClientSession() as http,
        http.get(http_url(url, "/api/dev-token"), params={"role": "service"}) as response,
    ):
        if response.status != 200:
            raise SystemExit("set VOICE_RTC_SERVICE_API_KEY (the server is not in dev mode)")
        return str((await response.json())["token"])


async def answer(agent: Agent, text: str) -> None:
    """A reply in pieces, as an LLM would give it: speech starts with the first sentence."""
    async with agent.stream() as reply:
        for piece in ["You said: ", text.strip(), ". ", "Tell me more, ", "or interrupt me."]:
            await reply.write(piece)
            await asyncio.sleep(0.05)


async def run(url: str) -> None:
    credential = await service_credential(url)
    grant = await create_session(url, credential, user_id=f"guest-{secrets.token_hex(3)}")
    # An app would hand the browser this token (its page's VoiceClient takes it); the demo
    # page takes it from the address.
    query = urlencode({"token": grant.listener_token})
    print(f"listener: {http_url(url, '/')}?{query}", flush=True)
    # The service credential acts on every session this service made: fine for one process
    # that is both. An agent running elsewhere would get just the session's agent token.
    async with Agent(url, grant.session_id, grant.agent_token or credential) as agent:
        async for event in agent.events():
            kind = event["type"]
            if kind == "listener" and event["change"] == "connected":
                await agent.speak(GREETING)
            elif kind == "listener_input":
                await agent.cancel()  # barge-in: the listener spoke, stop talking
                await answer(agent, event["text"])
            elif kind == "utterance_heard":
                print(f"heard {event['utterance_id']}: {event['text']!r}", flush=True)
            elif kind == "session_ended":
                print(f"session ended: {event['reason']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run(parser.parse_args().url))


if __name__ == "__main__":
    main()
