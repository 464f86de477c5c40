"""The retry policy, as pure functions of their inputs.

The time and the random draw are parameters, so ``sdk/conformance/retry-verdicts.json``
pins every verdict. Connection errors, timeouts, 429 and 5xx are retried while retries
remain. A ``Retry-After`` of at most ``max_retry_after`` is waited exactly; a longer
one is not retried (the error, with its ``retry_after``, goes to the caller).
Otherwise the delay is exponential backoff with jitter.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal, Optional, Union


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries. Delays are in seconds."""

    max_retries: int = 2
    """Retries after the first attempt (so ``max_retries + 1`` attempts at most)."""
    initial_delay: float = 0.5
    """Backoff before the first retry."""
    max_delay: float = 8.0
    """Largest backoff."""
    jitter: float = 0.25
    """Each backoff is scaled by a random factor in ``[1 - jitter, 1]``."""
    max_retry_after: float = 60.0
    """The longest ``Retry-After`` the client waits for; a longer one is not retried."""


@dataclass(frozen=True)
class StatusOutcome:
    """An attempt that got a response."""

    status: int
    retry_after: Optional[str] = None


@dataclass(frozen=True)
class ErrorOutcome:
    """An attempt that got no response."""

    error: Literal["connection", "timeout"]


Outcome = Union[StatusOutcome, ErrorOutcome]


def is_retryable_status(status: int) -> bool:
    """True for the statuses worth retrying: 429 and 5xx."""
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (delta-seconds or an HTTP date, a
    past date being 0), or None when it is not one. ``now`` is unix seconds."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return float(text)
    if not re.search(r"[a-zA-Z]", text):
        return None
    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, at.timestamp() - now)


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    outcome: Outcome,
    now: float | None = None,
    draw: float | None = None,
) -> float | None:
    """Seconds to wait before the next attempt after attempt number ``attempt``
    (1 = the first request) ended with ``outcome``, or None when the client must not
    retry. ``draw`` is a random number in ``[0, 1)``."""
    if attempt > policy.max_retries:
        return None
    if isinstance(outcome, StatusOutcome):
        if not is_retryable_status(outcome.status):
            return None
        asked = parse_retry_after(outcome.retry_after, time.time() if now is None else now)
        if asked is not None:
            return asked if asked <= policy.max_retry_after else None
    base = min(policy.max_delay, policy.initial_delay * 2.0 ** (attempt - 1))
    return base * (1 - policy.jitter * (random.random() if draw is None else draw))
