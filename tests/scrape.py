"""The server's /metrics, as a test reads it."""

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer


async def scrape(
    http: aiohttp.ClientSession, server: RunningServer
) -> dict[tuple[str, str], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    async with http.get(server.url + "metrics") as response:
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[(sample.name, labels)] = sample.value
    return samples


def delta(
    after: dict[tuple[str, str], float],
    before: dict[tuple[str, str], float],
    name: str,
    labels: str = "",
) -> float:
    return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)


async def sample(http: aiohttp.ClientSession, server: RunningServer, name: str) -> float:
    """One unlabelled sample (a gauge), 0 while the server has none."""
    return (await scrape(http, server)).get((name, ""), 0.0)
