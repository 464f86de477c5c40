"""Lists: a `Page` (``data``, ``next_cursor``) that is also iterable over every item of
every page, fetching the next page only when the current one is used up. A filtered
listing may answer a short or empty page that still has a ``next_cursor``; iteration
follows it until the cursor is None."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Page(Generic[T]):
    """One page of a listing; iterating it walks this and every later page."""

    data: list[T]
    """The items of this page."""
    next_cursor: str | None
    """The cursor of the next page, or None on the last page."""

    def __init__(self, envelope: dict[str, Any], fetch: Callable[[str], Page[T]]) -> None:
        self.data = envelope["data"]
        self.next_cursor = envelope.get("next_cursor")
        self._fetch = fetch

    @property
    def has_more(self) -> bool:
        """True when another page follows."""
        return self.next_cursor is not None

    def next_page(self) -> Page[T] | None:
        """The next page, or None when this is the last one."""
        return None if self.next_cursor is None else self._fetch(self.next_cursor)

    def iter_pages(self) -> Iterator[Page[T]]:
        """This page and every later one."""
        page: Page[T] | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data


class AsyncPage(Generic[T]):
    """One page of an async listing; ``async for`` walks this and every later page."""

    data: list[T]
    next_cursor: str | None

    def __init__(self, envelope: dict[str, Any], fetch: Callable[[str], Awaitable[AsyncPage[T]]]) -> None:
        self.data = envelope["data"]
        self.next_cursor = envelope.get("next_cursor")
        self._fetch = fetch

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None

    async def next_page(self) -> AsyncPage[T] | None:
        return None if self.next_cursor is None else await self._fetch(self.next_cursor)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[T]]:
        page: AsyncPage[T] | None = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item


class AsyncPaginator(Generic[T]):
    """What an async ``list()`` returns: ``await`` it for the first `AsyncPage`, or
    ``async for`` over it for every item of every page."""

    def __init__(self, first: Callable[[], Awaitable[AsyncPage[T]]]) -> None:
        self._first = first

    def __await__(self) -> Generator[Any, None, AsyncPage[T]]:
        return self._first().__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for item in await self._first():
            yield item
