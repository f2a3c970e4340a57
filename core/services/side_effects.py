"""The outbox's executors: the only place that refunds, cancels in Calendly, or sends mail.

Each executor is safe to run twice: a refund sent to Stripe carries the entry's idempotency key
(expiring a session, the gateway's own key), Calendly's "already canceled" answer counts as done,
and results are written back through the services. Stripe is called through `core.stripe`'s
gateway, which maps its errors to ours (`_stripe_outcome` turns them into the outbox's terms).
"""
from __future__ import annotations

import smtplib
from contextlib import contextmanager
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

from sqlalchemy import Engine

from core.calendly import CalendlyAPIError, CalendlyUnavailable
from core.config import get_settings
from core.db import session_scope
from core.models import Builder, Notification, OutboxEntry, Payment, Refund, utcnow
from core.providers import calendly_for
from core.mail.compose import compose
from core.mail.content import MailContent
from core.services import notifications, payment_events, refunds
from core.services.outbox import Executor, PermanentFailure, RetryLater
from core.states import OutboxKind
from core.stripe import StripeRefused, StripeUnavailable, stripe_gateway


@contextmanager
def _stripe_outcome():
    """The gateway's failures, in the outbox's terms: unavailable → retry later, refused → give up."""
    try:
        yield
    except StripeUnavailable as error:
        raise RetryLater(str(error)) from None
    except StripeRefused as error:
        raise PermanentFailure(str(error)) from None


def execute_stripe_refund(engine: Engine, entry: OutboxEntry) -> None:
    with session_scope(engine, read_only=True) as session:
        refund = session.get(Refund, entry.payload["refund_id"])
        if refund.stripe_refund_id:
            return  # already sent (an earlier attempt's answer was recorded)
        payment = session.get(Payment, refund.payment_id)
        params = {
            "payment_intent": payment.stripe_payment_intent_id, "amount": refund.amount_cents,
            "metadata": {"booking_id": refund.booking_id, "refund_id": str(refund.id)},
            "reason": "requested_by_customer",
        }
    try:
        with _stripe_outcome():
            created = stripe_gateway().create_refund(params, idempotency_key=entry.idempotency_key)
    except PermanentFailure as error:
        with session_scope(engine) as session:
            refunds.mark_refund_failed(session, entry.payload["refund_id"], str(error), actor="system:outbox")
        raise
    with session_scope(engine) as session:
        payment_events.apply_refund_object(session, created, actor="system:outbox")


def execute_stripe_refund_refused_payment(engine: Engine, entry: OutboxEntry) -> None:
    """All of a payment we refused (not what its booking owes) goes back; it never entered the
    booking's ledger, so Stripe's refund events for it stay unmatched there."""
    params = {"payment_intent": entry.payload["payment_intent"], "reason": "requested_by_customer",
              "metadata": {"booking_id": entry.payload["booking_id"], "refused_payment": "true"}}
    with _stripe_outcome():
        stripe_gateway().create_refund(params, idempotency_key=entry.idempotency_key)


def execute_stripe_sync_refunds(engine: Engine, entry: OutboxEntry) -> None:
    with _stripe_outcome():
        found = stripe_gateway().refunds_of(entry.payload["payment_intent"])
    for refund in found:
        with session_scope(engine) as session:
            payment_events.apply_refund_object(session, refund, actor="stripe:sync")


def execute_stripe_expire_checkout(engine: Engine, entry: OutboxEntry) -> None:
    """Done once the session is no longer open: expired now, or already complete or expired
    (Stripe's own event, or the worker, acts on how it ended)."""
    with _stripe_outcome():
        stripe_gateway().expire_checkout(entry.payload["checkout_session_id"])


def _event_uuid(event_uri: str) -> str:
    return unquote(urlparse(event_uri).path.rstrip("/").rsplit("/", 1)[-1])


def execute_calendly_cancel(engine: Engine, entry: OutboxEntry) -> None:
    event_uri = entry.payload["event_uri"]
    if entry.payload.get("builder_id") is None:
        raise PermanentFailure(f"no builder of ours hosts Calendly event {event_uri}: cancel it in "
                               "Calendly by hand if it should not take place")
    with session_scope(engine, read_only=True) as session:
        builder = session.get(Builder, entry.payload["builder_id"])
        client = calendly_for(builder)
    try:
        client.cancel_scheduled_event(_event_uuid(event_uri), entry.payload["reason"])
    except CalendlyAPIError as error:
        if error.status == 403:
            _confirm_already_canceled(client, event_uri, error)
            return
        if error.status == 404:
            raise PermanentFailure(f"Calendly does not know this event: {error.message}") from None
        raise PermanentFailure(str(error)) from None
    except CalendlyUnavailable as error:
        raise RetryLater(str(error)) from None


def _confirm_already_canceled(client, event_uri: str, refusal: CalendlyAPIError) -> None:
    """Calendly answers 403 both for "already canceled" and for "not yours" or "in the past": only
    the event read back with `status: canceled` means the slot is free."""
    try:
        event = client.get_scheduled_event(event_uri)
    except CalendlyUnavailable as error:
        raise RetryLater(f"Calendly refused the cancellation (403) and the event could not be read "
                         f"back: {error}") from None
    except CalendlyAPIError as error:
        raise PermanentFailure(f"Calendly refused the cancellation ({refusal.message or 403}) and the "
                               f"event cannot be read with this builder's token ({error.status}): "
                               "it is not theirs") from None
    if event.get("status") != "canceled":
        raise PermanentFailure(f"Calendly refused the cancellation ({refusal.message or 403}) and the "
                               f"event is still {event.get('status') or 'active'}") from None


def execute_notify(engine: Engine, entry: OutboxEntry) -> None:
    """Send one stored message, unless it no longer applies (a payment nudge for a booking that
    is paid by now): then the entry is done with the reason in its payload, and nothing is sent."""
    settings = get_settings()
    with session_scope(engine) as session:
        notification = session.get(Notification, entry.payload["notification_id"])
        if notification.sent_at is not None:
            return
        skip = notifications.reason_not_to_send(session, notification)
        if skip is not None:
            stored = session.get(OutboxEntry, entry.id)
            stored.payload = {**stored.payload, "skipped": skip}
            return
        if settings.smtp_url:
            mail = entry.payload.get("mail")
            message = compose(mail_from=settings.mail_from, to=notification.to_email,
                              subject=notification.subject, text=notification.body,
                              content=MailContent.from_payload(mail) if mail else None)
            _send_smtp(settings.smtp_url, message)
        # Without SMTP the stored message is the delivery (shown in the dashboard and sandbox).
        notification.sent_at = utcnow()


def _send_smtp(smtp_url: str, message: EmailMessage) -> None:
    url = urlparse(smtp_url)
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    try:
        with smtp_class(url.hostname, url.port or (465 if url.scheme == "smtps" else 25), timeout=10) as smtp:
            if url.scheme == "smtp+starttls":
                smtp.starttls()
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise RetryLater(f"SMTP: {type(error).__name__}") from None


EXECUTORS: dict[OutboxKind, Executor] = {
    OutboxKind.STRIPE_REFUND: execute_stripe_refund,
    OutboxKind.STRIPE_SYNC_REFUNDS: execute_stripe_sync_refunds,
    OutboxKind.STRIPE_REFUND_REFUSED_PAYMENT: execute_stripe_refund_refused_payment,
    OutboxKind.STRIPE_EXPIRE_CHECKOUT: execute_stripe_expire_checkout,
    OutboxKind.CALENDLY_CANCEL: execute_calendly_cancel,
    OutboxKind.NOTIFY: execute_notify,
}
