"""Running the dashboard's actions: confirmation first where money or a booking is at stake,
then one admin action (`core.services.admin_actions`, the same functions the admin API calls) in
its own transaction, then the outcome shown on the next run.

Confirmation uses a pending action in `st.session_state`: the button that asks stores it, every
run opens the dialog while it is set, and the dialog's Confirm pops it and performs it.

A form whose action was done is emptied on the next run (before its widgets are drawn, the only
time Streamlit lets a widget's value be changed), so a reason typed for one refund is not offered
for the next.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core.auth import Viewer
from core.db import get_engine, session_scope
from core.errors import DomainError
from core.money import format_amount
from core.services import admin_actions as service
from core.states import IllegalTransition
from dashboard.lib import data
from dashboard.lib.fmt import md

OUTCOME_KEY = "action_outcome"
PENDING_KEY = "pending_action"
CLEAR_KEY = "forms_to_clear"
# The inputs of the booking's action forms (components.booking_actions); the refund amount is
# refilled with the policy's suggestion once it is cleared.
FORM_KEYS = ("refund_amount", "refund_reason", "cancel_reason", "refund_prefill_for")


def clear_done_forms() -> None:
    """Empty the forms of the action done on the last run (call before drawing any widget)."""
    if st.session_state.pop(CLEAR_KEY, False):
        for key in FORM_KEYS:
            st.session_state.pop(key, None)


def show_outcome() -> None:
    clear_done_forms()
    outcome = st.session_state.pop(OUTCOME_KEY, None)
    if outcome is None:
        return
    kind, message = outcome
    (st.success if kind == "success" else st.error)(message)


def _report(kind: str, message: str) -> None:
    st.session_state[OUTCOME_KEY] = (kind, message)


def _run(viewer: Viewer, call: Callable[..., Any], describe: Callable[[Any], str], *args, **kwargs) -> bool:
    """One service call in one transaction; the outcome (or the refusal's reason) is reported."""
    try:
        with session_scope() as session:
            result = call(session, viewer, *args, **kwargs)
    except (DomainError, IllegalTransition) as error:
        _report("error", f"Not done: {error}")  # the services' own wording
        return False
    data.clear()
    _report("success", describe(result))
    st.session_state[CLEAR_KEY] = True
    return True


# ---------------------------------------------------------------- the actions
def refund(viewer: Viewer, booking_id: str, amount_cents: int, currency: str, reason: str) -> bool:
    return _run(viewer, service.refund,
                lambda amount: f"Refund of {format_amount(amount, currency)} requested; it is being "
                               "sent to Stripe.",
                booking_id, amount_cents, reason=reason)


PAID, UNPAID, ON_ITS_WAY = "paid", "unpaid", "on_its_way"


def cancel(viewer: Viewer, booking_id: str, currency: str, reason: str, money: str = PAID) -> bool:
    """`money`: whether the booking was paid, not paid, or paid by a bank transfer still on its way;
    an unpaid booking's cancellation does not speak of a refund policy."""
    def describe(refund_cents: int) -> str:
        if refund_cents:
            refund_text = f"a refund of {format_amount(refund_cents, currency)} is being sent to Stripe"
        elif money == ON_ITS_WAY:
            refund_text = "the bank transfer on its way is refunded in full when it arrives"
        elif money == UNPAID:
            refund_text = "the slot is free again (nothing was paid)"
        else:
            refund_text = "no refund is due under the cancellation policy"
        return f"Booking canceled: the Calendly event is being canceled and {refund_text}."
    return _run(viewer, service.cancel, describe, booking_id, reason=reason)


def resend_payment_link(viewer: Viewer, booking_id: str) -> bool:
    return _run(viewer, service.resend_payment_link, lambda email: f"Payment link sent again to {md(email)}.",
                booking_id)


def retry_outbox(viewer: Viewer, entry_id: int) -> bool:
    return _run(viewer, service.retry_outbox,
                lambda kind: f"Outbox entry #{entry_id} ({kind}) is due again; the worker runs it shortly.",
                entry_id)


def reprocess_webhook(viewer: Viewer, event_id: int) -> bool:
    try:
        result = service.reprocess_webhook(get_engine(), viewer, event_id)
    except DomainError as error:
        _report("error", f"Not done: {md(error)}")
        return False
    data.clear()
    if result.ok:
        _report("success", f"Webhook event #{event_id} reprocessed: {result.outcome}"
                           + (f" ({md(result.detail)})" if result.detail else "") + ".")
    else:
        _report("error", f"Webhook event #{event_id} was not processed: {result.outcome} — {md(result.detail)}")
    return result.ok


def update_price(viewer: Viewer, session_type_id: int, amount_cents: int, currency: str, active: bool) -> bool:
    return _run(viewer, service.update_price,
                lambda st_: f"{md(st_.name or 'Session type')} now costs "
                            f"{format_amount(st_.price_cents, st_.currency)}"
                            f"{'' if st_.active else ' (not bookable)'}.",
                session_type_id, amount_cents, currency, active=active)


# ---------------------------------------------------------------- confirmation
def ask_to_confirm(kind: str, question: str, **params: Any) -> None:
    """Remember an action to confirm; `confirm_pending()` on the same page shows the dialog."""
    st.session_state[PENDING_KEY] = {"kind": kind, "question": question, "params": params}


def pending() -> dict | None:
    return st.session_state.get(PENDING_KEY)


def _forget_pending() -> None:
    st.session_state.pop(PENDING_KEY, None)


_CONFIRMABLE: dict[str, Callable[..., bool]] = {"refund": refund, "cancel": cancel}


@st.dialog("Please confirm", on_dismiss=_forget_pending)
def _confirm_dialog(viewer: Viewer) -> None:
    action = pending()
    if action is None:
        return
    st.markdown(action["question"])
    confirm, back = st.columns(2)
    if confirm.button("Confirm", key="confirm_action", type="primary"):
        _forget_pending()
        _CONFIRMABLE[action["kind"]](viewer, **action["params"])
        st.rerun()
    if back.button("Cancel", key="cancel_action"):
        _forget_pending()
        st.rerun()


def confirm_pending(viewer: Viewer) -> None:
    """Open the confirmation dialog while an action waits for it."""
    if pending() is not None:
        _confirm_dialog(viewer)
