"""The Python client's reconnection policy, driven with stand-in connections and a fake clock:
backoff per attempt, giving up after max attempts, counting again after a stable connection,
waiting as long as a rate limit says, not reconnecting when told not to."""

import asyncio
from dataclasses import dataclass, field

from voice_rtc.client import ServerError
from voice_rtc.client.reconnection import Reconnector, ReconnectPolicy

POLICY = ReconnectPolicy(base_s=1.0, cap_s=30.0, max_attempts=3, stable_after_s=10.0)


@dataclass
class Link:
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Script:
    """What happens: each connect() takes the next outcome (a Link, or an error to raise)."""

    outcomes: list[Link | Exception]
    now: float = 0.0
    log: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    given_up: Exception | None = None
    reconnect_on_drop: bool = True
    going_away: bool = False

    async def connect(self) -> Link:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        self.log.append("connected")
        return outcome

    async def dropped(self, _link: Link) -> bool:
        self.log.append("dropped")
        return self.reconnect_on_drop

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    async def give_up(self, error: Exception) -> None:
        self.given_up = error

    def reconnector(self) -> Reconnector[Link]:
        return Reconnector(
            policy=lambda: POLICY,
            connect=self.connect,
            on_drop=self.dropped,
            on_attempt=lambda attempt, most: self.log.append(f"attempt {attempt}/{most}"),
            on_attempt_failed=lambda error, attempt: self.log.append(f"failed {attempt}"),
            on_give_up=self.give_up,
            going_away=lambda _link: self.going_away,
            sleep=self.sleep,
            delay=lambda attempt, base, cap: min(cap, base * 2**attempt),  # the ceiling
            clock=lambda: self.now,
        )


async def test_it_backs_off_then_gives_up_after_max_attempts_with_the_last_error() -> None:
    refused = OSError("connection refused")
    script = Script([refused, refused, refused])
    first = Link()
    first.closed.set()
    await asyncio.wait_for(script.reconnector().run(first), 5)
    assert script.log == [
        "dropped",
        "attempt 1/3",
        "failed 1",
        "attempt 2/3",
        "failed 2",
        "attempt 3/3",
        "failed 3",
    ]
    assert script.sleeps == [1.0, 2.0, 4.0]
    assert script.given_up is refused


async def test_a_server_going_away_is_reconnected_at_once_then_with_backoff() -> None:
    refused = OSError("connection refused")
    script = Script([refused, Link()], going_away=True)
    first = Link()
    first.closed.set()
    run = asyncio.create_task(script.reconnector().run(first))
    await asyncio.sleep(0.01)
    run.cancel()
    assert script.log == ["dropped", "attempt 1/3", "failed 1", "attempt 2/3", "connected"]
    assert script.sleeps == [0.25, 2.0]  # a jitter's ceiling only, then backoff as usual


async def test_attempts_count_again_only_after_a_connection_that_stayed_up() -> None:
    brief, stable, last = Link(), Link(), Link()
    script = Script([brief, stable, last])
    first = Link()
    run = asyncio.create_task(script.reconnector().run(first))
    first.closed.set()  # dropped at once: attempt 1 reconnects
    await asyncio.sleep(0.01)
    brief.closed.set()  # up for no time: the next is attempt 2
    await asyncio.sleep(0.01)
    script.now += 10.0  # `stable` stays up 10 s: the count starts over
    stable.closed.set()
    await asyncio.sleep(0.01)
    script.reconnect_on_drop = False
    last.closed.set()
    await asyncio.wait_for(run, 5)
    attempts = [entry for entry in script.log if entry.startswith("attempt")]
    assert attempts == ["attempt 1/3", "attempt 2/3", "attempt 1/3"]
    assert script.log[-1] == "dropped" and script.given_up is None  # told not to: it stops


async def test_a_rate_limit_is_waited_out_however_short_the_backoff() -> None:
    limited = ServerError({"code": "RATE_LIMIT_EXCEEDED", "retry_after_s": 12.5})
    reconnected = Link()
    script = Script([limited, reconnected])
    first = Link()
    first.closed.set()
    run = asyncio.create_task(script.reconnector().run(first))
    await asyncio.sleep(0.01)
    assert script.log[-1] == "connected"
    assert script.sleeps == [1.0, 12.5]  # attempt 2's backoff would be 2 s
    script.reconnect_on_drop = False
    reconnected.closed.set()
    await asyncio.wait_for(run, 5)


async def test_the_servers_policy_is_read_from_welcome_unless_the_app_sets_attempts() -> None:
    reconnect = {"base_ms": 500, "cap_ms": 8000, "max_attempts": 10}
    assert ReconnectPolicy.from_welcome(reconnect) == ReconnectPolicy(0.5, 8.0, 10)
    assert ReconnectPolicy.from_welcome(reconnect, max_attempts=2).max_attempts == 2
