from standardwebhooks.webhooks import Webhook


def verify(body: bytes, headers: dict, secret: str) -> dict:
    """The event of a request from Portside; raises WebhookVerificationError otherwise.
    `body` is the raw body as received (not parsed and dumped again), `secret` the endpoint's
    whsec_… secret."""
    return Webhook(secret).verify(body, headers)
