"""Fixtures: the real server (one per test session), clients, receivers and scripted
API doubles, all from the stdlib harness in sdk/testing/gpserver.py."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SDK / "testing"))

from gpserver import GpServer, Recorded, Reply, TestServer, scripted  # noqa: E402

from gatepulse import AsyncGatePulse, GatePulse  # noqa: E402

CONFORMANCE = SDK / "conformance"


@pytest.fixture(scope="session")
def server() -> Iterator[GpServer]:
    gp = GpServer.start()
    yield gp
    gp.stop()


@pytest.fixture
def gp(server: GpServer) -> Iterator[GatePulse]:
    with GatePulse(server.api_key, base_url=server.base_url) as client:
        yield client


@pytest.fixture
async def agp(server: GpServer) -> AsyncIterator[AsyncGatePulse]:
    async with AsyncGatePulse(server.api_key, base_url=server.base_url) as client:
        yield client


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Recorded], Reply]], TestServer]]:
    """Starts test servers answering with a function; closes them after the test."""
    started: list[TestServer] = []

    def start(respond: Callable[[Recorded], Reply]) -> TestServer:
        started.append(TestServer(respond))
        return started[-1]

    yield start
    for s in started:
        s.close()


@pytest.fixture
def script() -> Iterator[Callable[..., TestServer]]:
    """Starts scripted API doubles (``script(Reply(...), ...)``); closes them after the test."""
    started: list[TestServer] = []

    def start(*replies: Reply) -> TestServer:
        started.append(scripted(list(replies)))
        return started[-1]

    yield start
    for s in started:
        s.close()
