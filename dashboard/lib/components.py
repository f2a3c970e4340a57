"""Pieces of screen used on more than one page: booking filters, a paged table whose rows open
their booking, a booking's detail, failed side effects and webhooks with their buttons."""
from __future__ import annotations

import json

import streamlit as st

from core.auth import Viewer
from core.money import Money, MoneyError, format_amount
from core.errors import DomainError
from core.reporting import BookingDetail, BookingFilters
from core.reporting.words import NET, PAID, PRICE, REFUNDABLE, REFUNDED
from core.states import BookingStatus, OutboxStatus, PaymentState
from dashboard.lib import actions, data, tables
from dashboard.lib.fmt import ON_ITS_WAY, first_line, md, payment_label, status_label, when
from dashboard.lib.tables import Table

PAGE_SIZES = (25, 50, 100, 200)
STATUS_COLORS = {"PENDING_SCHEDULING": "gray", "PENDING_PAYMENT": "orange", "CONFIRMED": "blue",
                 "COMPLETED": "green", "CANCELED": "red", "EXPIRED": "gray"}
PAYMENT_COLORS = {"unpaid": "gray", "paid": "green", "partially_refunded": "orange", "refunded": "violet",
                  "disputed": "red"}


def booking_filters(viewer: Viewer, key: str) -> BookingFilters:
    """Search and filter widgets; returns what they select."""
    search = st.text_input("Search client name or email", key=f"{key}_search",
                           placeholder="e.g. alice or @example.com")
    first, second, third = st.columns(3)
    statuses = first.multiselect("Booking status", [s.value for s in BookingStatus], key=f"{key}_status",
                                 format_func=status_label)
    payments = second.multiselect("Payment status", [p.value for p in PaymentState], key=f"{key}_payment",
                                  format_func=payment_label)
    types = dict(data.session_types(viewer))
    session_type = third.selectbox("Session type", [None, *types], key=f"{key}_type",
                                   format_func=lambda tid: "All session types" if tid is None else types[tid])
    first, second, third, fourth = st.columns(4)
    date_field = first.radio("Dates refer to", ["created", "start"], key=f"{key}_date_field", horizontal=True,
                             format_func=lambda f: "when booked" if f == "created" else "session time")
    date_from = second.date_input("From", value=None, key=f"{key}_from")
    date_to = third.date_input("To", value=None, key=f"{key}_to")
    builder_id = None
    if viewer.is_admin:
        builders = dict(data.builders(viewer))
        builder_id = fourth.selectbox("Builder", [None, *builders], key=f"{key}_builder",
                                      format_func=lambda bid: "All builders" if bid is None else builders[bid])
    return BookingFilters(statuses=tuple(statuses), payment_statuses=tuple(payments), date_from=date_from,
                          date_to=date_to, date_field=date_field, session_type_id=session_type,
                          search=search.strip(), builder_id=builder_id)


def page_size(key: str) -> int:
    """The rows-per-page choice of the table `key` (its selectbox may not be drawn yet)."""
    return st.session_state.setdefault(f"{key}_size", PAGE_SIZES[1])


def page_controls(total: int, key: str) -> tuple[int, int]:
    """Page size and page number (1-based) for `total` rows."""
    size = page_size(key)
    pages = max((total + size - 1) // size, 1)
    if st.session_state.get(f"{key}_page", 1) > pages:
        st.session_state[f"{key}_page"] = 1
    left, right = st.columns([3, 1])
    with left:
        page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=f"{key}_page")
    right.selectbox("Rows per page", PAGE_SIZES, key=f"{key}_size")
    return int(page), size


def picked_booking(selection_state, booking_ids: list[str]) -> str | None:
    """The booking of the row selected in a table (`st.dataframe`'s selection state), or None."""
    rows = ((selection_state or {}).get("selection") or {}).get("rows") or []
    if not rows or not 0 <= rows[0] < len(booking_ids):
        return None
    return booking_ids[rows[0]] or None


def clickable_table(table: Table, *, key: str, open_key: str, height: int | str = "auto") -> None:
    """`table` whose rows open their booking: a click stores the row's booking id under
    `open_key` in the session (clicking it again, which unselects it, closes it)."""
    booking_ids = table.booking_ids

    def opened() -> None:
        st.session_state[open_key] = picked_booking(st.session_state.get(key), booking_ids)

    st.dataframe(table.frame, column_config=table.columns, hide_index=True, key=key, height=height,
                 on_select=opened, selection_mode="single-row")


def plain_table(table: Table, *, key: str) -> None:
    st.dataframe(table.frame, column_config=table.columns, hide_index=True, key=key)


def bookings_list(viewer: Viewer, tz: str, key: str, *, open_key: str, empty_message: str) -> int:
    """Filters, the paged table (a click on a row opens its booking) and a CSV download; returns
    how many bookings match."""
    filters = booking_filters(viewer, key)
    total = data.bookings(viewer, filters, 1, page_size(key)).total
    if total == 0:
        any_at_all = data.bookings(viewer, BookingFilters(), 1, 1).total
        st.info(empty_message if not any_at_all else "No bookings match these filters.")
        return 0
    page, size = page_controls(total, key)
    result = data.bookings(viewer, filters, page, size)
    first = (result.page - 1) * result.page_size + 1
    st.caption(f"{first}–{first + len(result.rows) - 1} of {result.total:,} bookings · "
               "click a row to open the booking")
    clickable_table(tables.bookings_table(result.rows, tz, with_builder=viewer.is_admin), key=f"{key}_table",
                    open_key=open_key)
    st.download_button("Download these bookings (CSV)", data=lambda: data.bookings_csv(viewer, filters),
                       file_name="bookings.csv", mime="text/csv", key=f"{key}_csv")
    return total


def opened_booking(viewer: Viewer, tz: str, *, open_key: str) -> None:
    """The booking a table row opened (under `open_key`), with a button to close it."""
    booking_id = st.session_state.get(open_key)
    if not booking_id:
        return
    try:
        detail = data.detail(viewer, booking_id)
    except DomainError as error:  # gone, or not this viewer's
        st.error(md(error))
        st.session_state.pop(open_key, None)
        return
    with st.container(border=True, key=f"{open_key}_panel"):
        if st.button("Close", key=f"{open_key}_close", icon=":material/close:"):
            st.session_state.pop(open_key, None)
            st.rerun()
        booking_detail(viewer, detail, tz)


# ---------------------------------------------------------------- one booking
def money_metrics(detail: BookingDetail) -> None:
    """A booking's money in the words every page uses (each with its definition as help)."""
    cols = st.columns(5 if detail.refundable_cents else 4)
    cols[0].metric(PRICE.label, detail.money(detail.amount_cents), help=PRICE.help)
    cols[1].metric(PAID.label, detail.money(detail.paid_cents), help=PAID.help)
    cols[2].metric(REFUNDED.label, detail.money(detail.refunded_cents), help=REFUNDED.help)
    cols[3].metric(NET.label, detail.money(detail.net_cents), help=NET.help)
    if detail.refundable_cents:
        cols[4].metric(REFUNDABLE.label, detail.money(detail.refundable_cents), help=REFUNDABLE.help)


def booking_detail(viewer: Viewer, detail: BookingDetail, tz: str) -> None:
    """One booking: who and when, money, the client's answers, history; for an admin also the
    actions, Stripe and Calendly references, side effects and webhooks."""
    # Names, emails and reasons come from clients and providers: md() shows them as typed.
    st.subheader(f"{md(detail.client_name or detail.client_email)} · {md(detail.session_type_name)}")
    st.caption(f"Booked {when(detail.created_at, tz, with_zone=True)}"
               + (f" with {md(detail.builder_name)}" if viewer.is_admin else "") + f" · `{detail.id}`")
    st.markdown(f":{STATUS_COLORS.get(detail.status, 'gray')}-badge[{status_label(detail.status)}] "
                f":{'blue' if detail.payment_on_its_way else PAYMENT_COLORS.get(detail.payment_status, 'gray')}-badge"
                f"[{payment_label(detail.payment_status, on_its_way=detail.payment_on_its_way)}]")
    money_metrics(detail)
    facts = {
        "Session": when(detail.start_time, tz, with_zone=True) or "not scheduled yet",
        "Client": f"{md(detail.client_name)} {md(f'<{detail.client_email}>')}",
        "Client's time zone": md(detail.invitee_timezone or ""),
        "Hold ends": when(detail.hold_expires_at, tz, with_zone=True) if detail.status == BookingStatus.PENDING_PAYMENT else "",
        "Payment": (f"{ON_ITS_WAY} (paid by bank {when(detail.payment_processing_since, tz, with_zone=True)}; "
                    "the slot is held until it settles)") if detail.payment_on_its_way else "",
        "Canceled": f"{md(detail.cancel_reason)} (by {md(detail.canceled_by or '')})" if detail.cancel_reason else "",
    }
    if viewer.is_admin:
        facts.update({"Calendly event": md(detail.calendly_event_uri or ""),
                      "Stripe checkout": md(detail.stripe_checkout_session_id or "")})
    st.markdown("\n".join(f"- **{k}:** {v}" for k, v in facts.items() if v))
    st.markdown("#### Client's answers")
    if detail.answers:
        st.markdown("\n".join(f"- **{md(question)}** {md(answer) if answer else '_(no answer)_'}"
                               for question, answer in detail.answers))
    else:
        st.caption("The client answered no questions when booking.")
    if viewer.is_admin:
        booking_actions(viewer, detail)
    st.markdown("#### History")
    plain_table(tables.history_table(detail.history, tz), key="detail_history")
    st.markdown("#### Payments")
    if detail.payments:
        plain_table(tables.payments_table(detail.payments, tz, with_stripe_ids=viewer.is_admin), key="detail_payments")
    else:
        st.caption("No payment yet.")
    st.markdown("#### Refunds")
    if detail.refunds:
        plain_table(tables.refunds_table(detail.refunds, tz), key="detail_refunds")
    else:
        st.caption("No refunds.")
    if not viewer.is_admin:
        return
    st.markdown("#### Side effects (outbox)")
    outbox_entries(viewer, detail.outbox, tz, key="detail")
    st.markdown("#### Webhook events")
    webhook_events(viewer, detail.webhooks, tz, key="detail")


def _prefill_refund(detail: BookingDetail) -> None:
    # Refill the amount with the policy's suggestion whenever the booking or its refunds change.
    marker = (detail.id, detail.refunded_cents)
    if st.session_state.get("refund_prefill_for") != marker:
        st.session_state["refund_prefill_for"] = marker
        st.session_state["refund_amount"] = str(Money(detail.suggested_refund_cents, detail.currency).major)


def booking_actions(viewer: Viewer, detail: BookingDetail) -> None:
    st.markdown("#### Actions")
    refund_col, cancel_col = st.columns(2)
    with refund_col.container(border=True):
        st.markdown("**Refund**")
        if detail.paid_cents <= 0:
            st.caption("Nothing was paid for this booking.")
        elif detail.refundable_cents <= 0:
            st.caption("Fully refunded.")
        else:
            _prefill_refund(detail)
            st.caption(f"Refundable: {detail.money(detail.refundable_cents)}. Policy now: "
                       f"{detail.money(detail.suggested_refund_cents)} — {detail.suggested_refund_reason}.")
            text = st.text_input(f"Amount ({detail.currency})", key="refund_amount")
            reason = st.text_input("Reason (the client sees it)", key="refund_reason")
            left, right = st.columns(2)
            if left.button("Refund this amount…", key="refund_open"):
                try:
                    amount = Money.from_major(text.strip(), detail.currency).amount
                except MoneyError as error:
                    st.error(f"Not an amount: {error}")
                else:
                    actions.ask_to_confirm(
                        "refund",
                        f"Refund **{format_amount(amount, detail.currency)}** ({detail.currency}) to "
                        f"{md(detail.client_email)}? The refundable remainder is "
                        f"{detail.money(detail.refundable_cents)}.",
                        booking_id=detail.id, amount_cents=amount, currency=detail.currency, reason=reason)
            if right.button("Refund the rest in full…", key="refund_full_open"):
                actions.ask_to_confirm(
                    "refund",
                    f"Refund the full remainder, **{detail.money(detail.refundable_cents)}** "
                    f"({detail.currency}), to {md(detail.client_email)}?",
                    booking_id=detail.id, amount_cents=detail.refundable_cents, currency=detail.currency,
                    reason=reason)
    with cancel_col.container(border=True):
        st.markdown("**Cancel**")
        if not detail.can_cancel:
            st.caption(f"A {status_label(detail.status).lower()} booking cannot be canceled.")
        else:
            if detail.paid_cents > 0 or detail.payment_on_its_way:
                st.caption("Cancels the Calendly event and refunds by the cancellation policy "
                           f"(now: {detail.money(detail.suggested_refund_cents)}).")
                consequence = (f"The Calendly event is canceled and the policy refunds "
                               f"{detail.money(detail.suggested_refund_cents)} ({detail.currency}).")
            else:
                st.caption("Cancels the Calendly event and frees the slot. Nothing was paid, so there is "
                           "nothing to refund.")
                consequence = "The Calendly event is canceled; nothing was paid, so nothing is refunded."
            reason = st.text_input("Reason for canceling", key="cancel_reason")
            if st.button("Cancel booking…", key="cancel_open"):
                actions.ask_to_confirm(
                    "cancel",
                    f"Cancel {md(detail.client_email)}'s booking of {md(detail.session_type_name)}? {consequence}",
                    booking_id=detail.id, currency=detail.currency, reason=reason,
                    money=actions.ON_ITS_WAY if detail.payment_on_its_way
                    else actions.PAID if detail.paid_cents > 0 else actions.UNPAID)
        if detail.can_resend_payment_link and st.button("Resend payment link", key="resend_link"):
            actions.resend_payment_link(viewer, detail.id)
            st.rerun()


def _listed(viewer: Viewer, rows, table, *, key: str) -> bool:
    """Show `rows` as a table ("None." when empty); True when an admin's per-row actions follow."""
    if not rows:
        st.caption("None.")
        return False
    plain_table(table(rows), key=key)
    return viewer.is_admin


def outbox_entries(viewer: Viewer, entries, tz: str, *, key: str) -> None:
    if not _listed(viewer, entries, lambda rows: tables.outbox_table(rows, tz), key=f"{key}_outbox"):
        return
    for entry in entries:
        if entry.status == OutboxStatus.FAILED or (entry.status == OutboxStatus.PENDING and entry.last_error):
            label, button = st.columns([4, 1])
            label.markdown(f"**#{entry.id} {md(entry.kind)}** ({entry.status}, {entry.attempts} attempts): "
                           f"{md(first_line(entry.last_error))}")
            if button.button("Retry now", key=f"retry_{entry.id}"):
                actions.retry_outbox(viewer, entry.id)
                st.rerun()


def webhook_events(viewer: Viewer, events, tz: str, *, key: str) -> None:
    if not _listed(viewer, events, lambda rows: tables.webhooks_table(rows, tz), key=f"{key}_webhooks"):
        return
    for event in events:
        with st.expander(f"#{event.id} {md(event.provider)} {md(event.event_type)} — {md(event.outcome)}"):
            if event.error:
                st.caption(tables.outcome_note_label(event.outcome))
                st.code(event.error, language=None)
            if st.toggle("Show raw payload", key=f"{key}_raw_{event.id}"):
                payload = data.webhook_payload(viewer, event.id)
                st.json(_parsed(payload.raw_body))
                st.caption(f"Headers kept: {md(payload.headers)}")
            if event.replayable and st.button("Reprocess", key=f"reprocess_{event.id}"):
                actions.reprocess_webhook(viewer, event.id)
                st.rerun()


def _parsed(raw: str):
    try:
        return json.loads(raw)
    except ValueError:
        return {"raw": raw}
