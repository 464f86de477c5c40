"""Verifying the deliveries GatePulse sends (Standard Webhooks signatures).

>>> wh = Webhook(os.environ["GATEPULSE_WEBHOOK_SECRET"])
>>> payload = wh.verify(raw_body, request.headers)  # raises WebhookVerificationError

The signed content is ``{webhook-id}.{webhook-timestamp}.{raw body}``;
``webhook-signature`` holds space-separated entries (several during a rotation), any of
which may match:

- ``v1,<base64>``: HMAC-SHA256 keyed with the base64 part of the endpoint's ``whsec_``
  secret;
- ``v1a,<base64>``: an Ed25519 signature, verified with the endpoint's ``whpk_`` public
  key (``GET /v1/endpoints/{id}/public-key``), which cannot sign. Needs the
  ``cryptography`` package: ``pip install 'gatepulse[ed25519]'``.

>>> wh = Webhook(os.environ["GATEPULSE_WEBHOOK_PUBLIC_KEY"])  # "whpk_..."

The timestamp must be within the tolerance (5 minutes) of now, both ways, so a captured
request cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from email.message import Message
from typing import Any, Literal, Union, cast

try:  # optional: only v1a (Ed25519) verification needs it (gatepulse[ed25519])
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover - exercised without the extra installed
    _HAVE_ED25519 = False
else:
    _HAVE_ED25519 = True

_PREFIX = "whsec_"
_PUBLIC_PREFIX = "whpk_"

WebhookErrorCode = Literal[
    "missing_headers",
    "invalid_timestamp",
    "timestamp_too_old",
    "timestamp_too_new",
    "invalid_signature",
    "invalid_body",
]

RawBody = Union[bytes, bytearray, memoryview, str]
"""The body exactly as received."""

HeadersLike = Union[Mapping[str, str], "Message[str, str]", Iterable["tuple[str, str]"]]
"""Request headers: any mapping (Flask's ``request.headers``, Starlette's, Django's, a
dict in any letter case), an ``email.message.Message`` (``http.server``'s
``self.headers``) or ``(name, value)`` pairs."""


class WebhookVerificationError(Exception):
    """A delivery did not verify: answer it with 400 and do not act on it."""

    def __init__(self, code: WebhookErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: WebhookErrorCode = code
        """Machine-readable reason."""


class Webhook:
    """Verifies (and, for tests, signs) deliveries of one endpoint."""

    def __init__(self, secret: str | Sequence[str], *, tolerance: int = 300) -> None:
        """
        Args:
            secret: The endpoint's ``whsec_…`` secret (the prefix is optional), or its
                ``whpk_…`` public key to verify ``v1a`` (Ed25519) signatures. During a
                rotation pass ``[new_key, old_key]``: a message signed with either
                verifies.
            tolerance: Largest distance between the message's timestamp and now, in seconds.
        """
        secret_list = [secret] if isinstance(secret, str) else list(secret)
        if not secret_list or not all(isinstance(s, str) and s for s in secret_list):
            raise TypeError("Webhook: expected the endpoint's whsec_ secret or whpk_ public key (a non-empty string)")
        self._keys = [_decode_secret(s) for s in secret_list if not s.startswith(_PUBLIC_PREFIX)]
        self._public_keys = [_decode_public_key(s) for s in secret_list if s.startswith(_PUBLIC_PREFIX)]
        self._tolerance = tolerance

    def verify(self, raw_body: RawBody, headers: HeadersLike, *, now: float | None = None) -> Any:
        """Checks the signature and timestamp of a delivery and returns its parsed JSON
        payload; raises `WebhookVerificationError` when it does not verify.

        Args:
            raw_body: The request body exactly as received: FastAPI/Starlette
                ``await request.body()``, Flask ``request.get_data()``, Django
                ``request.body``. Not a parsed dict, not re-serialised JSON.
            headers: The request headers (``webhook-id``, ``webhook-timestamp``,
                ``webhook-signature``).
            now: Unix seconds to check the timestamp against (tests). Default: now.
        """
        body = _body_bytes(raw_body)
        found = _headers(headers)
        msg_id, timestamp, signature = (found.get(n) for n in ("webhook-id", "webhook-timestamp", "webhook-signature"))
        if not msg_id or not timestamp or not signature:
            missing = [n for n in ("webhook-id", "webhook-timestamp", "webhook-signature") if not found.get(n)]
            raise WebhookVerificationError(
                "missing_headers", f"missing header(s): {', '.join(missing)}; is this request from GatePulse?"
            )
        self._check_timestamp(timestamp, time.time() if now is None else now)
        content = f"{msg_id}.{timestamp}.".encode() + body
        expected = [_hmac(key, content) for key in self._keys]
        entries = signature.split(" ")
        passed = [_b64decode(entry[3:]) for entry in entries if entry.startswith("v1,")]
        symmetric = any(sig is not None and hmac.compare_digest(sig, mine) for sig in passed for mine in expected)
        if not symmetric and not self._verifies_v1a(
            [_b64decode(entry[4:]) for entry in entries if entry.startswith("v1a,")], content
        ):
            raise WebhookVerificationError(
                "invalid_signature",
                "no signature matches: check that the key is this endpoint's whsec_ secret (v1) or whpk_ public "
                "key (v1a) and that the body is the raw request body, byte for byte (parsing and re-serialising "
                "JSON changes it)",
            )
        try:
            return json.loads(body)
        except ValueError:
            raise WebhookVerificationError("invalid_body", "the signature is valid but the body is not JSON") from None

    def sign(self, msg_id: str, timestamp: int | float | datetime, raw_body: RawBody) -> str:
        """The ``webhook-signature`` value for a message: one ``v1,`` entry per secret."""
        if not self._keys:
            raise TypeError("Webhook.sign: needs a whsec_ secret; a whpk_ public key can only verify")
        seconds = int(timestamp.timestamp() if isinstance(timestamp, datetime) else timestamp)
        content = f"{msg_id}.{seconds}.".encode() + _body_bytes(raw_body)
        return " ".join("v1," + base64.b64encode(_hmac(key, content)).decode() for key in self._keys)

    def generate_test_headers(
        self, raw_body: RawBody, *, msg_id: str | None = None, timestamp: int | float | datetime | None = None
    ) -> dict[str, str]:
        """Headers that make ``raw_body`` a validly signed delivery, to test a receiver:
        ``client.post(url, content=body, headers=wh.generate_test_headers(body))``."""
        msg_id = msg_id or f"msg_test_{secrets.token_hex(16)}"
        when = time.time() if timestamp is None else timestamp
        seconds = int(when.timestamp() if isinstance(when, datetime) else when)
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(seconds),
            "webhook-signature": self.sign(msg_id, seconds, raw_body),
        }

    def _verifies_v1a(self, signatures: list[bytes | None], content: bytes) -> bool:
        """Whether any ``v1a`` signature verifies with any of the public keys."""
        for sig in signatures:
            if sig is None or len(sig) != 64:
                continue
            for key in self._public_keys:
                try:
                    key.verify(sig, content)
                    return True
                except InvalidSignature:
                    continue
        return False

    def _check_timestamp(self, value: str, now: float) -> None:
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 15):
            raise WebhookVerificationError("invalid_timestamp", f"webhook-timestamp {value!r} is not unix seconds")
        drift = int(now) - int(text)
        if drift > self._tolerance:
            raise WebhookVerificationError(
                "timestamp_too_old",
                f"message timestamp is {drift} s old (tolerance {self._tolerance} s): a replay, or a clock far off",
            )
        if -drift > self._tolerance:
            raise WebhookVerificationError(
                "timestamp_too_new",
                f"message timestamp is {-drift} s in the future (tolerance {self._tolerance} s): check this clock",
            )


def _decode_secret(secret: str) -> bytes:
    key = _b64decode(secret.removeprefix(_PREFIX))
    if not key:
        raise TypeError("Webhook: the secret is not a whsec_ secret (whsec_ followed by base64)")
    return key


def _decode_public_key(key: str) -> Ed25519PublicKey:
    raw = _b64decode(key.removeprefix(_PUBLIC_PREFIX))
    if raw is None or len(raw) != 32:
        raise TypeError("Webhook: the public key is not a whpk_ key (whpk_ followed by base64 of 32 bytes)")
    if not _HAVE_ED25519:  # pragma: no cover - exercised without the extra installed
        raise TypeError(
            "Webhook: verifying v1a (whpk_) signatures needs the cryptography package: pip install 'gatepulse[ed25519]'"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def _body_bytes(raw: object) -> bytes:
    """The body as bytes; a parsed object gets a diagnostic instead of a confusing mismatch."""
    if isinstance(raw, str):
        return raw.encode()
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    kind = "a parsed dict" if isinstance(raw, Mapping) else f"a {type(raw).__name__}"
    raise WebhookVerificationError(
        "invalid_body",
        f"verify() needs the raw request body (bytes or str), but got {kind}. The signature covers the exact "
        "bytes sent; JSON that was parsed and re-serialised no longer matches. FastAPI/Starlette: await "
        "request.body(); Flask: request.get_data(); Django: request.body.",
    )


def _headers(headers: HeadersLike) -> dict[str, str]:
    """Lower-cased names; a repeated header's values joined with spaces. Anything with
    ``items()`` counts as a mapping (``http.server``'s ``email.message.Message`` too)."""
    items = getattr(headers, "items", None)
    pairs: Iterable[tuple[str, str]] = items() if callable(items) else cast("Iterable[tuple[str, str]]", headers)
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]} {value}" if key in out else value
    return out


def _hmac(key: bytes, content: bytes) -> bytes:
    return hmac.new(key, content, hashlib.sha256).digest()


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
