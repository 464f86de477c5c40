// Receives GatePulse deliveries with Express and verifies their signatures.
// The signature covers the raw body: express.raw() keeps it as a Buffer. Do not put
// express.json() in front of this route.
import express from "express";
import { Webhook, WebhookVerificationError } from "gatepulse";

const webhook = new Webhook(process.env.GATEPULSE_WEBHOOK_SECRET);
const app = express();

app.post("/webhooks", express.raw({ type: "application/json" }), async (req, res) => {
  try {
    const payload = await webhook.verify(req.body, req.headers);
    console.log(`verified ${req.headers["webhook-id"]} ${req.headers["gatepulse-topic"]} ${JSON.stringify(payload)}`);
    res.sendStatus(204);
  } catch (err) {
    if (!(err instanceof WebhookVerificationError)) throw err;
    console.log(`rejected: ${err.message}`);
    res.status(400).send(err.message);
  }
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}/webhooks`));
