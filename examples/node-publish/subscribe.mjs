// Registers a receiver: an endpoint for the URL given, subscribed to orders.#, and
// prints the secret the receiver verifies with. Run once per receiver.
// Usage: GATEPULSE_API_KEY=gpk_... node subscribe.mjs http://127.0.0.1:3000/webhooks
import { GatePulse } from "gatepulse";

const url = process.argv[2];
if (!url) throw new Error("usage: node subscribe.mjs <receiver URL>");
const gp = new GatePulse();
const endpoint = await gp.endpoints.create({ url, description: "example receiver" });
await gp.subscriptions.create({ endpoint_id: endpoint.id, topics: ["orders.#"] });
console.log(`# endpoint ${endpoint.id} -> ${url}, subscribed to orders.#`);
console.log(`GATEPULSE_WEBHOOK_SECRET=${await gp.endpoints.revealSecret(endpoint.id)}`);
