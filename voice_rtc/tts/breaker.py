"""A circuit breaker around a remote provider: stop calling it while it keeps failing.

closed     requests go through; `failure_threshold` failures in a row open it.
open       requests are refused (the fallback voice speaks) for `recovery_s`...
half-open  ...then one trial request goes through: success closes it, failure opens it again.
"""

import logging
import time
from collections.abc import Callable
from enum import StrEnum

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        recovery_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._failure_threshold = failure_threshold
        self._recovery_s = recovery_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self.on_change: Callable[[BreakerState], None] = lambda _state: None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._recovery_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def allow_request(self) -> bool:
        """May a request go to the provider now? In half-open, only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._trial_in_flight = False
        self._failures = 0
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._failure_threshold:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def abandon(self) -> None:
        """A request ended with neither success nor failure (cancelled): free the trial slot."""
        self._trial_in_flight = False

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            log.warning("breaker_state", extra={"breaker": self.name, "state": state.value})
            self._state = state
            self.on_change(state)
