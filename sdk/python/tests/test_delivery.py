"""Real deliveries from the real server verify with Webhook, and with the official library."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import standardwebhooks
from gpserver import Receiver, Recorded

from gatepulse import GatePulse, Webhook, WebhookVerificationError


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def official(secret: str, req: Recorded) -> object:
    return standardwebhooks.Webhook(secret).verify(req.body, req.headers)


def test_deliveries_carry_the_headers_and_verify_on_the_raw_body(gp: GatePulse, hooks: Receiver) -> None:
    ep = gp.endpoints.create(url=f"{hooks.url}/hook")
    gp.subscriptions.create(endpoint_id=ep["id"], topics=["pyorders.#"])
    secret = gp.endpoints.reveal_secret(ep["id"])
    payload = {"id": 1001, "amount": 250, "name": "Zoë 🚀", "nested": {"list": [1, 2.5, None]}}
    published = gp.events.publish("pyorders.created", payload)
    (req,) = hooks.wait_for(1)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["gatepulse-event-id"] == published["id"]
    assert req.headers["gatepulse-topic"] == "pyorders.created"
    assert req.headers["gatepulse-attempt"] == "1"
    assert req.headers["webhook-id"].startswith("dlv_")
    assert Webhook(secret).verify(req.body, req.headers) == payload
    assert official(secret, req) == payload
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(json.dumps(json.loads(req.body), indent=1), req.headers)


def test_retries_keep_the_webhook_id_and_are_signed(gp: GatePulse, hooks: Receiver) -> None:
    ep = gp.endpoints.create(url=f"{hooks.url}/retry", retry_schedule_secs=[1])
    gp.subscriptions.create(endpoint_id=ep["id"], topics=["pyretry.#"])
    secret = gp.endpoints.reveal_secret(ep["id"])
    hooks.then = [500]
    gp.events.publish("pyretry.me", {"n": 1})
    first, second = hooks.wait_for(2)
    assert [first.headers["gatepulse-attempt"], second.headers["gatepulse-attempt"]] == ["1", "2"]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    for req in (first, second):
        assert Webhook(secret).verify(req.body, req.headers) == {"n": 1}


def test_a_rotation_signs_with_both_secrets(gp: GatePulse, hooks: Receiver) -> None:
    ep = gp.endpoints.create(url=f"{hooks.url}/rotate")
    gp.subscriptions.create(endpoint_id=ep["id"], topics=["pyrotate.#"])
    old = gp.endpoints.reveal_secret(ep["id"])
    new = gp.endpoints.rotate_secret(ep["id"])
    gp.events.publish("pyrotate.x", {"r": 1})
    (req,) = hooks.wait_for(1)
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(req.body, req.headers) == {"r": 1}
        assert official(secret, req) == {"r": 1}
    stranger = "whsec_" + base64.b64encode(bytes([1] * 32)).decode()
    with pytest.raises(WebhookVerificationError) as raised:
        Webhook(stranger).verify(req.body, req.headers)
    assert raised.value.code == "invalid_signature"


def test_v1a_signatures_verify_with_the_public_key_alone(gp: GatePulse, hooks: Receiver) -> None:
    ep = gp.endpoints.create(url=f"{hooks.url}/v1a", signature_schemes=["v1a"])
    assert ep["signature_schemes"] == ["v1a"]
    gp.subscriptions.create(endpoint_id=ep["id"], topics=["pyv1a.#"])
    first = gp.endpoints.public_keys(ep["id"])
    assert first["public_key"] == ep["public_key"]
    rotated = gp.endpoints.rotate_public_key(ep["id"])
    assert [k["public_key"] for k in rotated["keys"]] == [rotated["public_key"], first["public_key"]]
    gp.events.publish("pyv1a.x", {"a": 1})
    (req,) = hooks.wait_for(1)
    # v1a only: one entry per key still signing, none for the symmetric secret.
    assert [e.split(",")[0] for e in req.headers["webhook-signature"].split(" ")] == ["v1a", "v1a"]
    for key in (rotated["public_key"], first["public_key"]):
        assert Webhook(key).verify(req.body, req.headers) == {"a": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(gp.endpoints.reveal_secret(ep["id"])).verify(req.body, req.headers)
    other = gp.endpoints.create(url=f"{hooks.url}/other", signature_schemes=["v1a"])
    with pytest.raises(WebhookVerificationError) as raised:
        Webhook(str(other["public_key"])).verify(req.body, req.headers)
    assert raised.value.code == "invalid_signature"
