"""Report rows → DataFrames with human columns (money formatted with its currency, local times)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.states import OutboxStatus
from dashboard.lib.fmt import ON_ITS_WAY, first_line, money, payment_label, status_label, when


def bookings_frame(rows: Sequence, tz: str, *, with_builder: bool) -> pd.DataFrame:
    records = []
    for r in rows:
        record = {
            "Booked": when(r.created_at, tz), "Session": when(r.start_time, tz),
            "Status": status_label(r.status),
            "Payment": payment_label(r.payment_status, on_its_way=getattr(r, "payment_on_its_way", False)),
            "Price": money(r.amount_cents, r.currency), "Paid": money(r.paid_cents, r.currency),
            "Refunded": money(r.refunded_cents, r.currency), "Client": r.client_name,
            "Email": r.client_email, "Session type": r.session_type_name,
        }
        if with_builder:
            record["Builder"] = r.builder_name
        record["Booking"] = r.id
        records.append(record)
    return pd.DataFrame.from_records(records)


def upcoming_frame(rows: Sequence, tz: str, *, with_builder: bool) -> pd.DataFrame:
    return pd.DataFrame.from_records([{
        "When": when(r.start_time, tz, with_zone=True), "Session type": r.session_type_name,
        "Minutes": r.duration_minutes, "Client": r.client_name, "Email": r.client_email,
        "Client's timezone": r.invitee_timezone or "", "Status": status_label(r.status),
        "Price": money(r.amount_cents, r.currency), **({"Builder": r.builder_name} if with_builder else {}),
        "Booking": r.id,
    } for r in rows])


def pending_frame(rows: Sequence, tz: str, now) -> pd.DataFrame:
    from dashboard.lib.fmt import minutes_until
    return pd.DataFrame.from_records([{
        "Waiting since": when(r.waiting_since, tz), "Hold ends": when(r.hold_expires_at, tz),
        "Ends": minutes_until(r.hold_expires_at, now), "Client": r.client_name, "Email": r.client_email,
        "Amount": money(r.amount_cents, r.currency), "Builder": r.builder_name,
        "Session type": r.session_type_name, "Session": when(r.start_time, tz),
        "Payment": ON_ITS_WAY if r.payment_on_its_way else "Not paid yet",
        "Checkout opened": "yes" if r.checkout_opened else "no",
        "Reminder sent": when(r.reminder_sent_at, tz), "Booking": r.id,
    } for r in rows])


def earnings_frame(rows: Sequence, currency: str) -> pd.DataFrame:
    return pd.DataFrame.from_records([{
        "Month": r.month.strftime("%Y-%m"), "Gross": money(r.gross_cents, currency),
        "Refunded": money(r.refunded_cents, currency), "Platform fee": money(r.fee_cents, currency),
        "Net": money(r.net_cents, currency),
    } for r in rows if r.currency == currency])


def refunds_frame(rows: Sequence, tz: str) -> pd.DataFrame:
    return pd.DataFrame.from_records([{
        "When": when(r.created_at, tz), "Amount": money(r.amount_cents, r.currency), "Status": r.status,
        "Rule": r.rule, "Reason": r.reason, "Issued by": r.issued_by,
        **({"Booking": r.booking_id} if hasattr(r, "booking_id") else {}),
        **({"Builder": r.builder_name, "Client": r.client_email} if hasattr(r, "builder_name") else {}),
        "Stripe refund": r.stripe_refund_id or "", "Failure": r.failure_reason or "",
    } for r in rows])


def history_frame(rows: Sequence, tz: str) -> pd.DataFrame:
    return pd.DataFrame.from_records([{
        "When": when(h.at, tz), "From": h.from_status or "", "To": h.to_status, "Cause": h.cause,
        "By": h.actor, "Details": ", ".join(f"{k}={v}" for k, v in (h.details or {}).items()),
    } for h in rows])


def payments_frame(rows: Sequence, tz: str) -> pd.DataFrame:
    return pd.DataFrame.from_records([{
        "When": when(p.created_at, tz), "Amount": money(p.amount_cents, p.currency), "Status": p.status,
        "Dispute": p.dispute_status or "", "Payment intent": p.stripe_payment_intent_id,
        "Checkout session": p.stripe_checkout_session_id or "",
    } for p in rows])


def outbox_frame(rows: Sequence, tz: str) -> pd.DataFrame:
    return pd.DataFrame.from_records([{
        "#": e.id, "Kind": e.kind, "Status": e.status, "Attempts": e.attempts,
        "Next try": when(e.next_attempt_at, tz) if e.status == OutboxStatus.PENDING else "",
        "Last error": first_line(e.last_error), "Booking": e.booking_id or "",
        "Created": when(e.created_at, tz), "Done": when(e.done_at, tz),
    } for e in rows])


def attention_frame(rows: Sequence, tz: str) -> pd.DataFrame:
    return pd.DataFrame.from_records([{
        "When": when(a.created_at, tz), "Booking": a.booking_id, "What": a.what, "Why": a.why,
        "Booking status": a.status,
    } for a in rows])


def webhooks_frame(rows: Sequence, tz: str) -> pd.DataFrame:
    return pd.DataFrame.from_records([{
        "#": w.id, "Received": when(w.received_at, tz), "Provider": w.provider, "Event": w.event_type,
        "Outcome": w.outcome, "Error": first_line(w.error), "Booking": w.booking_id or "",
        "Attempts": w.attempts,
    } for w in rows])
