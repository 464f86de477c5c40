"""Errors raised by the API client: one base class, `GatePulseError`, with a
subclass per kind of failure, so callers can catch broadly or precisely.

Every error answered by the server carries the RFC 9457 problem document's ``code``
(stable, machine-readable), ``detail``, the HTTP ``status``, the response headers and
the whole ``problem``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ._retry import parse_retry_after


class GatePulseError(Exception):
    """Base class of every error the client raises for a failed API call."""

    status: int | None
    """HTTP status, or None when no response came (connection, timeout)."""
    code: str | None
    """The problem document's ``code`` (e.g. ``invalid_topic``), when the server sent one."""
    detail: str | None
    """The problem document's ``detail``."""
    request_id: str | None
    """The request id the server answered with (``x-request-id``), if any."""
    headers: httpx.Headers
    """Response headers (empty when no response came)."""
    problem: dict[str, Any] | None
    """The whole problem document, with its extra members (``field``, ``position``, …)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        headers: httpx.Headers | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers if headers is not None else httpx.Headers()
        self.request_id = self.headers.get("x-request-id") or self.headers.get("request-id")
        self.problem = problem


class ValidationError(GatePulseError):
    """400, 413, 415 or 422: the request was refused as invalid (see ``code`` and ``problem["field"]``)."""


class AuthenticationError(GatePulseError):
    """401: no token, or an invalid or revoked one."""


class PermissionDeniedError(GatePulseError):
    """403: the key lacks a scope (``problem["scope"]``), or the route is admin-only."""


class NotFoundError(GatePulseError):
    """404: unknown id (also another tenant's), unknown tenant or route."""


class ConflictError(GatePulseError):
    """409: a conflict such as ``limit_reached``, ``already_exists`` or ``plugin_in_use``."""


class _RetryAfter(GatePulseError):
    """An error whose response may say how long to wait."""

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (``Retry-After``), if it said."""
        return parse_retry_after(self.headers.get("retry-after"), time.time())


class RateLimitError(_RetryAfter):
    """429: overloaded; ``retry_after`` says how many seconds to wait."""


class ServerError(_RetryAfter):
    """5xx: the server failed or is unavailable (503 carries ``retry_after``)."""


class APIConnectionError(GatePulseError):
    """No response: the connection failed (refused, reset, DNS, TLS)."""


class APITimeoutError(APIConnectionError):
    """No response within the timeout."""


_BY_STATUS: Mapping[int, type[GatePulseError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: ValidationError,
    415: ValidationError,
    422: ValidationError,
    429: RateLimitError,
}


def error_from_response(response: httpx.Response) -> GatePulseError:
    """The error for a non-2xx response (its body already read)."""
    text = response.text
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    problem = body if isinstance(body, dict) and isinstance(body.get("code"), str) else None
    detail = str(problem.get("detail", "")) if problem else (text.strip()[:500] or None)
    code = problem["code"] if problem else None
    status = response.status_code
    message = f"{status}{f' {code}' if code else ''}{f': {detail}' if detail else ''}"
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else GatePulseError)
    return cls(message, status=status, code=code, detail=detail, headers=response.headers, problem=problem)
