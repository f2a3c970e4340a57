"""One list of the events we handle per provider: the registries the webhook ingest dispatches
through (and reconcile replays) are the lists the README tells an operator to register."""
from __future__ import annotations

import re
from pathlib import Path

from core.services import webhook_ingest
from core.services.booking_service import CALENDLY_EVENTS
from core.services.payment_events import PAID_CHECKOUT_EVENTS, STRIPE_EVENTS

README = Path(__file__).resolve().parent.parent / "README.md"


def _registration_step() -> str:
    """README, "Going to production", step 3 (the webhooks to register)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Going to production", 1)[1].split("\n## ", 1)[0]
    return section.split("\n3. ", 1)[1].split("\n4. ", 1)[0]


def _readme_stripe_events() -> set[str]:
    stripe_part = _registration_step().split("- Stripe:", 1)[1].split("- Calendly:", 1)[0]
    return set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", stripe_part))


def _readme_calendly_events() -> set[str]:
    calendly_part = _registration_step().split("- Calendly:", 1)[1]
    return set(re.findall(r'"([a-z_]+(?:\.[a-z_]+)+)"', calendly_part))


def test_the_readme_registers_exactly_the_stripe_events_we_handle():
    assert _readme_stripe_events() == set(STRIPE_EVENTS)


def test_the_readme_registers_exactly_the_calendly_events_we_handle():
    assert _readme_calendly_events() == set(CALENDLY_EVENTS)


def test_paid_checkout_events_are_the_registrys_payment_handlers():
    assert PAID_CHECKOUT_EVENTS == {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
    assert PAID_CHECKOUT_EVENTS <= set(STRIPE_EVENTS)


def test_ingest_reads_the_calendly_registry():
    # The legacy name is parsed as invitee.created, so its payload must parse too.
    assert webhook_ingest.HANDLED_CALENDLY_EVENTS == set(CALENDLY_EVENTS) | {"invitee.rescheduled"}
