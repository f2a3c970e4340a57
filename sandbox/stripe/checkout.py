"""Checkout Sessions, and the payments made on the hosted page (PaymentIntent + Charge).

API handlers take `(store, params, ids, request)` and return the response object; the caller
holds `store.lock`. `request` is {"id": req_…, "idempotency_key": …} (or None outside the API)
and is copied into the events an operation emits.
"""
from __future__ import annotations

import copy

from .store import Store
from .wire import (MINIMUM_AMOUNT, StripeError, as_dict, as_list, check_params,
                          created_filter, expand_paths, format_amount, metadata, new_id, paginate,
                          require, to_int, to_str)

SESSION_PARAMS = frozenset({
    "mode", "line_items", "metadata", "client_reference_id", "customer_email", "success_url",
    "cancel_url", "expires_at", "payment_intent_data", "payment_method_types", "expand", "locale",
    "submit_type", "customer", "customer_creation", "billing_address_collection",
    "phone_number_collection", "allow_promotion_codes", "ui_mode", "custom_text",
    "consent_collection", "invoice_creation", "automatic_tax", "tax_id_collection",
    "payment_method_options", "shipping_address_collection", "custom_fields", "after_expiration",
    "currency", "discounts", "payment_method_collection", "saved_payment_method_options"})
PI_DATA_PARAMS = frozenset({
    "metadata", "description", "receipt_email", "statement_descriptor",
    "statement_descriptor_suffix", "transfer_data", "application_fee_amount", "on_behalf_of",
    "transfer_group", "capture_method", "setup_future_usage", "shipping"})
LINE_ITEM_PARAMS = frozenset({"price_data", "quantity", "price", "adjustable_quantity", "tax_rates",
                              "dynamic_tax_rates"})
PRICE_DATA_PARAMS = frozenset({"currency", "unit_amount", "unit_amount_decimal", "product_data",
                               "product", "tax_behavior"})
PRODUCT_DATA_PARAMS = frozenset({"name", "description", "images", "metadata", "tax_code"})
LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "expand", "created"})
MIN_EXPIRY, MAX_EXPIRY = 30 * 60, 24 * 60 * 60


def _url(value, param: str) -> str:
    url = to_str(value, param, max_length=5000)
    if not url.startswith(("http://", "https://")):
        raise StripeError("Not a valid URL", param=param, code="url_invalid")
    return url


def _line_items(store: Store, raw) -> tuple[list[dict], list[dict]]:
    items, products = [], []
    for index, item in enumerate(as_list(raw, "line_items")):
        prefix = f"line_items[{index}]"
        item = as_dict(item, prefix)
        check_params(item, LINE_ITEM_PARAMS, prefix)
        if "price" in item:
            raise StripeError(f"No such price: '{item['price']}'", param=f"{prefix}[price]",
                              code="resource_missing")
        price_data = as_dict(require(item, "price_data", f"{prefix}[price_data]"),
                             f"{prefix}[price_data]")
        check_params(price_data, PRICE_DATA_PARAMS, f"{prefix}[price_data]")
        currency = to_str(require(price_data, "currency", f"{prefix}[price_data][currency]"),
                          f"{prefix}[price_data][currency]").lower()
        if len(currency) != 3 or not currency.isalpha():
            raise StripeError(f"Invalid currency: {currency}", param=f"{prefix}[price_data][currency]")
        unit_amount = to_int(require(price_data, "unit_amount", f"{prefix}[price_data][unit_amount]"),
                             f"{prefix}[price_data][unit_amount]", minimum=0)
        product = as_dict(require(price_data, "product_data", f"{prefix}[price_data][product_data]"),
                          f"{prefix}[price_data][product_data]")
        check_params(product, PRODUCT_DATA_PARAMS, f"{prefix}[price_data][product_data]")
        name = to_str(require(product, "name", f"{prefix}[price_data][product_data][name]"),
                      f"{prefix}[price_data][product_data][name]", max_length=250)
        description = product.get("description") or None
        quantity = to_int(require(item, "quantity", f"{prefix}[quantity]"), f"{prefix}[quantity]",
                          minimum=1)
        subtotal = unit_amount * quantity
        items.append({
            "id": new_id("li_"), "object": "item", "amount_discount": 0,
            "amount_subtotal": subtotal, "amount_tax": 0, "amount_total": subtotal,
            "currency": currency, "description": name, "quantity": quantity,
            "price": {"id": new_id("price_"), "object": "price", "active": False,
                      "billing_scheme": "per_unit", "created": store.now(), "currency": currency,
                      "livemode": False, "lookup_key": None, "metadata": {}, "nickname": None,
                      "product": new_id("prod_"), "recurring": None,
                      "tax_behavior": "unspecified", "type": "one_time",
                      "unit_amount": unit_amount, "unit_amount_decimal": str(unit_amount)},
        })
        products.append({"name": name, "description": description, "quantity": quantity,
                         "unit_amount": unit_amount, "amount": subtotal})
    if not items:
        raise StripeError("Missing required param: line_items.", param="line_items",
                          code="parameter_missing")
    currencies = {item["currency"] for item in items}
    if len(currencies) > 1:
        raise StripeError("All line items must use the same currency.", param="line_items")
    return items, products


def _payment_intent_data(raw) -> dict:
    data = as_dict(raw, "payment_intent_data")
    check_params(data, PI_DATA_PARAMS, "payment_intent_data")
    if data.get("capture_method", "automatic") not in ("automatic", "automatic_async"):
        raise StripeError("The sandbox stand-in supports only capture_method=automatic.",
                          param="payment_intent_data[capture_method]")
    result = {"metadata": metadata(data.get("metadata"), "payment_intent_data[metadata]")}
    for key in ("description", "receipt_email", "statement_descriptor",
                "statement_descriptor_suffix", "on_behalf_of", "transfer_group"):
        result[key] = data.get(key) or None
    fee = data.get("application_fee_amount")
    result["application_fee_amount"] = (
        to_int(fee, "payment_intent_data[application_fee_amount]", minimum=0) if fee else None)
    transfer = as_dict(data.get("transfer_data"), "payment_intent_data[transfer_data]")
    if transfer:
        check_params(transfer, {"destination", "amount"}, "payment_intent_data[transfer_data]")
        destination = require(transfer, "destination", "payment_intent_data[transfer_data][destination]")
        result["transfer_data"] = {"destination": destination}
        if "amount" in transfer:
            result["transfer_data"]["amount"] = to_int(
                transfer["amount"], "payment_intent_data[transfer_data][amount]", minimum=0)
    else:
        result["transfer_data"] = None
    return result


def create_session(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, SESSION_PARAMS)
    mode = require(params, "mode")
    if mode != "payment":
        raise StripeError(f"The sandbox stand-in supports only mode=payment (got {mode}).",
                          param="mode")
    if params.get("ui_mode", "hosted") != "hosted":
        raise StripeError("The sandbox stand-in supports only ui_mode=hosted.", param="ui_mode")
    items, products = _line_items(store, params.get("line_items"))
    currency = items[0]["currency"]
    total = sum(item["amount_total"] for item in items)
    minimum = MINIMUM_AMOUNT.get(currency)
    if minimum is not None and total < minimum:
        raise StripeError("The Checkout Session's total amount due must add up to at least "
                          f"{format_amount(minimum, currency)} {currency}", param="line_items")
    now = store.now()
    if "expires_at" in params:
        expires_at = to_int(params["expires_at"], "expires_at")
        if expires_at - now < MIN_EXPIRY:
            raise StripeError("The `expires_at` timestamp must be at least 30 minutes from "
                              "Checkout Session creation.", param="expires_at")
        if expires_at - now > MAX_EXPIRY:
            raise StripeError("The `expires_at` timestamp must be less than 24 hours from "
                              "Checkout Session creation.", param="expires_at")
    else:
        expires_at = now + MAX_EXPIRY
    email = params.get("customer_email") or None
    if email is not None and "@" not in to_str(email, "customer_email"):
        raise StripeError(f"Invalid email address: {email}", param="customer_email",
                          code="email_invalid")
    reference = params.get("client_reference_id") or None
    if reference is not None:
        to_str(reference, "client_reference_id", max_length=200)
    success_url = _url(params["success_url"], "success_url") if params.get("success_url") else None
    cancel_url = _url(params["cancel_url"], "cancel_url") if params.get("cancel_url") else None
    pi_data = _payment_intent_data(params.get("payment_intent_data"))
    methods = [to_str(m, "payment_method_types") for m in
               as_list(params.get("payment_method_types"), "payment_method_types")] or ["card"]
    session_id = new_id("cs_test_", 58)
    session = {
        "id": session_id, "object": "checkout.session", "after_expiration": None,
        "allow_promotion_codes": None, "amount_subtotal": total, "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None, "cancel_url": cancel_url,
        "client_reference_id": reference, "client_secret": None, "consent": None,
        "created": now, "currency": currency, "custom_fields": [], "customer": None,
        "customer_creation": "if_required", "customer_details": None, "customer_email": email,
        "expires_at": expires_at, "invoice": None, "livemode": False, "locale": None,
        "metadata": metadata(params.get("metadata")), "mode": "payment",
        "payment_intent": None, "payment_link": None, "payment_method_collection": "if_required",
        "payment_method_types": methods, "payment_status": "unpaid", "recovered_from": None,
        "setup_intent": None, "shipping_address_collection": None, "status": "open",
        "submit_type": None, "subscription": None, "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted", "url": f"{store.public_url}/pay/{session_id}",
    }
    store.sessions[session_id] = session
    store.session_extra[session_id] = {"line_items": items, "products": products,
                                       "payment_intent_data": pi_data}
    return store.expand(session, expand_paths(params))


def retrieve_session(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, {"expand"})
    return store.expand(store.get("cs_", ids["id"]), expand_paths(params))


def list_sessions(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, LIST_PARAMS | {"payment_intent", "status", "customer_details",
                                        "customer", "payment_link", "subscription"})
    created = created_filter(params.get("created"))
    email = as_dict(params.get("customer_details"), "customer_details").get("email")
    status = params.get("status")
    if status is not None and status not in ("open", "complete", "expired"):
        raise StripeError(f"Invalid status: must be one of open, complete, or expired",
                          param="status")
    sessions = [s for s in reversed(list(store.sessions.values()))
                if created(s["created"])
                and (status is None or s["status"] == status)
                and ("payment_intent" not in params or s["payment_intent"] == params["payment_intent"])
                and (email is None or (s["customer_details"] or {}).get("email") == email)
                and ("customer" not in params or s["customer"] == params["customer"])]
    page = paginate(sessions, params, "/v1/checkout/sessions", "checkout.session")
    return store.expand(page, expand_paths(params))


def list_line_items(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, LIST_PARAMS - {"created"})
    store.get("cs_", ids["id"])
    items = store.session_extra[ids["id"]]["line_items"]
    page = paginate(items, params, f"/v1/checkout/sessions/{ids['id']}/line_items", "item")
    return store.expand(page, expand_paths(params))


def expire_session(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, {"expand"})
    session = store.get("cs_", ids["id"])
    if session["status"] != "open":
        raise StripeError('Only Checkout Sessions with a status in ["open"] can be expired. This '
                          f'Checkout Session has a status of "{session["status"]}".')
    store.expire_session(session, request=request)
    return store.expand(session, expand_paths(params))


def retrieve_payment_intent(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, {"expand", "client_secret"})
    return store.expand(store.get("pi_", ids["id"]), expand_paths(params))


def retrieve_charge(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, {"expand"})
    return store.expand(store.get("ch_", ids["id"]), expand_paths(params))


# ---------------------------------------------------------------------------- paying

def _require_open(session: dict) -> None:
    if session["status"] != "open":
        raise StripeError(f"This Checkout Session is {session['status']}; it cannot be paid.",
                          code="checkout_session_not_open")


def pay_session(store: Store, session_id: str, *, method: str = "card",
                email: str | None = None) -> dict:
    """What Stripe does when the customer pays: card settles now, bank transfer later."""
    if method not in ("card", "bank_transfer"):
        raise StripeError("method must be card or bank_transfer", param="method")
    session = store.get("cs_", session_id)
    _require_open(session)
    pi_data = store.session_extra[session_id]["payment_intent_data"]
    email = email or session["customer_email"] or "customer@example.com"
    card, now, amount = method == "card", store.now(), session["amount_total"]
    pi_id, charge_id, pm_id = new_id("pi_"), new_id("ch_"), new_id("pm_")
    shared = {
        "amount": amount, "application_fee_amount": pi_data["application_fee_amount"],
        "created": now, "currency": session["currency"], "customer": None,
        "description": pi_data["description"], "livemode": False,
        "metadata": copy.deepcopy(pi_data["metadata"]), "on_behalf_of": pi_data["on_behalf_of"],
        "payment_method": pm_id, "receipt_email": pi_data["receipt_email"],
        "transfer_data": copy.deepcopy(pi_data["transfer_data"]),
        "transfer_group": pi_data["transfer_group"],
    }
    details = ({"type": "card", "card": {"brand": "visa", "last4": "4242", "exp_month": 12,
                                         "exp_year": 2034, "funding": "credit", "country": "US"}}
               if card else
               {"type": "us_bank_account",
                "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789",
                                    "account_type": "checking", "routing_number": "110000000"}})
    store.charges[charge_id] = {
        "id": charge_id, "object": "charge", **shared,
        "amount_captured": amount if card else 0, "amount_refunded": 0,
        "balance_transaction": new_id("txn_") if card else None,
        "billing_details": {"address": None, "email": email, "name": None, "phone": None},
        "captured": True, "disputed": False, "failure_code": None, "failure_message": None,
        "outcome": {"network_status": "approved_by_network", "reason": None,
                    "risk_level": "normal", "seller_message": "Payment complete.",
                    "type": "authorized"},
        "paid": card, "payment_intent": pi_id, "payment_method_details": details,
        "receipt_url": None, "refunded": False, "status": "succeeded" if card else "pending",
    }
    store.payment_intents[pi_id] = {
        "id": pi_id, "object": "payment_intent", **shared,
        "amount_capturable": 0, "amount_received": amount if card else 0,
        "capture_method": "automatic", "client_secret": f"{pi_id}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic", "last_payment_error": None,
        "latest_charge": charge_id, "payment_method_types": [details["type"]],
        "statement_descriptor": pi_data["statement_descriptor"],
        "statement_descriptor_suffix": pi_data["statement_descriptor_suffix"],
        "status": "succeeded" if card else "processing",
    }
    session.update({
        "status": "complete", "payment_status": "paid" if card else "unpaid",
        "payment_intent": pi_id, "url": None,
        "customer_details": {"address": None, "email": email, "name": None, "phone": None,
                             "tax_exempt": "none", "tax_ids": []},
    })
    store.emit("checkout.session.completed", session)
    return session


def settle_bank_transfer(store: Store, session_id: str, *, succeeded: bool) -> dict:
    """The delayed outcome of a bank payment: async_payment_succeeded or _failed."""
    session = store.get("cs_", session_id)
    intent = store.payment_intents.get(session["payment_intent"] or "")
    if intent is None or intent["status"] != "processing":
        raise StripeError("No bank transfer is waiting to settle for this Checkout Session.",
                          code="no_pending_bank_transfer")
    charge = store.charges[intent["latest_charge"]]
    if succeeded:
        intent.update(status="succeeded", amount_received=intent["amount"])
        charge.update(status="succeeded", paid=True, amount_captured=charge["amount"],
                      balance_transaction=new_id("txn_"))
        session["payment_status"] = "paid"
        store.emit("checkout.session.async_payment_succeeded", session)
    else:
        message = "The customer's account has insufficient funds to cover this payment."
        intent.update(status="requires_payment_method", last_payment_error={
            "code": "insufficient_funds", "message": message, "type": "invalid_request_error"})
        charge.update(status="failed", failure_code="insufficient_funds", failure_message=message,
                      outcome={**charge["outcome"], "seller_message": "Payment failed.",
                               "type": "issuer_declined"})
        store.emit("checkout.session.async_payment_failed", session)
    return session


def expire_now(store: Store, session_id: str) -> dict:
    session = store.get("cs_", session_id)
    if session["status"] != "open":
        raise StripeError(f"This Checkout Session is {session['status']}; it cannot expire.",
                          code="checkout_session_not_open")
    store.expire_session(session)
    return session
