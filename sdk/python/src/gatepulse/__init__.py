"""The GatePulse SDK: the API clients (`GatePulse`, `AsyncGatePulse`) and webhook
verification (`Webhook`).

>>> from gatepulse import GatePulse
>>> with GatePulse(api_key="gpk_...") as gp:
...     gp.events.publish("orders.created", {"id": 1001, "amount": 250})
"""

from ._client import DEFAULT_BASE_URL, AsyncGatePulse, GatePulse
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    GatePulseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from ._pagination import AsyncPage, AsyncPaginator, Page
from ._retry import RetryPolicy
from ._stream import AsyncStreamSubscription, StreamEvent, StreamItem, StreamReset, StreamSubscription
from ._topics import topic_matches
from ._version import __version__
from .webhooks import Webhook, WebhookVerificationError

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncGatePulse",
    "AsyncPage",
    "AsyncPaginator",
    "AsyncStreamSubscription",
    "AuthenticationError",
    "ConflictError",
    "GatePulse",
    "GatePulseError",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "StreamEvent",
    "StreamItem",
    "StreamReset",
    "StreamSubscription",
    "ValidationError",
    "Webhook",
    "WebhookVerificationError",
    "__version__",
    "topic_matches",
]
