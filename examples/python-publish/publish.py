"""Publishes one event with the GatePulse SDK.

GATEPULSE_API_KEY (printed by `gp serve --dev`) and GATEPULSE_URL (default
http://127.0.0.1:8080) come from the environment.
"""

from gatepulse import GatePulse

with GatePulse() as gp:
    event = gp.events.publish("orders.created", {"id": 1001, "amount": 250, "currency": "EUR"})
    print(f"published {event['id']} at cursor {event['cursor']}" + (" (deduped)" if event["deduped"] else ""))
