"""Exponential backoff with full jitter, for anything that retries."""

import random


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first): uniform in
    [0, min(cap, base * 2^attempt)], so that many clients retrying at once spread out."""
    return random.uniform(0, min(cap_s, base_s * 2**attempt))
