// Publishes one event with the GatePulse SDK.
// GATEPULSE_API_KEY (printed by `gp serve --dev`) and GATEPULSE_URL (default http://127.0.0.1:8080).
import { GatePulse } from "gatepulse";

const gp = new GatePulse();
const event = await gp.events.publish({
  topic: "orders.created",
  payload: { id: 1001, amount: 250, currency: "EUR" },
});
console.log(`published ${event.id} at cursor ${event.cursor}${event.deduped ? " (deduped)" : ""}`);
