"""The protocol is defined once (signaling/protocol.py): the modules the clients are made of are
generated from it and current, and the server serves the same."""

from pathlib import Path

import aiohttp
import pytest

from signaling import protocol
from tests.conftest import RunningServer


@pytest.mark.parametrize("path", protocol.OUTPUTS, ids=lambda p: p.name)
def test_the_generated_client_modules_are_current(path: Path) -> None:
    assert path.read_text() == protocol.OUTPUTS[path](), (
        f"{path.name} is stale: run python -m signaling.protocol --write"
    )


async def test_the_server_serves_the_protocol_it_speaks(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.url + "api/protocol") as response:
        assert response.status == 200
        served = await response.json()
    assert served == protocol.description()
    async with http.ws_connect(
        server.url.replace("http", "ws") + served["paths"]["agent"][1:]
    ) as ws:
        await ws.send_json({"type": "hello", "version": served["version"] + 1})
        assert (await ws.receive_json())["code"] == "UNSUPPORTED_VERSION"
