"""The README's walk-through through a client generated from /openapi.json with
openapi-python-client: no hand-written HTTP call. Run by check.sh (and so by .ci/run).

    python3 walk_through.py BASE_URL ADMIN_EMAIL ADMIN_PASSWORD   # portside_client importable
"""

import sys
import time
import uuid

from portside_client import AuthenticatedClient, Client
from portside_client.api.auth import login
from portside_client.api.catalog import create_product, get_product
from portside_client.api.memberships import checkout
from portside_client.api.messages import list_messages, post_message
from portside_client.api.orders import get_order, pay_order, place_order, replace_items
from portside_client.api.payments import create_payment, create_refund, get_payment, list_transactions
from portside_client.api.search import search
from portside_client.api.users import get_user, register
from portside_client.models import (
    CheckoutRequest,
    CreateOrder,
    CreatePayment,
    CreateProduct,
    CreateProductPrices,
    CreateRefund,
    Currency,
    ItemInput,
    ListMessagesSort,
    Login,
    MessageInput,
    PayOrderRequest,
    PaymentMethod,
    Register,
    ReplaceItems,
    StockInput,
)


def expect(response, status):
    assert response.status_code == status, (response.status_code, response.content)
    return response.parsed


def signed_in(base, email, password):
    tokens = expect(login.sync_detailed(client=Client(base), body=Login(email=email, password=password)), 200)
    return AuthenticatedClient(base_url=base, token=tokens.access_token)


def until(what, read, done):
    for _ in range(100):
        value = read()
        if done(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} never happened: {value}")


def main(base, admin_email, admin_password):
    email = f"ada-{uuid.uuid4().hex}@example.com"
    me = expect(
        register.sync_detailed(
            client=Client(base),
            body=Register(email=email, password="correct horse battery", name="Ada"),
        ),
        201,
    )
    api = signed_in(base, email, "correct horse battery")

    # Pay 99.99 USD with a test card, safely retryable thanks to the idempotency key.
    key = f"order-{uuid.uuid4().hex}"
    body = CreatePayment(amount=99.99, currency=Currency.USD, payment_method=PaymentMethod.CREDIT_CARD, payment_method_token="tok_visa")
    paid = expect(create_payment.sync_detailed(client=api, body=body, idempotency_key=key), 201)
    assert expect(get_payment.sync_detailed(paid.id, client=api), 200).status == "succeeded"
    partial = expect(create_refund.sync_detailed(paid.id, client=api, body=CreateRefund(amount="30.00", reason="damaged item")), 201)
    assert partial.payment.status == "partially_refunded" and partial.payment.refundable_amount == "69.99"
    rest = expect(create_refund.sync_detailed(paid.id, client=api, body=CreateRefund()), 201)
    assert rest.payment.status == "refunded"
    again = create_payment.sync_detailed(client=api, body=body, idempotency_key=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    ledger = expect(list_transactions.sync_detailed(paid.id, client=api), 200)
    assert [t.object_ for t in ledger.data] == ["charge", "refund", "refund"], ledger

    # Messages, searched with URL queries.
    expect(post_message.sync_detailed(client=api, body=MessageInput(body="Hello, Portside!")), 201)
    found = expect(list_messages.sync_detailed(client=api, q="portside", sort=ListMessagesSort.NEWEST_FIRST, limit=10), 200)
    assert len(found.data) == 1

    # The membership; the payment.succeeded event upgrades the user a moment later.
    expect(checkout.sync_detailed(client=api, body=CheckoutRequest(payment_method_token="tok_visa"), idempotency_key=f"vip-{uuid.uuid4().hex}"), 201)
    until("the upgrade", lambda: expect(get_user.sync_detailed(me.id, client=api), 200).membership, lambda m: m == "premium")

    # The catalog: an administrator creates a product; customers order it by SKU.
    admin = signed_in(base, admin_email, admin_password)
    sku = f"mug-{uuid.uuid4().hex[:12]}"
    prices = CreateProductPrices.from_dict({"EUR": "4.50", "USD": "4.90"})
    expect(create_product.sync_detailed(client=admin, body=CreateProduct(sku=sku, name="Mug", prices=prices, stock=StockInput(on_hand=100))), 201)
    refused = place_order.sync_detailed(client=api, body=CreateOrder(currency=Currency.EUR, items=[ItemInput(sku=sku, quantity=1, price="0.01")]))
    assert refused.status_code == 422 and refused.parsed.code == "price_mismatch", refused.content
    order = expect(place_order.sync_detailed(client=api, body=CreateOrder(currency=Currency.EUR, items=[ItemInput(sku=sku, quantity=2)])), 201)
    three = ReplaceItems(items=[ItemInput(sku=sku, quantity=3)])
    changed = replace_items.sync_detailed(order.id, client=api, body=three, if_match='"1"')
    assert changed.status_code == 200 and changed.headers["etag"] == '"2"' and changed.parsed.total == "13.50", changed.content
    stale = replace_items.sync_detailed(order.id, client=api, body=ReplaceItems(items=[ItemInput(sku=sku, quantity=9)]), if_match='"1"')
    assert stale.status_code == 412, stale.content
    stock = expect(get_product.sync_detailed(sku, client=admin), 200).stock
    assert (stock.reserved, stock.available) == (3, 97), stock

    # Pay the order; the payment.succeeded event confirms it.
    expect(pay_order.sync_detailed(order.id, client=api, body=PayOrderRequest(payment_method_token="tok_visa"), idempotency_key=f"order-{uuid.uuid4().hex}"), 201)
    until("the confirmation", lambda: expect(get_order.sync_detailed(order.id, client=api), 200).status, lambda s: s == "confirmed")

    # Search the read model, with facets.
    hits = until(
        "the search",
        lambda: expect(search.sync_detailed(client=api, q="mug", type_="order", status="confirmed", limit=10), 200),
        lambda r: r.total == 1,
    )
    assert hits.data[0].id == f"order:{order.id}"
    print("the walk-through passed through the generated client")


if __name__ == "__main__":
    main(*sys.argv[1:4])
