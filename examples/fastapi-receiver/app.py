"""Receives GatePulse deliveries with FastAPI and verifies their signatures.

The signature covers the raw body: read it with ``await request.body()``, not a
pydantic model or ``request.json()``.
"""

import os

from fastapi import FastAPI, Request, Response

from gatepulse import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["GATEPULSE_WEBHOOK_SECRET"])
app = FastAPI()


@app.post("/webhooks")
async def receive(request: Request) -> Response:
    try:
        payload = webhook.verify(await request.body(), request.headers)
    except WebhookVerificationError as err:
        print(f"rejected: {err}", flush=True)
        return Response(str(err), status_code=400)
    print(f"verified {request.headers['webhook-id']} {request.headers['gatepulse-topic']} {payload}", flush=True)
    return Response(status_code=204)
