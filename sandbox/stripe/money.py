"""Refunds and disputes on the stand-in's charges.

A refund counts against the charge's `amount_refunded` from the moment it is created (also while
pending, as at Stripe); a failed refund gives the amount back. Creating one emits
`charge.refunded` with the charge; settling a pending one emits `refund.updated` or
`refund.failed`. Handlers take `(store, params, ids, request)`; the caller holds `store.lock`.
"""
from __future__ import annotations

from .store import Store
from .wire import (StripeError, check_params, created_filter, expand_paths, format_amount,
                          metadata, new_id, paginate, to_int, to_str)

REFUND_PARAMS = frozenset({"payment_intent", "charge", "amount", "reason", "metadata", "expand",
                           "reverse_transfer", "refund_application_fee", "instructions_email",
                           "origin"})
REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _charge_for(store: Store, params: dict) -> dict:
    pi_id, charge_id = params.get("payment_intent"), params.get("charge")
    if not pi_id and not charge_id:
        raise StripeError("One of the following params should be provided for this request: "
                          "payment_intent or charge.", param="payment_intent")
    if pi_id:
        intent = store.get("pi_", pi_id, param="payment_intent", status=400)
        charge = store.charges.get(intent["latest_charge"] or "")
        if charge is None or charge["status"] != "succeeded":
            raise StripeError(f"This PaymentIntent ({pi_id}) does not have a successful charge "
                              "to refund.", param="payment_intent", code="charge_not_refundable")
        if charge_id and charge_id != charge["id"]:
            raise StripeError(f"The charge {charge_id} does not belong to PaymentIntent {pi_id}.",
                              param="charge")
        return charge
    charge = store.get("ch_", charge_id, param="charge", status=400)
    if charge["status"] != "succeeded":
        raise StripeError(f"Charge {charge_id} has not succeeded and cannot be refunded.",
                          param="charge", code="charge_not_refundable")
    return charge


def _refund(store: Store, charge: dict, *, amount: int | None, reason: str | None,
            meta: dict, request: dict | None) -> dict:
    """Check the amount against the charge, create the refund, emit charge.refunded."""
    if charge["disputed"]:
        raise StripeError(f"Charge {charge['id']} has been charged back; cannot issue a refund.",
                          code="charge_disputed")
    remainder = charge["amount"] - charge["amount_refunded"]
    if remainder <= 0:
        raise StripeError(f"Charge {charge['id']} has already been refunded.",
                          code="charge_already_refunded")
    if amount is None:
        amount = remainder
    elif amount > remainder:
        currency = charge["currency"]
        raise StripeError(f"Refund amount ({format_amount(amount, currency)}) is greater than "
                          f"unrefunded amount on charge ({format_amount(remainder, currency)})",
                          param="amount", code="amount_too_large")
    status = store.config["refund_status"]
    refund_id = new_id("re_")
    refund = {
        "id": refund_id, "object": "refund", "amount": amount,
        "balance_transaction": new_id("txn_") if status == "succeeded" else None,
        "charge": charge["id"], "created": store.now(), "currency": charge["currency"],
        "destination_details": {"type": "card", "card": {"reference_status": "pending",
                                                         "reference_type": "acquirer_reference_number",
                                                         "type": "refund"}},
        "failure_reason": None, "livemode": False, "metadata": meta,
        "payment_intent": charge["payment_intent"],
        "reason": reason, "receipt_number": None, "source_transfer_reversal": None,
        "status": status, "transfer_reversal": None,
    }
    store.refunds[refund_id] = refund
    previous = {"amount_refunded": charge["amount_refunded"]}
    charge["amount_refunded"] += amount
    if charge["amount_refunded"] >= charge["amount"]:
        previous["refunded"] = charge["refunded"]
        charge["refunded"] = True
    store.emit("charge.refunded", charge, previous=previous, request=request)
    return refund


def create_refund(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, REFUND_PARAMS)
    charge = _charge_for(store, params)
    amount = to_int(params["amount"], "amount", minimum=1) if params.get("amount") else None
    reason = params.get("reason") or None
    if reason is not None and reason not in REASONS:
        raise StripeError("Invalid reason: must be one of duplicate, fraudulent, or "
                          "requested_by_customer", param="reason")
    refund = _refund(store, charge, amount=amount, reason=reason,
                     meta=metadata(params.get("metadata")), request=request)
    return store.expand(refund, expand_paths(params))


def retrieve_refund(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, {"expand"})
    return store.expand(store.get("re_", ids["id"]), expand_paths(params))


def list_refunds(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, {"charge", "payment_intent", "created", "limit", "starting_after",
                          "ending_before", "expand"})
    created = created_filter(params.get("created"))
    refunds = [r for r in reversed(list(store.refunds.values()))
               if created(r["created"])
               and ("charge" not in params or r["charge"] == params["charge"])
               and ("payment_intent" not in params or r["payment_intent"] == params["payment_intent"])]
    return store.expand(paginate(refunds, params, "/v1/refunds", "refund"), expand_paths(params))


def retrieve_dispute(store: Store, params: dict, ids: dict, request: dict | None) -> dict:
    check_params(params, {"expand"})
    return store.expand(store.get("dp_", ids["id"]), expand_paths(params))


# ---------------------------------------------------------------------------- sandbox actions

def _charge_of_intent(store: Store, payment_intent_id: str) -> dict:
    intent = store.get("pi_", payment_intent_id)
    charge = store.charges.get(intent["latest_charge"] or "")
    if charge is None or charge["status"] != "succeeded":
        raise StripeError(f"PaymentIntent {payment_intent_id} has no successful charge.",
                          code="charge_not_refundable")
    return charge


def dashboard_refund(store: Store, payment_intent_id: str, body: dict) -> dict:
    """A refund made "in the Stripe dashboard": no API request, same charge.refunded event."""
    charge = _charge_of_intent(store, payment_intent_id)
    amount = to_int(body["amount"], "amount", minimum=1) if body.get("amount") is not None else None
    reason = body.get("reason") or "requested_by_customer"
    return _refund(store, charge, amount=amount, reason=reason,
                   meta=metadata(body.get("metadata")), request=None)


def settle_refund(store: Store, refund_id: str, body: dict) -> dict:
    status = body.get("status")
    if status not in ("succeeded", "failed"):
        raise StripeError("status must be succeeded or failed", param="status")
    refund = store.get("re_", refund_id)
    if refund["status"] != "pending":
        raise StripeError(f"Refund {refund_id} is {refund['status']}, not pending.",
                          code="refund_not_pending")
    previous = {"status": refund["status"]}
    refund["status"] = status
    if status == "succeeded":
        refund["balance_transaction"] = new_id("txn_")
        store.emit("refund.updated", refund, previous=previous)
    else:
        refund["failure_reason"] = to_str(body.get("failure_reason") or "declined", "failure_reason")
        refund["failure_balance_transaction"] = new_id("txn_")
        charge = store.charges[refund["charge"]]
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        store.emit("refund.failed", refund, previous=previous)
    return refund


def open_dispute(store: Store, payment_intent_id: str, body: dict) -> dict:
    charge = _charge_of_intent(store, payment_intent_id)
    if charge["disputed"]:
        raise StripeError(f"Charge {charge['id']} is already disputed.", code="charge_disputed")
    amount = (to_int(body["amount"], "amount", minimum=1, maximum=charge["amount"])
              if body.get("amount") is not None else charge["amount"] - charge["amount_refunded"])
    now = store.now()
    dispute_id = new_id("dp_")
    dispute = {
        "id": dispute_id, "object": "dispute", "amount": amount, "balance_transactions": [],
        "charge": charge["id"], "created": now, "currency": charge["currency"],
        "evidence_details": {"due_by": now + 7 * 86400, "has_evidence": False,
                             "past_due": False, "submission_count": 0},
        "is_charge_refundable": False, "livemode": False, "metadata": {},
        "payment_intent": charge["payment_intent"], "reason": body.get("reason") or "fraudulent",
        "status": "needs_response",
    }
    store.disputes[dispute_id] = dispute
    charge["disputed"] = True
    store.emit("charge.dispute.created", dispute)
    return dispute
