"""The request core against scripted local servers: retries on 429/503 with one
idempotency key, errors by status, headers, pagination, options. Sync and async."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from gpserver import Reply, TestServer, free_port, problem

from gatepulse import (
    APIConnectionError,
    APITimeoutError,
    AsyncGatePulse,
    AuthenticationError,
    ConflictError,
    GatePulse,
    GatePulseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ValidationError,
    __version__,
)

Script = Callable[..., TestServer]
PUBLISHED = Reply(202, body=json.dumps({"id": "evt_1", "cursor": 1, "deduped": False}).encode())


_clients: list[GatePulse] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client(server: TestServer, **options: Any) -> GatePulse:
    """A client of ``server``, closed after the test."""
    _clients.append(GatePulse("gpk_test", base_url=server.url + "/", timeout=2.0, **options))
    return _clients[-1]


def test_waits_out_429_and_503_reusing_one_idempotency_key(script: Script) -> None:
    server = script(Reply(429, {"retry-after": "1"}, problem(429, "overloaded")), Reply(503), PUBLISHED)
    started = time.monotonic()
    assert client(server).events.publish("orders.created", {"n": 1}) == {"id": "evt_1", "cursor": 1, "deduped": False}
    assert time.monotonic() - started >= 1.0, "Retry-After was waited"
    keys = [r.headers["idempotency-key"] for r in server.requests]
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert keys[0].startswith("gp-")


async def test_async_retries_the_same_way(script: Script) -> None:
    server = script(Reply(503, {"retry-after": "0"}), Reply(429, {"retry-after": "0"}), PUBLISHED)
    async with AsyncGatePulse("gpk_test", base_url=server.url) as agp:
        assert (await agp.events.publish("a", {}))["id"] == "evt_1"
    assert len({r.headers["idempotency-key"] for r in server.requests}) == 1
    assert len(server.requests) == 3


def test_uses_the_given_idempotency_key(script: Script) -> None:
    server = script(PUBLISHED)
    client(server).events.publish("a", {}, idempotency_key="order-1")
    assert server.requests[0].headers["idempotency-key"] == "order-1"
    assert json.loads(server.requests[0].body)["idempotency_key"] == "order-1"


def test_gives_each_batch_item_a_key_derived_from_the_requests(script: Script) -> None:
    server = script(Reply(503), Reply(202, body=b'{"data": []}'))
    client(server, max_retries=1).events.batch(
        [{"topic": "a", "payload": {}}, {"topic": "b", "payload": {}, "idempotency_key": "mine"}]
    )
    first, second = server.requests
    key = second.headers["idempotency-key"]
    assert first.headers["idempotency-key"] == key
    assert [e["idempotency_key"] for e in json.loads(second.body)["events"]] == [f"{key}:0", "mine"]
    assert first.body == second.body


def test_raises_the_last_error_when_retries_run_out(script: Script) -> None:
    server = script(Reply(503, {"retry-after": "0"}, problem(503, "not_ready")))
    with pytest.raises(ServerError) as raised:
        client(server).stats.get()
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (503, "not_ready", 0)
    assert len(server.requests) == 3


def test_does_not_wait_for_a_retry_after_past_the_cap(script: Script) -> None:
    server = script(Reply(429, {"retry-after": "3600"}, problem(429, "queue_full")))
    with pytest.raises(RateLimitError) as raised:
        client(server).events.publish("a", {})
    assert raised.value.retry_after == 3600
    assert len(server.requests) == 1


def test_never_retries_other_4xx(script: Script) -> None:
    server = script(Reply(422, body=problem(422, "invalid_topic", field="topic")))
    with pytest.raises(ValidationError) as raised:
        client(server).events.publish("a..b", {})
    assert raised.value.problem is not None
    assert raised.value.problem["field"] == "topic"
    assert str(raised.value) == "422 invalid_topic: invalid_topic detail"
    assert len(server.requests) == 1


def test_retries_a_refused_connection_then_raises() -> None:
    with (
        GatePulse("k", base_url=f"http://127.0.0.1:{free_port()}", max_retries=1) as gp,
        pytest.raises(APIConnectionError) as raised,
    ):
        gp.events.get("evt_1")
    assert not isinstance(raised.value, APITimeoutError)
    assert raised.value.status is None


def test_times_out_an_attempt_that_gets_no_answer(script: Script) -> None:
    server = script(Reply(200, hang=1.0))
    with pytest.raises(APITimeoutError):
        client(server).with_options(timeout=0.1, max_retries=1).events.get("evt_1")
    assert len(server.requests) == 2


async def test_async_connection_errors_and_timeouts(script: Script) -> None:
    async with AsyncGatePulse("k", base_url=f"http://127.0.0.1:{free_port()}", max_retries=0) as agp:
        with pytest.raises(APIConnectionError):
            await agp.stats.get()
    server = script(Reply(200, hang=1.0))
    async with AsyncGatePulse("k", base_url=server.url) as agp:
        with pytest.raises(APITimeoutError):
            await agp.with_options(timeout=0.1, max_retries=0).stats.get()


def test_sends_auth_tenant_user_agent_and_custom_headers(script: Script) -> None:
    server = script(Reply(200, body=b'{"data": [], "next_cursor": null}'))
    with GatePulse("gpadm_x", base_url=server.url, tenant="ten_1", headers={"x-extra": "1"}) as gp:
        gp.deliveries.list(status="dead", endpoint_id=None, limit=5)
    req = server.requests[0]
    assert req.path == "/v1/deliveries?status=dead&limit=5"
    assert req.headers["authorization"] == "Bearer gpadm_x"
    assert req.headers["gatepulse-tenant"] == "ten_1"
    assert req.headers["user-agent"] == f"gatepulse-python/{__version__}"
    assert req.headers["x-extra"] == "1"
    assert "idempotency-key" not in req.headers


def test_encodes_path_segments_and_replay_times(script: Script) -> None:
    server = script(Reply(202, body=b"{}"))
    gp = client(server)
    gp.plugins.delete("a/b", "1.0.0+x")
    gp.replay.create(from_=datetime(1970, 1, 1, tzinfo=timezone.utc), to=datetime(2026, 1, 1), topic="orders.#")
    assert server.requests[0].path == "/v1/plugins/a%2Fb/1.0.0%2Bx"
    assert json.loads(server.requests[1].body) == {
        "from": "1970-01-01T00:00:00Z",
        "to": "2026-01-01T00:00:00Z",
        "topic": "orders.#",
    }
    with pytest.raises(TypeError, match="exactly one"):
        gp.dlq.requeue()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ValidationError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, GatePulseError),
        (409, ConflictError),
        (413, ValidationError),
        (415, ValidationError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_maps_every_status_to_its_error_class(script: Script, status: int, cls: type[GatePulseError]) -> None:
    server = script(Reply(status, {"x-request-id": f"req_{status}"}, problem(status, f"c{status}")))
    with pytest.raises(GatePulseError) as raised:
        client(server, max_retries=0).events.get("evt_1")
    assert type(raised.value) is cls
    assert raised.value.request_id == f"req_{status}"
    assert raised.value.code == f"c{status}"


def test_keeps_a_non_problem_error_body_as_the_detail(script: Script) -> None:
    server = script(
        Reply(502, {"content-type": "text/html", "retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"<h1>Bad</h1>")
    )
    with pytest.raises(ServerError) as raised:
        client(server, max_retries=0).stats.get()
    assert (raised.value.code, raised.value.detail, raised.value.retry_after) == (None, "<h1>Bad</h1>", 0)


def pages(*batches: tuple[list[Any], str | None]) -> list[Reply]:
    return [Reply(200, body=json.dumps({"data": d, "next_cursor": c}).encode()) for d, c in batches]


def test_pages_through_a_listing_following_empty_pages(script: Script) -> None:
    server = script(*pages(([{"id": "1"}, {"id": "2"}], "c1"), ([], "c2"), ([{"id": "3"}], None)))
    first = client(server).endpoints.list(limit=2)
    assert [e["id"] for e in first.data] == ["1", "2"]
    assert first.has_more
    assert [e["id"] for e in first] == ["1", "2", "3"]
    assert [r.path for r in server.requests] == [
        "/v1/endpoints?limit=2",
        "/v1/endpoints?limit=2&cursor=c1",
        "/v1/endpoints?limit=2&cursor=c2",
    ]
    last = first.next_page()  # the server now repeats its last page
    assert last is not None
    assert not last.has_more
    assert last.next_page() is None
    assert [len(p.data) for p in first.iter_pages()] == [2, 1]


async def test_async_pages(script: Script) -> None:
    server = script(*pages(([{"id": "1"}], "c1"), ([{"id": "2"}], None), ([{"id": "1"}], "c1"), ([{"id": "2"}], None)))
    async with AsyncGatePulse("k", base_url=server.url) as agp:
        first = await agp.subscriptions.list(endpoint_id="ep_1")
        assert [s["id"] for s in first.data] == ["1"]
        assert first.has_more
        assert [s["id"] async for s in first] == ["1", "2"]
        assert [s["id"] async for s in agp.subscriptions.list()] == ["1", "2"]
        last = await first.next_page()
        assert last is not None
        assert await last.next_page() is None
        assert [len(p.data) async for p in first.iter_pages()] == [1, 1]


def test_needs_an_api_key_from_the_arguments_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEPULSE_API_KEY", raising=False)
    monkeypatch.delenv("GATEPULSE_URL", raising=False)
    with pytest.raises(TypeError, match="GATEPULSE_API_KEY"):
        GatePulse()
    monkeypatch.setenv("GATEPULSE_API_KEY", "gpk_env")
    with GatePulse() as gp:
        assert gp.base_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("GATEPULSE_URL", "http://gp.internal:9000/")
    with GatePulse() as gp:
        assert (gp.api_key, gp.base_url) == ("gpk_env", "http://gp.internal:9000")


def test_sends_through_a_given_http_client_and_leaves_it_open() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"scope": "tenant"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with GatePulse("k", http_client=http) as gp:
        assert gp.stats.get()["scope"] == "tenant"
    assert not http.is_closed
    assert seen == ["http://127.0.0.1:8080/v1/stats"]
    http.close()


async def test_async_client_closes_only_its_own_http_client() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _r: httpx.Response(204)))
    async with AsyncGatePulse("k", http_client=http) as agp:
        await agp.endpoints.delete("ep_1")
    assert not http.is_closed
    await http.aclose()
