"""The tenant stream (``GET /v1/stream``, Server-Sent Events) as an iterator that never
loses its place: every frame's ``id:`` is the stream cursor, and after any disconnect
(server restart, network error, slow-client notice, silence) it reconnects with
``Last-Event-ID`` set to the last cursor it saw, so items arrive once, in order,
across reconnects."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Union

import httpx

from . import _operations as ops
from ._errors import APIConnectionError, GatePulseError, RateLimitError, ServerError
from ._retry import ErrorOutcome, RetryPolicy, StatusOutcome, retry_delay
from ._sse import SseParser
from ._topics import topic_matches
from .types import StreamResetInfo

if TYPE_CHECKING:
    from ._client import AsyncGatePulse, GatePulse


@dataclass(frozen=True)
class StreamEvent:
    """An event or a ``deliveries.status`` update, with its cursor."""

    cursor: str
    """Position in the stream; store it and pass it back as ``cursor`` to resume."""
    topic: str
    """The SSE ``event:`` field: the event's topic, or ``deliveries.status``."""
    data: Any
    """The parsed ``data:``: an event (``id``, ``topic``, ``cursor``, ``payload``, …) or a
    `gatepulse.types.DeliveryStatusUpdate`."""
    type: Literal["event"] = "event"


@dataclass(frozen=True)
class StreamReset:
    """The server could not resume where asked (history past its limits): what was skipped."""

    cursor: str
    """Where the stream resumed."""
    data: StreamResetInfo
    type: Literal["reset"] = "reset"


StreamItem = Union[StreamEvent, StreamReset]

# Reconnects back off forever, at most 30 s apart, any Retry-After honoured.
_RECONNECT = RetryPolicy(max_retries=2**31, max_delay=30.0, jitter=0.5, max_retry_after=float("inf"))
# Delay before reconnecting after a stream that ended cleanly, until the server says (retry:).
_DEFAULT_RETRY = 2.0


class _Disconnect:
    """The server's ``gatepulse.disconnect`` notice: reconnect at once."""


_DISCONNECT = _Disconnect()


class _Session:
    """What a subscription keeps across connections: cursor, filter, retry hint."""

    def __init__(self, topics: str | Sequence[str] | None, cursor: str | int | None, idle_timeout: float) -> None:
        self.topics = [topics] if isinstance(topics, str) else list(topics or [])
        self.cursor = None if cursor is None else str(cursor)
        self.idle_timeout = idle_timeout
        self.retry = _DEFAULT_RETRY
        self.failures = 0

    def request(self) -> ops.Request:
        return ops.open_stream(self.topics[0] if len(self.topics) == 1 else None, self.cursor)

    def items(self, parser: SseParser, text: str) -> Iterator[StreamItem | _Disconnect]:
        """The items a chunk completes. The cursor moves as each is consumed, so a
        consumer that stops early resumes right after the last item it took."""
        messages = parser.feed(text)
        if parser.retry_ms is not None:
            self.retry = parser.retry_ms / 1000
        for message in messages:
            if message.id is not None:
                self.cursor = message.id
            if message.event == "gatepulse.disconnect":
                yield _DISCONNECT
                return
            data = _parse(message.data)
            if message.event == "gatepulse.reset":
                yield StreamReset(message.id or "", data)
            elif len(self.topics) <= 1 or any(topic_matches(p, message.event) for p in self.topics):
                yield StreamEvent(message.id or "", message.event, data)

    def reconnect_delay(self, error: GatePulseError) -> float:
        """Delay before reconnecting after a failed connect; re-raises failures a
        reconnect cannot mend (401, 403, 400, …)."""
        self.failures += 1
        if isinstance(error, APIConnectionError):
            outcome: ErrorOutcome | StatusOutcome = ErrorOutcome("connection")
        elif isinstance(error, (RateLimitError, ServerError)):
            outcome = StatusOutcome(error.status or 503, error.headers.get("retry-after"))
        else:
            raise error
        return retry_delay(_RECONNECT, self.failures, outcome) or 0.0


def _parse(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data


class StreamSubscription:
    """One stream subscription: iterate it once; ``break`` or `close` ends it."""

    def __init__(self, client: GatePulse, session: _Session) -> None:
        self._client = client
        self._session = session
        self._closed = False
        self._started = False
        self._response: httpx.Response | None = None

    @property
    def cursor(self) -> str | None:
        """The cursor of the last frame received (None before any): resume from it."""
        return self._session.cursor

    def close(self) -> None:
        """Ends the iteration and the connection."""
        self._closed = True
        if self._response is not None:
            self._response.close()

    def __iter__(self) -> Iterator[StreamItem]:
        if self._started:
            raise RuntimeError("a stream subscription can be iterated once; call subscribe() again")
        self._started = True
        session = self._session
        try:
            while not self._closed:
                try:
                    self._response = self._client._send(
                        session.request(), stream=True, max_retries=0, timeout=session.idle_timeout
                    )
                except GatePulseError as e:
                    delay = session.reconnect_delay(e)
                else:
                    session.failures = 0
                    disconnected = yield from self._read(self._response)
                    delay = 0.0 if disconnected else session.retry
                if not self._closed:
                    time.sleep(delay)
        finally:
            self.close()

    def _read(self, response: httpx.Response) -> Generator[StreamItem, None, bool]:
        """Yields one connection's items; returns True on a disconnect notice."""
        parser = SseParser()
        try:
            for text in response.iter_text():
                for item in self._session.items(parser, text):
                    if isinstance(item, _Disconnect):
                        return True
                    yield item
        except httpx.TransportError:
            pass  # broke mid-stream or went silent (read timeout): reconnect
        finally:
            response.close()
        return False


class AsyncStreamSubscription:
    """One stream subscription for `AsyncGatePulse`: ``async for`` it once."""

    def __init__(self, client: AsyncGatePulse, session: _Session) -> None:
        self._client = client
        self._session = session
        self._closed = False
        self._started = False
        self._response: httpx.Response | None = None

    @property
    def cursor(self) -> str | None:
        """The cursor of the last frame received (None before any): resume from it."""
        return self._session.cursor

    async def close(self) -> None:
        """Ends the iteration and the connection."""
        self._closed = True
        if self._response is not None:
            await self._response.aclose()

    async def __aiter__(self) -> AsyncIterator[StreamItem]:
        if self._started:
            raise RuntimeError("a stream subscription can be iterated once; call subscribe() again")
        self._started = True
        session = self._session
        try:
            while not self._closed:
                try:
                    response = await self._client._send(
                        session.request(), stream=True, max_retries=0, timeout=session.idle_timeout
                    )
                except GatePulseError as e:
                    delay = session.reconnect_delay(e)
                else:
                    self._response = response
                    session.failures = 0
                    disconnected = False
                    parser = SseParser()
                    try:
                        async for text in response.aiter_text():
                            for item in session.items(parser, text):
                                if isinstance(item, _Disconnect):
                                    disconnected = True
                                    break
                                yield item
                            if disconnected:
                                break
                    except httpx.TransportError:
                        pass  # broke mid-stream or went silent (read timeout): reconnect
                    finally:
                        await response.aclose()
                    delay = 0.0 if disconnected else session.retry
                if not self._closed:
                    await asyncio.sleep(delay)
        finally:
            await self.close()
