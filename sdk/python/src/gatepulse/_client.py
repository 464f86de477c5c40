"""The API clients: `GatePulse` (blocking) and `AsyncGatePulse` (asyncio), both over
httpx. They share one request core: URL and headers, retries (`retry_delay`), and
errors; only the waiting and the I/O differ."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from . import _operations as ops
from . import async_resources as ares
from . import resources as res
from ._errors import APIConnectionError, APITimeoutError, GatePulseError, error_from_response
from ._pagination import AsyncPage, AsyncPaginator, Page
from ._retry import ErrorOutcome, Outcome, RetryPolicy, StatusOutcome, retry_delay
from ._version import __version__

DEFAULT_BASE_URL = "http://127.0.0.1:8080"

_Failure = tuple[GatePulseError, Outcome]


class _BaseClient:
    """Settings and the parts of sending that need no I/O."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        max_retry_after: float,
        tenant: str | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        key = api_key or os.environ.get("GATEPULSE_API_KEY")
        if not key:
            raise TypeError("GatePulse: no API key; pass api_key= or set GATEPULSE_API_KEY")
        self.api_key = key
        self.base_url = (base_url or os.environ.get("GATEPULSE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        """Seconds for each attempt's connect, read and write."""
        self.retry_policy = RetryPolicy(max_retries=max_retries, max_retry_after=max_retry_after)
        self.tenant = tenant
        """With the admin token: the tenant to act in (``GatePulse-Tenant``)."""
        self.headers = dict(headers or {})

    def _headers(self, request: ops.Request) -> dict[str, str]:
        headers = {
            "accept": "application/json",
            "authorization": f"Bearer {self.api_key}",
            "user-agent": f"gatepulse-python/{__version__}",
        }
        if self.tenant is not None:
            headers["gatepulse-tenant"] = self.tenant
        if request.json is not None:
            headers["content-type"] = "application/json"
        if request.content_type is not None:
            headers["content-type"] = request.content_type
        if request.idempotency_key is not None:
            headers["idempotency-key"] = request.idempotency_key
        return {**headers, **self.headers, **request.headers}

    def _build(
        self, http: httpx.Client | httpx.AsyncClient, request: ops.Request, timeout: float | None
    ) -> httpx.Request:
        """The HTTP request, built once and sent as is on every attempt (so a POST keeps
        its idempotency key across retries)."""
        if request.method == "POST" and request.idempotency_key is None:
            request = replace(request, idempotency_key=ops.new_idempotency_key())
        return http.build_request(
            request.method,
            self.base_url + request.path,
            params={k: v for k, v in request.params.items() if v is not None},
            json=request.json,
            content=request.content,
            headers=self._headers(request),
            timeout=self.timeout if timeout is None else timeout,
        )

    def _policy(self, max_retries: int | None) -> RetryPolicy:
        return self.retry_policy if max_retries is None else replace(self.retry_policy, max_retries=max_retries)

    @staticmethod
    def _transport_failure(request: httpx.Request, exc: httpx.TransportError) -> _Failure:
        what = f"{request.method} {request.url.path}"
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"{what}: no answer in time ({exc!r})"), ErrorOutcome("timeout")
        return APIConnectionError(f"{what}: {exc!r}"), ErrorOutcome("connection")

    @staticmethod
    def _status_failure(response: httpx.Response) -> _Failure:
        return error_from_response(response), StatusOutcome(response.status_code, response.headers.get("retry-after"))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        return response.json() if response.content else None


class GatePulse(_BaseClient):
    """The GatePulse API client (blocking).

    >>> with GatePulse(api_key="gpk_...") as gp:
    ...     gp.events.publish("orders.created", {"id": 1001})
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        max_retry_after: float = 60.0,
        tenant: str | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        """
        Args:
            api_key: An API key (``gpk_…``) or the admin token. Default: ``GATEPULSE_API_KEY``.
            base_url: The server's URL. Default: ``GATEPULSE_URL``, else ``http://127.0.0.1:8080``.
            timeout: Seconds for each attempt's connect, read and write.
            max_retries: Retries after the first attempt (connection errors, timeouts, 429, 5xx).
            max_retry_after: The longest ``Retry-After`` (seconds) to wait for; longer ones are raised.
            tenant: With the admin token, the tenant to act in.
            headers: Headers added to every request.
            http_client: An ``httpx.Client`` to send with (proxies, transports); not closed by `close`.
        """
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            tenant=tenant,
            headers=headers,
        )
        self._http = http_client or httpx.Client()
        self._owns_http = http_client is None
        self.events = res.Events(self)
        self.endpoints = res.Endpoints(self)
        self.subscriptions = res.Subscriptions(self)
        self.deliveries = res.Deliveries(self)
        self.dlq = res.Dlq(self)
        self.replay = res.Replay(self)
        self.stats = res.Stats(self)
        self.plugins = res.Plugins(self)
        self.inbox = res.Inbox(self)
        self.tenants = res.Tenants(self)
        self.stream = res.Stream(self)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> GatePulse:
        """A client with other settings, sharing this one's connections."""
        return GatePulse(
            self.api_key,
            base_url=self.base_url,
            timeout=self.timeout if timeout is None else timeout,
            max_retries=self.retry_policy.max_retries if max_retries is None else max_retries,
            max_retry_after=self.retry_policy.max_retry_after,
            tenant=self.tenant,
            headers=self.headers,
            http_client=self._http,
        )

    def close(self) -> None:
        """Closes the connections (unless the ``http_client`` was given)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> GatePulse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(
        self,
        request: ops.Request,
        *,
        stream: bool = False,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Sends with retries; returns the first 2xx response (unread when ``stream``),
        raises a `GatePulseError` for anything else."""
        policy = self._policy(max_retries)
        built = self._build(self._http, request, timeout)
        attempt = 1
        while True:
            failure: _Failure
            try:
                response = self._http.send(built, stream=stream)
            except httpx.TransportError as e:
                failure = self._transport_failure(built, e)
            else:
                if 200 <= response.status_code < 300:
                    return response
                response.read()
                response.close()
                failure = self._status_failure(response)
            error, outcome = failure
            delay = retry_delay(policy, attempt, outcome)
            if delay is None:
                raise error
            time.sleep(delay)
            attempt += 1

    def _request(self, request: ops.Request) -> Any:
        return self._json(self._send(request))

    def _list(self, request: ops.Request) -> Page[Any]:
        def fetch(cursor: str) -> Page[Any]:
            return Page(self._request(request.with_params(cursor=cursor)), fetch)

        return Page(self._request(request), fetch)


class AsyncGatePulse(_BaseClient):
    """The GatePulse API client for asyncio: the same resources, each method awaitable.

    >>> async with AsyncGatePulse(api_key="gpk_...") as gp:
    ...     await gp.events.publish("orders.created", {"id": 1001})
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        max_retry_after: float = 60.0,
        tenant: str | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """Takes the arguments of `GatePulse`, with an ``httpx.AsyncClient``."""
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            tenant=tenant,
            headers=headers,
        )
        self._http = http_client or httpx.AsyncClient()
        self._owns_http = http_client is None
        self.events = ares.Events(self)
        self.endpoints = ares.Endpoints(self)
        self.subscriptions = ares.Subscriptions(self)
        self.deliveries = ares.Deliveries(self)
        self.dlq = ares.Dlq(self)
        self.replay = ares.Replay(self)
        self.stats = ares.Stats(self)
        self.plugins = ares.Plugins(self)
        self.inbox = ares.Inbox(self)
        self.tenants = ares.Tenants(self)
        self.stream = ares.Stream(self)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> AsyncGatePulse:
        """A client with other settings, sharing this one's connections."""
        return AsyncGatePulse(
            self.api_key,
            base_url=self.base_url,
            timeout=self.timeout if timeout is None else timeout,
            max_retries=self.retry_policy.max_retries if max_retries is None else max_retries,
            max_retry_after=self.retry_policy.max_retry_after,
            tenant=self.tenant,
            headers=self.headers,
            http_client=self._http,
        )

    async def close(self) -> None:
        """Closes the connections (unless the ``http_client`` was given)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncGatePulse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(
        self,
        request: ops.Request,
        *,
        stream: bool = False,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Sends with retries, as `GatePulse._send` does."""
        policy = self._policy(max_retries)
        built = self._build(self._http, request, timeout)
        attempt = 1
        while True:
            failure: _Failure
            try:
                response = await self._http.send(built, stream=stream)
            except httpx.TransportError as e:
                failure = self._transport_failure(built, e)
            else:
                if 200 <= response.status_code < 300:
                    return response
                await response.aread()
                await response.aclose()
                failure = self._status_failure(response)
            error, outcome = failure
            delay = retry_delay(policy, attempt, outcome)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    async def _request(self, request: ops.Request) -> Any:
        return self._json(await self._send(request))

    def _list(self, request: ops.Request) -> AsyncPaginator[Any]:
        async def fetch(cursor: str) -> AsyncPage[Any]:
            return AsyncPage(await self._request(request.with_params(cursor=cursor)), fetch)

        async def first() -> AsyncPage[Any]:
            return AsyncPage(await self._request(request), fetch)

        return AsyncPaginator(first)
