"""Report rows → tables that fit a laptop and a phone: a DataFrame with few, human columns (names,
not ids; money with its currency; times as datetimes in the viewer's zone), its column
configuration (labels, widths, help) and, per row, the booking a click on it opens.

The booking id stays in the frame as a hidden "Booking" column (None in the column config): tests
and the click handler read it, nobody has to.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import streamlit as st

from core.reporting.overview import REFUND_RULE_LABELS
from core.reporting.words import (
    NET, PAID, PAYOUT, PLATFORM_FEE, PRICE, REFUNDED, Term, actor_label, cause_label, refund_status_label,
)
from core.states import OutboxStatus, WebhookOutcome
from dashboard.lib.fmt import ON_ITS_WAY, first_line, minutes_until, money, payment_label, status_label, zone

BOOKING = "Booking"  # the hidden column holding each row's booking id


@dataclass
class Table:
    frame: pd.DataFrame
    columns: dict = field(default_factory=dict)  # st.dataframe's column_config

    @property
    def booking_ids(self) -> list[str]:
        """The booking each row opens ('' for a row without one), in row order."""
        if BOOKING not in self.frame.columns:
            return []
        return [str(value or "") for value in self.frame[BOOKING]]


# Column widths in pixels, chosen so a bookings table with its builder fits the 820 px a 1280 px
# window leaves beside the sidebar; on a phone the table scrolls sideways, first columns first.
NARROW, TIME, NAME, WIDE = 90, 135, 140, 260


def local(value: datetime | None, tz: str) -> pd.Timestamp:
    """A stored (aware, UTC) time as the viewer's wall-clock time; no time is an empty cell (NaT)."""
    return pd.NaT if value is None else pd.Timestamp(value).tz_convert(zone(tz))


def _when(label: str, tz: str, *, width=TIME, help: str | None = None):
    # No year: the lists are about this year's weeks; the CSVs and the booking's page carry it.
    return st.column_config.DatetimeColumn(label, format="ddd D MMM, HH:mm", timezone=tz, width=width,
                                           help=help or f"In {tz}")


def _text(label: str, width=NAME, help: str | None = None):
    return st.column_config.TextColumn(label, width=width, help=help)


def _money(term: Term, width=NARROW):
    return st.column_config.TextColumn(term.label, width=width, help=term.help)


def _table(records: list[dict], columns: dict) -> Table:
    """The frame of `records` with the configured columns; a column configured as None is left
    out (not for this viewer), except the hidden booking id."""
    shown = {name: config for name, config in columns.items() if config is not None or name == BOOKING}
    # Named columns even when there are no rows, so an empty table keeps its header.
    frame = pd.DataFrame.from_records([{name: r[name] for name in shown} for r in records], columns=list(shown))
    return Table(frame, shown)


def client(name: str | None, email: str | None) -> str:
    return name or email or ""


# ---------------------------------------------------------------- bookings
def bookings_table(rows: Sequence, tz: str, *, with_builder: bool) -> Table:
    records = [{
        "Session": local(r.start_time, tz), "Client": client(r.client_name, r.client_email),
        "Session type": r.session_type_name, "Status": status_label(r.status),
        "Payment": payment_label(r.payment_status, on_its_way=getattr(r, "payment_on_its_way", False)),
        PAID.label: money(r.paid_cents, r.currency), "Builder": r.builder_name, BOOKING: r.id,
    } for r in rows]
    columns = {
        "Session": _when("Session", tz), "Client": _text("Client", NAME),
        "Session type": _text("Session type", NAME), "Status": _text("Status", 120),
        "Payment": _text("Payment", 120), PAID.label: _money(PAID),
        "Builder": _text("Builder", 110) if with_builder else None, BOOKING: None,
    }
    return _table(records, columns)


def pending_table(rows: Sequence, tz: str, now: datetime, *, with_builder: bool = True) -> Table:
    records = [{
        "Client": client(r.client_name, r.client_email), "Session type": r.session_type_name,
        "Session": local(r.start_time, tz), "Hold ends": local(r.hold_expires_at, tz),
        "Ends": minutes_until(r.hold_expires_at, now), PRICE.label: money(r.amount_cents, r.currency),
        "Payment": ON_ITS_WAY if r.payment_on_its_way else "Not paid yet", "Builder": r.builder_name,
        BOOKING: r.id,
    } for r in rows]
    columns = {
        "Client": _text("Client"), "Session type": _text("Session type"), "Session": _when("Session", tz),
        "Hold ends": _when("Hold ends", tz, help=f"The slot is released then if still unpaid ({tz})"),
        "Ends": _text("Ends", NARROW), PRICE.label: _money(PRICE), "Payment": _text("Payment", NARROW),
        "Builder": _text("Builder", 110) if with_builder else None, BOOKING: None,
    }
    return _table(records, columns)


# ---------------------------------------------------------------- money
def earnings_table(rows: Sequence, currency: str) -> Table:
    records = [{
        "Month": r.month.strftime("%Y-%m"), PAID.label: money(r.gross_cents, currency),
        REFUNDED.label: money(r.refunded_cents, currency), NET.label: money(r.net_cents, currency),
        PLATFORM_FEE.label: money(r.fee_cents, currency), PAYOUT.label: money(r.payout_cents, currency),
    } for r in rows if r.currency == currency]
    columns = {"Month": _text("Month", NARROW, "Months are UTC")}
    columns.update({term.label: _money(term) for term in (PAID, REFUNDED, NET, PLATFORM_FEE, PAYOUT)})
    return _table(records, columns)


def refunds_table(rows: Sequence, tz: str, *, ledger: bool = False) -> Table:
    """A booking's refunds, or (`ledger`) the refund ledger: with whose booking each is."""
    records = [{
        "When": local(r.created_at, tz), "Client": client(getattr(r, "client_name", ""), getattr(r, "client_email", "")),
        "Amount": money(r.amount_cents, r.currency), "Status": refund_status_label(r.status),
        "Why": REFUND_RULE_LABELS.get(r.rule, r.rule), "Reason given": r.reason,
        "Builder": getattr(r, "builder_name", ""), "Issued by": actor_label(r.issued_by),
        "Failure": r.failure_reason or "", BOOKING: r.booking_id,
    } for r in rows]
    columns = {
        # The ledger keeps to 820 px: who issued each refund is in its booking and the CSV.
        "When": _when("When", tz, width=125), "Client": _text("Client", 120) if ledger else None,
        "Amount": _text("Amount", 80), "Status": _text("Status", 100),
        "Why": _text("Why", 130, "Which rule gave this refund"),
        "Reason given": _text("Reason given", 130, "What the client was told"),
        "Builder": _text("Builder", 100) if ledger else None,
        "Issued by": None if ledger else _text("Issued by", NARROW),
        "Failure": _text("Failure", NAME) if any(r.failure_reason for r in rows) else None, BOOKING: None,
    }
    return _table(records, columns)


def payments_table(rows: Sequence, tz: str, *, with_stripe_ids: bool) -> Table:
    records = [{
        "When": local(p.created_at, tz), "Amount": money(p.amount_cents, p.currency),
        "Status": str(p.status).replace("_", " ").capitalize(),
        "Dispute": str(p.dispute_status or "").replace("_", " "), "Stripe payment": p.stripe_payment_intent_id,
    } for p in rows]
    columns = {"When": _when("When", tz), "Amount": _text("Amount", NARROW), "Status": _text("Status", 120),
               "Dispute": _text("Dispute", NARROW),
               "Stripe payment": _text("Stripe payment", NAME) if with_stripe_ids else None}
    return _table(records, columns)


# ---------------------------------------------------------------- history and operations
def history_table(rows: Sequence, tz: str) -> Table:
    records = [{
        "When": local(h.at, tz), "What happened": cause_label(h.cause),
        "Status": (f"{status_label(h.from_status)} → {status_label(h.to_status)}"
                   if h.from_status and h.from_status != h.to_status else status_label(h.to_status)),
        "By": actor_label(h.actor),
    } for h in rows]
    columns = {"When": _when("When", tz), "What happened": _text("What happened", WIDE),
               "Status": _text("Status", NAME), "By": _text("By", NARROW)}
    return _table(records, columns)


def outbox_table(rows: Sequence, tz: str) -> Table:
    records = [{
        "#": e.id, "Kind": e.kind, "Status": e.status, "Attempts": e.attempts,
        "Next try": local(e.next_attempt_at, tz) if e.status == OutboxStatus.PENDING else None,
        "Last error": first_line(e.last_error), "Created": local(e.created_at, tz), BOOKING: e.booking_id or "",
    } for e in rows]
    columns = {"#": st.column_config.NumberColumn("#", width=60), "Kind": _text("Kind", NARROW),
               "Status": _text("Status", 120), "Attempts": st.column_config.NumberColumn("Attempts", width=70),
               "Next try": _when("Next try", tz), "Last error": _text("Last error", WIDE),
               "Created": _when("Created", tz), BOOKING: None}
    return _table(records, columns)


def attention_table(rows: Sequence, tz: str) -> Table:
    records = [{"When": local(a.created_at, tz), "What": a.what, "Why": a.why,
                "Booking status": status_label(a.status), BOOKING: a.booking_id} for a in rows]
    columns = {"When": _when("When", tz), "What": _text("What", WIDE), "Why": _text("Why", WIDE),
               "Booking status": _text("Booking status", NARROW), BOOKING: None}
    return _table(records, columns)


def outcome_note_label(outcome: str) -> str:
    """A failed delivery's text is its error; any other outcome's is a note about what was done."""
    return "Error" if outcome == WebhookOutcome.FAILED else "Note"


def webhooks_table(rows: Sequence, tz: str) -> Table:
    records = [{
        "#": w.id, "Received": local(w.received_at, tz), "Provider": w.provider, "Event": w.event_type,
        "Outcome": w.outcome,
        "Details": f"{outcome_note_label(w.outcome)}: {first_line(w.error)}" if w.error else "",
        "Attempts": w.attempts, BOOKING: w.booking_id or "",
    } for w in rows]
    columns = {"#": st.column_config.NumberColumn("#", width=60), "Received": _when("Received", tz),
               "Provider": _text("Provider", NARROW), "Event": _text("Event", NAME),
               "Outcome": _text("Outcome", NARROW), "Details": _text("Details", WIDE),
               "Attempts": st.column_config.NumberColumn("Attempts", width=70), BOOKING: None}
    return _table(records, columns)
