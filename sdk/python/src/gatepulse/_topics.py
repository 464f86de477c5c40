"""Topic patterns, matched exactly as the router matches them (AMQP syntax): ``*`` is
one segment, ``#`` zero or more. ``sdk/conformance/topic-patterns.json`` pins it."""

from __future__ import annotations

import operator
from itertools import accumulate


def topic_matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` matches ``pattern`` (``orders.*``, ``orders.#``, ``#``)."""
    parts = topic.split(".")
    # reach[j]: the pattern segments seen so far consume exactly the first j topic segments.
    reach = [True] + [False] * len(parts)
    for seg in pattern.split("."):
        if seg == "#":
            reach = list(accumulate(reach, operator.or_))
        else:
            reach = [False] + [reach[j] and seg in ("*", part) for j, part in enumerate(parts)]
    return reach[-1]
