// Receives GatePulse deliveries in a Next.js route handler and verifies their signatures.
// The signature covers the raw body: read it with request.text(), never request.json().
import { Webhook, WebhookVerificationError } from "gatepulse";

const webhook = new Webhook(process.env.GATEPULSE_WEBHOOK_SECRET ?? "");

export async function POST(request: Request): Promise<Response> {
  const body = await request.text();
  try {
    const payload = await webhook.verify(body, request.headers);
    const id = request.headers.get("webhook-id");
    const topic = request.headers.get("gatepulse-topic");
    console.log(`verified ${id} ${topic} ${JSON.stringify(payload)}`);
    return new Response(null, { status: 204 });
  } catch (err) {
    if (!(err instanceof WebhookVerificationError)) throw err;
    console.log(`rejected: ${err.message}`);
    return new Response(err.message, { status: 400 });
  }
}
