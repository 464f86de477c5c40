"""Registers a receiver: an endpoint for the URL given, subscribed to orders.#, and
prints the secret the receiver verifies with. Run once per receiver.

Usage: GATEPULSE_API_KEY=gpk_... python subscribe.py http://127.0.0.1:8000/webhooks
"""

import sys

from gatepulse import GatePulse

if len(sys.argv) != 2:
    sys.exit("usage: python subscribe.py <receiver URL>")
url = sys.argv[1]
with GatePulse() as gp:
    endpoint = gp.endpoints.create(url=url, description="example receiver")
    gp.subscriptions.create(endpoint_id=endpoint["id"], topics=["orders.#"])
    print(f"# endpoint {endpoint['id']} -> {url}, subscribed to orders.#")
    print(f"GATEPULSE_WEBHOOK_SECRET={gp.endpoints.reveal_secret(endpoint['id'])}")
