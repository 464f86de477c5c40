#!/usr/bin/env python3
"""Writes (or, with --check, verifies) webhook-signatures.json and
webhook-signatures-v1a.json.

Standard library only, so anyone can re-run it. The signing rule is the Standard
Webhooks one: ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key
being the base64 part of a ``whsec_`` secret, one signature per secret, space
separated. The SDK tests check every case of the first file against the official
``standardwebhooks`` libraries (PyPI and npm), so this generator cannot drift from
them unnoticed. The second file holds the asymmetric scheme: ``v1a,`` + base64(Ed25519
signature of the same content), by a ``whsk_`` key (base64 of a 32-byte seed), which
receivers verify with its ``whpk_`` public key; signed with ``ed25519.py`` and checked
by the router (ring), the JS SDK (WebCrypto) and the Python SDK (cryptography).

    python3 sdk/conformance/generate.py          # rewrite the file
    python3 sdk/conformance/generate.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any, Optional

from ed25519 import public_key as ed25519_public_key
from ed25519 import sign as ed25519_sign

OUT = Path(__file__).with_name("webhook-signatures.json")
OUT_V1A = Path(__file__).with_name("webhook-signatures-v1a.json")

# The example secret of the Standard Webhooks reference libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# The secret installed by a rotation (deterministic bytes, not a real secret).
NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
# A secret nobody signed with.
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()

MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = 1614265330
BODY = '{"test": 2432232314}'
TOLERANCE = 300


def sign(secrets: list[str], msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value, exactly as the router writes it."""
    out = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        content = f"{msg_id}.{timestamp}.{body}".encode()
        mac = hmac.new(key, content, hashlib.sha256).digest()
        out.append("v1," + base64.b64encode(mac).decode())
    return " ".join(out)


def case(
    name: str,
    description: str,
    *,
    secret: str = SECRET,
    signed_with: Optional[list[str]] = None,
    body: str = BODY,
    signed_body: Optional[str] = None,
    msg_id: str = MSG_ID,
    timestamp: int = TS,
    header_timestamp: Optional[str] = None,
    now: int = TS,
    signature: Optional[str] = None,
    omit: tuple[str, ...] = (),
    error: Optional[str] = None,
) -> dict[str, Any]:
    """One vector. ``signed_with`` None means the signature header is crafted by hand."""
    if signature is None:
        signers = signed_with if signed_with is not None else [SECRET]
        signature = sign(signers, msg_id, timestamp, body if signed_body is None else signed_body)
        signed_with = signers
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": header_timestamp if header_timestamp is not None else str(timestamp),
        "webhook-signature": signature,
    }
    for name_ in omit:
        headers.pop(name_)
    if "webhook-signature" in omit:
        signed_with = None  # nothing signed reaches the receiver
    return {
        "name": name,
        "description": description,
        "secret": secret,
        "body": body,
        "headers": headers,
        "now": now,
        "signing": None
        if signed_with is None
        else {
            "secrets": signed_with,
            "id": msg_id,
            "timestamp": timestamp,
            "body": body if signed_body is None else signed_body,
        },
        "expect": "valid" if error is None else "invalid",
        "error": error,
    }


def cases() -> list[dict[str, Any]]:
    wrong = sign([OTHER_SECRET], MSG_ID, TS, BODY)
    good = sign([SECRET], MSG_ID, TS, BODY)
    unicode_body = '{"name":"Zoë","city":"Zürich","emoji":"🚀","note":"line\\nbreak"}'
    return [
        case("valid", "The Standard Webhooks reference vector."),
        case("valid_unicode_body", "Non-ASCII body: the UTF-8 bytes are signed.", body=unicode_body),
        case("valid_empty_object", "An empty JSON object.", body="{}"),
        case(
            "valid_nested_whitespace",
            "Whitespace and key order are part of the signed bytes.",
            body='{\n  "b": 1,\n  "a": [1, 2, {"c": null}]\n}',
        ),
        case(
            "valid_secret_without_prefix",
            "A secret given without its whsec_ prefix is the same key.",
            secret=SECRET.removeprefix("whsec_"),
        ),
        case("valid_at_old_edge", "Exactly the tolerance in the past.", now=TS + TOLERANCE),
        case("valid_at_new_edge", "Exactly the tolerance in the future.", now=TS - TOLERANCE),
        case(
            "tampered_body",
            "The body was changed after signing.",
            signed_body=BODY,
            body='{"test": 2432232315}',
            error="invalid_signature",
        ),
        case(
            "tampered_body_reformatted",
            "The body was parsed and re-serialised: same JSON, different bytes.",
            signed_body=BODY,
            body='{"test":2432232314}',
            error="invalid_signature",
        ),
        case(
            "tampered_id",
            "The webhook-id header differs from the signed id.",
            signature=good,
            msg_id="msg_p5jXN8AQM9LWM0D4loKWxJeX",
            error="invalid_signature",
        ),
        case(
            "tampered_timestamp",
            "The webhook-timestamp header differs from the signed one (within tolerance).",
            signature=good,
            timestamp=TS + 1,
            now=TS,
            error="invalid_signature",
        ),
        case(
            "wrong_secret",
            "Signed with a secret the receiver does not hold.",
            signed_with=[OTHER_SECRET],
            error="invalid_signature",
        ),
        case("expired", "One second past the tolerance.", now=TS + TOLERANCE + 1, error="timestamp_too_old"),
        case("future", "One second before the tolerance.", now=TS - TOLERANCE - 1, error="timestamp_too_new"),
        case(
            "expired_even_if_signature_valid",
            "A replayed message an hour later: the signature is right, the time is not.",
            now=TS + 3600,
            error="timestamp_too_old",
        ),
        case(
            "rotated_receiver_has_new_secret",
            "During a rotation both secrets sign (new first); the receiver holds the new one.",
            secret=NEW_SECRET,
            signed_with=[NEW_SECRET, SECRET],
        ),
        case(
            "rotated_receiver_has_old_secret",
            "During a rotation both secrets sign; the receiver still holds the old one.",
            secret=SECRET,
            signed_with=[NEW_SECRET, SECRET],
        ),
        case(
            "rotated_neither_secret",
            "Two signatures, neither with the receiver's secret.",
            secret=OTHER_SECRET,
            signed_with=[NEW_SECRET, SECRET],
            error="invalid_signature",
        ),
        case(
            "several_signatures_valid_last",
            "A wrong v1 signature first, then the right one.",
            signature=f"{wrong} {good}",
        ),
        case(
            "unknown_version_ignored",
            "Only v1 entries count: the right HMAC under another version is refused.",
            signature="v2," + good.split(",", 1)[1],
            error="invalid_signature",
        ),
        case(
            "unknown_version_then_v1",
            "An entry of another version is skipped; the v1 entry after it verifies.",
            signature="v1a,c2lnbmF0dXJl " + good,
        ),
        case(
            "missing_signature",
            "No webhook-signature header.",
            omit=("webhook-signature",),
            error="missing_headers",
        ),
        case("missing_id", "No webhook-id header.", omit=("webhook-id",), error="missing_headers"),
        case(
            "missing_timestamp",
            "No webhook-timestamp header.",
            omit=("webhook-timestamp",),
            error="missing_headers",
        ),
        case(
            "invalid_timestamp",
            "The timestamp is not a number.",
            header_timestamp="yesterday",
            signature=good,
            error="invalid_timestamp",
        ),
    ]


def signing_key(seed: bytes) -> str:
    return "whsk_" + base64.b64encode(seed).decode()


def public_key(seed: bytes) -> str:
    return "whpk_" + base64.b64encode(ed25519_public_key(seed)).decode()


# Deterministic test seeds, not real keys: the current one, the one a rotation
# installs, and one nobody signs with.
SEED = bytes(range(32, 64))
NEW_SEED = bytes(range(64, 96))
OTHER_SEED = bytes(range(96, 128))


def sign_v1a(keys: list[bytes], msg_id: str, timestamp: int, body: str) -> str:
    content = f"{msg_id}.{timestamp}.{body}".encode()
    return " ".join("v1a," + base64.b64encode(ed25519_sign(seed, content)).decode() for seed in keys)


def case_v1a(
    name: str,
    description: str,
    *,
    receiver: Optional[list[str]] = None,
    secrets: tuple[str, ...] = (),
    keys: tuple[bytes, ...] = (SEED,),
    body: str = BODY,
    signed_body: Optional[str] = None,
    msg_id: str = MSG_ID,
    now: int = TS,
    signature: Optional[str] = None,
    error: Optional[str] = None,
) -> dict[str, Any]:
    """One v1a vector: the sender signs ``v1`` with ``secrets``, then ``v1a`` with
    ``keys``; ``signature`` given means the header is crafted by hand."""
    signed = body if signed_body is None else signed_body
    signing: Optional[dict[str, Any]] = None
    if signature is None:
        parts = [sign(list(secrets), MSG_ID, TS, signed)] if secrets else []
        parts.append(sign_v1a(list(keys), MSG_ID, TS, signed))
        signature = " ".join(p for p in parts if p)
        signing = {
            "secrets": list(secrets),
            "signing_keys": [signing_key(k) for k in keys],
            "id": MSG_ID,
            "timestamp": TS,
            "body": signed,
        }
    return {
        "name": name,
        "description": description,
        "receiver": receiver if receiver is not None else [public_key(SEED)],
        "body": body,
        "headers": {"webhook-id": msg_id, "webhook-timestamp": str(TS), "webhook-signature": signature},
        "now": now,
        "signing": signing,
        "expect": "valid" if error is None else "invalid",
        "error": error,
    }


def cases_v1a() -> list[dict[str, Any]]:
    good = sign_v1a([SEED], MSG_ID, TS, BODY)
    return [
        case_v1a("v1a_valid", "An Ed25519 signature; the receiver holds the public key only."),
        case_v1a(
            "v1a_valid_unicode_body",
            "Non-ASCII body: the UTF-8 bytes are signed.",
            body='{"name":"Zoë","emoji":"🚀"}',
        ),
        case_v1a(
            "v1a_and_v1_receiver_has_public_key",
            "Both schemes on (v1 first); a receiver with the public key verifies the v1a entry.",
            secrets=(SECRET,),
        ),
        case_v1a(
            "v1a_and_v1_receiver_has_secret",
            "Both schemes on; a receiver with the whsec_ secret verifies the v1 entry.",
            secrets=(SECRET,),
            receiver=[SECRET],
        ),
        case_v1a(
            "v1a_rotated_receiver_has_new_key",
            "During a key rotation both keys sign (new first); the receiver holds the new public key.",
            keys=(NEW_SEED, SEED),
            receiver=[public_key(NEW_SEED)],
        ),
        case_v1a(
            "v1a_rotated_receiver_has_old_key",
            "During a key rotation both keys sign; the receiver still holds the old public key.",
            keys=(NEW_SEED, SEED),
        ),
        case_v1a(
            "v1a_receiver_holds_both_keys",
            "A receiver given both public keys accepts a message signed by the new key only.",
            keys=(NEW_SEED,),
            receiver=[public_key(NEW_SEED), public_key(SEED)],
        ),
        case_v1a(
            "v1a_wrong_key",
            "Signed by a key whose public key the receiver does not hold.",
            keys=(OTHER_SEED,),
            error="invalid_signature",
        ),
        case_v1a(
            "v1a_tampered_body",
            "The body was changed after signing.",
            signed_body=BODY,
            body='{"test": 2432232315}',
            error="invalid_signature",
        ),
        case_v1a(
            "v1a_tampered_id",
            "The webhook-id header differs from the signed id.",
            signature=good,
            msg_id="msg_p5jXN8AQM9LWM0D4loKWxJeX",
            error="invalid_signature",
        ),
        case_v1a(
            "v1a_public_key_ignores_v1",
            "Only v1 entries: a receiver holding a public key has nothing to verify.",
            signature=sign([SECRET], MSG_ID, TS, BODY),
            error="invalid_signature",
        ),
        case_v1a(
            "v1_secret_ignores_v1a",
            "Only v1a entries: a receiver holding a whsec_ secret has nothing to verify.",
            signature=good,
            receiver=[SECRET],
            error="invalid_signature",
        ),
        case_v1a(
            "v1a_signature_labelled_v1",
            "The right Ed25519 signature under the v1 label does not count.",
            signature="v1," + good.split(",", 1)[1],
            error="invalid_signature",
        ),
        case_v1a(
            "v1a_malformed_then_valid",
            "A malformed v1a entry (not base64, then too short) is skipped; the valid one after it verifies.",
            signature="v1a,not-base64! v1a,c2hvcnQ= " + good,
        ),
        case_v1a("v1a_expired", "One second past the tolerance.", now=TS + TOLERANCE + 1, error="timestamp_too_old"),
    ]


def document_v1a() -> str:
    doc = {
        "description": (
            "Standard Webhooks asymmetric (v1a, Ed25519) signature vectors shared by sdk/js, "
            "sdk/python and the router's signing tests. Generated by generate.py. A receiver "
            "holding the keys in `receiver` (whpk_ public keys, or whsec_ secrets) gets `body` "
            "(UTF-8) with `headers` at unix time `now`: `expect` is `valid` or `invalid` (with "
            "the SDKs' `error` code). `signing`, when not null, is what the sender signed: the "
            "router's Signer over `signing.secrets` (v1) and `signing.signing_keys` (v1a, whsk_: "
            "base64 of the 32-byte seed), current first, must produce "
            "`headers[\"webhook-signature\"]` exactly."
        ),
        "tolerance_seconds": TOLERANCE,
        "cases": cases_v1a(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def document() -> str:
    doc = {
        "description": (
            "Standard Webhooks signature vectors shared by sdk/js, sdk/python and the "
            "router's signing tests. Generated by generate.py; checked against the "
            "official standardwebhooks libraries. A receiver holding `secret` gets "
            "`body` (UTF-8) with `headers` at unix time `now`: `expect` is `valid` or "
            "`invalid` (with the SDKs' `error` code). `signing`, when not null, is what "
            "the sender signed: the router's Signer over `signing.secrets` (current "
            "first) must produce `headers[\"webhook-signature\"]` exactly."
        ),
        "tolerance_seconds": TOLERANCE,
        "cases": cases(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    stale = 0
    for out, text in ((OUT, document()), (OUT_V1A, document_v1a())):
        if "--check" in argv:
            if not out.exists() or out.read_text(encoding="utf-8") != text:
                print(f"{out} is out of date: run python3 {Path(__file__).name}", file=sys.stderr)
                stale = 1
        else:
            out.write_text(text, encoding="utf-8")
    return stale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
