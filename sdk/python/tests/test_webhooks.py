"""Webhook verification: diagnostics, header shapes, tolerance, rotation."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from email.message import Message

import pytest
import standardwebhooks

from gatepulse import Webhook, WebhookVerificationError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_" + base64.b64encode(bytes([7] * 32)).decode()
BODY = '{"test": 2432232314}'


def test_test_headers_verify_here_and_with_the_official_library() -> None:
    wh = Webhook(SECRET)
    headers = wh.generate_test_headers(BODY)
    assert wh.verify(BODY, headers) == {"test": 2432232314}
    assert standardwebhooks.Webhook(SECRET).verify(BODY, headers) == {"test": 2432232314}
    assert headers["webhook-id"].startswith("msg_test_")


def test_accepts_bytes_any_header_case_and_pairs() -> None:
    wh = Webhook(SECRET)
    headers = wh.generate_test_headers(BODY.encode(), msg_id="msg_1", timestamp=datetime.now(timezone.utc))
    assert wh.verify(BODY.encode(), {k.upper(): v for k, v in headers.items()})
    assert wh.verify(bytearray(BODY.encode()), list(headers.items()))
    assert wh.verify(memoryview(BODY.encode()), headers)
    message = Message()
    for name, value in headers.items():
        message[name.title()] = value
    assert wh.verify(BODY, message), "http.server's self.headers"
    # A repeated header is read as one space-separated list.
    pairs = [*headers.items(), ("webhook-signature", "v1,AAAA")]
    assert wh.verify(BODY, pairs)


@pytest.mark.parametrize("parsed", [json.loads(BODY), [1], None, 42])
def test_explains_a_parsed_body(parsed: object) -> None:
    wh = Webhook(SECRET)
    with pytest.raises(WebhookVerificationError, match="raw request body") as raised:
        wh.verify(parsed, wh.generate_test_headers(BODY))  # type: ignore[arg-type]
    assert raised.value.code == "invalid_body"


def test_hints_at_the_raw_body_when_no_signature_matches() -> None:
    wh = Webhook(SECRET)
    with pytest.raises(WebhookVerificationError, match="byte for byte") as raised:
        wh.verify('{"test":2432232314}', wh.generate_test_headers(BODY))
    assert raised.value.code == "invalid_signature"


def test_names_the_missing_headers() -> None:
    with pytest.raises(WebhookVerificationError, match="webhook-id, webhook-timestamp, webhook-signature"):
        Webhook(SECRET).verify(BODY, {})


def test_checks_the_timestamp_against_its_tolerance() -> None:
    wh = Webhook(SECRET, tolerance=10)
    headers = wh.generate_test_headers(BODY, timestamp=1_000_000)
    assert wh.verify(BODY, headers, now=1_000_010)
    with pytest.raises(WebhookVerificationError, match="11 s old"):
        wh.verify(BODY, headers, now=1_000_011)
    with pytest.raises(WebhookVerificationError, match="11 s in the future"):
        wh.verify(BODY, headers, now=999_989)


def test_any_of_several_secrets_verifies_during_a_rotation() -> None:
    headers = Webhook(OTHER).generate_test_headers(BODY)
    assert Webhook([SECRET, OTHER]).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, headers)
    assert len(Webhook([SECRET, OTHER]).sign("m", 1, "{}").split(" ")) == 2


def test_refuses_a_valid_signature_over_a_body_that_is_not_json() -> None:
    wh = Webhook(SECRET)
    with pytest.raises(WebhookVerificationError, match="not JSON"):
        wh.verify("not json", wh.generate_test_headers("not json"))


@pytest.mark.parametrize("secret", ["", [], "whsec_%%%", "whsec_", [""]])
def test_refuses_secrets_that_are_not_whsec_secrets(secret: str) -> None:
    with pytest.raises(TypeError):
        Webhook(secret)
