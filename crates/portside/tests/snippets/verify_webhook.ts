import { Webhook } from "standardwebhooks";

type PortsideEvent = { type: string; timestamp: string; data: unknown };

// The event of a request from Portside; throws WebhookVerificationError otherwise. `body` is
// the raw body as received (not parsed and stringified again), `secret` the whsec_… secret.
export function verify(body: string, headers: Record<string, string>, secret: string): PortsideEvent {
  return new Webhook(secret).verify(body, headers) as PortsideEvent;
}
