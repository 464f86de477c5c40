"""The shared vectors of sdk/conformance, through this SDK and the official library."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
import standardwebhooks.webhooks

from conftest import CONFORMANCE
from gatepulse import RetryPolicy, Webhook, WebhookVerificationError, topic_matches
from gatepulse._retry import ErrorOutcome, StatusOutcome, retry_delay


def load(name: str) -> Any:
    return json.loads((CONFORMANCE / name).read_text(encoding="utf-8"))


SIGNATURES = load("webhook-signatures.json")["cases"]
V1A = load("webhook-signatures-v1a.json")["cases"]
RETRIES = load("retry-verdicts.json")
TOPICS = load("topic-patterns.json")["cases"]


def frozen_clock(seconds: int) -> type[datetime]:
    """A datetime whose now() is ``seconds`` (the official library reads the clock itself)."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls.fromtimestamp(seconds, tz=timezone.utc)

    return Frozen


@pytest.mark.parametrize("case", SIGNATURES, ids=lambda c: c["name"])
def test_signature_vector(case: dict[str, Any]) -> None:
    wh = Webhook(case["secret"])
    if case["expect"] == "valid":
        assert wh.verify(case["body"], case["headers"], now=case["now"]) == json.loads(case["body"])
    else:
        with pytest.raises(WebhookVerificationError) as raised:
            wh.verify(case["body"], case["headers"], now=case["now"])
        assert raised.value.code == case["error"]


@pytest.mark.parametrize("case", SIGNATURES, ids=lambda c: c["name"])
def test_official_library_agrees(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", frozen_clock(case["now"]))
    official = standardwebhooks.Webhook(case["secret"])
    if case["expect"] == "valid":
        assert official.verify(case["body"], case["headers"]) == json.loads(case["body"])
    else:
        with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal counts
            official.verify(case["body"], case["headers"])


@pytest.mark.parametrize("case", [c for c in SIGNATURES if c["signing"]], ids=lambda c: c["name"])
def test_signing_reproduces_the_header(case: dict[str, Any]) -> None:
    s = case["signing"]
    assert Webhook(s["secrets"]).sign(s["id"], s["timestamp"], s["body"]) == case["headers"]["webhook-signature"]
    when = datetime.fromtimestamp(s["timestamp"], tz=timezone.utc)
    official = [standardwebhooks.Webhook(secret).sign(s["id"], when, s["body"]) for secret in s["secrets"]]
    assert " ".join(official) == case["headers"]["webhook-signature"]


@pytest.mark.parametrize("case", V1A, ids=lambda c: c["name"])
def test_v1a_signature_vector(case: dict[str, Any]) -> None:
    wh = Webhook(case["receiver"])
    if case["expect"] == "valid":
        assert wh.verify(case["body"], case["headers"], now=case["now"]) == json.loads(case["body"])
    else:
        with pytest.raises(WebhookVerificationError) as raised:
            wh.verify(case["body"], case["headers"], now=case["now"])
        assert raised.value.code == case["error"]


def test_a_public_key_cannot_sign_and_a_malformed_one_is_refused() -> None:
    with pytest.raises(TypeError):
        Webhook(V1A[0]["receiver"][0]).sign("msg_1", 1, "{}")
    for bad in ("whpk_c2hvcnQ=", "whpk_not base64!"):
        with pytest.raises(TypeError):
            Webhook(bad)


def test_retry_policy_is_the_one_in_the_vectors() -> None:
    policy, expected = RetryPolicy(), RETRIES["policy"]
    assert policy.initial_delay * 1000 == expected["initial_delay_ms"]
    assert policy.max_delay * 1000 == expected["max_delay_ms"]
    assert policy.jitter == expected["jitter"]
    assert policy.max_retry_after * 1000 == expected["max_retry_after_ms"]
    assert policy.max_retries == expected["default_max_retries"]


@pytest.mark.parametrize("case", RETRIES["cases"], ids=lambda c: c["name"])
def test_retry_verdict(case: dict[str, Any]) -> None:
    o = case["outcome"]
    outcome = ErrorOutcome(o["error"]) if "error" in o else StatusOutcome(o["status"], o.get("retry_after"))
    now = datetime.fromisoformat(o["now"].replace("Z", "+00:00")).timestamp() if "now" in o else None
    for draw in (0.0, 0.5, 1.0):
        delay = retry_delay(RetryPolicy(max_retries=case["max_retries"]), case["attempt"], outcome, now, draw)
        if not case["expect"]["retry"]:
            assert delay is None
        else:
            assert delay is not None
            low, high = case["expect"]["min_delay_ms"], case["expect"]["max_delay_ms"]
            assert low <= round(delay * 1000) <= high, (delay, draw)


@pytest.mark.parametrize("case", TOPICS, ids=lambda c: f"{c['pattern']}~{c['topic']}")
def test_topic_pattern(case: dict[str, Any]) -> None:
    assert topic_matches(case["pattern"], case["topic"]) is case["matches"]


@pytest.mark.parametrize(
    "script",
    [CONFORMANCE / "generate.py", Path(__file__).resolve().parents[1] / "scripts" / "unasync.py"],
    ids=["signature vectors", "unasync"],
)
def test_generated_files_are_up_to_date(script: Path) -> None:
    subprocess.run([sys.executable, str(script), "--check"], check=True)
