"""Receives GatePulse deliveries with Flask and verifies their signatures.

The signature covers the raw body: read it with ``request.get_data()``, not
``request.json``.
"""

import os

from flask import Flask, request

from gatepulse import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["GATEPULSE_WEBHOOK_SECRET"])
app = Flask(__name__)


@app.post("/webhooks")
def receive() -> tuple[str, int]:
    try:
        payload = webhook.verify(request.get_data(), request.headers)
    except WebhookVerificationError as err:
        print(f"rejected: {err}", flush=True)
        return str(err), 400
    print(f"verified {request.headers['webhook-id']} {request.headers['gatepulse-topic']} {payload}", flush=True)
    return "", 204
