"""The CLI's commands; each parses nothing and calls one service (cli.py does the parsing)."""
from __future__ import annotations

import argparse
import getpass
import sys

from core.calendly import CalendlyClient, CalendlyError
from core.cli_output import CliError, print_json
from core.config import get_settings
from core.db import get_engine, session_scope
from core.errors import DomainError


def _calendly_failure(error: CalendlyError) -> DomainError:
    return DomainError(f"Calendly: {error}")


def cmd_migrate(_args) -> None:
    from core.migrate import upgrade_to_head
    upgrade_to_head(get_settings().database_url)
    print("database is at the latest schema")


def cmd_add_builder(args) -> None:
    from core.services.people import add_builder
    token = (args.calendly_token or "").strip() or None
    if args.calendly_token is not None and token is None:
        raise DomainError("--calendly-token is empty: give the token, or leave the option out to let the "
                          "builder connect Calendly themselves")
    user = None
    if token:
        try:
            user = CalendlyClient(token, get_settings().calendly_api_base).get_current_user()
        except CalendlyError as error:
            raise _calendly_failure(error) from None
    with session_scope() as session:
        builder = add_builder(session, name=args.name, email=args.email, calendly_token=token, calendly_user=user)
        print(builder.id)
    if not token:
        print(f"builder {builder.id} waits to connect Calendly: `python -m core connect-calendly --builder "
              f"{builder.id}` prints the link", file=sys.stderr)


def cmd_connect_calendly(args) -> None:
    from core.services.calendly_connection import start_connect
    with session_scope() as session:
        url = start_connect(session, args.builder, started_by=f"cli:{getpass.getuser()}", dashboard_session_id=None)
    print(url)


def cmd_set_price(args) -> None:
    from core.models import Builder
    from core.providers import calendly_for
    from core.services.catalog import set_price
    with session_scope(read_only=True) as session:
        builder = session.get(Builder, args.builder)
        if builder is None:
            raise DomainError(f"no builder {args.builder}")
        client = calendly_for(builder)
    try:
        event_type = client.get_event_type(args.event_type)
    except CalendlyError as error:
        raise _calendly_failure(error) from None
    with session_scope() as session:
        session_type = set_price(
            session, builder_id=args.builder, event_type=event_type, amount_cents=args.amount_cents,
            currency=args.currency, refund_full_hours=args.refund_full_hours,
            refund_partial_percent=args.refund_partial_percent,
        )
        print(f"session type {session_type.id}: {session_type.name} at {args.amount_cents} "
              f"{session_type.currency} (minor units)")


def cmd_add_user(args) -> None:
    from core.services.people import add_user
    if args.role == "builder" and args.builder is None:
        raise DomainError("a builder account needs --builder ID")
    with session_scope() as session:
        user = add_user(session, email=args.email, password=args.password, role=args.role,
                        builder_id=args.builder)
        print(f"dashboard user {user.id} ({user.role})")


def cmd_demo_data(args) -> None:
    from core.demo_data import generate
    generate(get_engine(), bookings=args.bookings, seed=args.seed)


def cmd_show_booking(args) -> None:
    from core.services.booking_view import booking_json
    with session_scope(read_only=True) as session:
        print_json(booking_json(session, args.booking_id, with_history=True))


def cmd_worker(_args) -> None:
    from core.worker import run_forever
    run_forever()


def cmd_run_outbox(_args) -> None:
    from core.worker import drain_outbox
    summary = drain_outbox(get_engine(), limit=1000)
    print(f"outbox: {summary.done} done, {summary.retried} to retry, {summary.failed} failed")


def cmd_reconcile(_args) -> None:
    from core.services.reconcile import reconcile
    print_json(reconcile(get_engine(), progress=True))


def cmd_replay_webhooks(_args) -> None:
    from core.services.webhook_ingest import failed_event_ids, replay
    engine = get_engine()
    ids = failed_event_ids(engine)
    outcomes: dict[str, int] = {}
    for index, event_id in enumerate(ids, 1):
        result = replay(engine, event_id)
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        if index % 50 == 0 or index == len(ids):
            print(f"replayed {index}/{len(ids)}", flush=True)
    print(f"replayed {len(ids)} failed webhook events: {outcomes or 'nothing to do'}")


def cmd_prune_webhooks(args) -> None:
    from core.services.webhook_retention import (
        PRUNABLE_OUTCOMES, UNAUTHENTICATED_OUTCOMES, prune_webhook_events,
    )

    def progress(done: int, total: int) -> None:
        print(f"checked {done}/{total}", flush=True)

    summary = prune_webhook_events(
        get_engine(), older_than=args.older_than, dry_run=args.dry_run, progress=progress,
        outcomes=UNAUTHENTICATED_OUTCOMES if args.rejected_only else PRUNABLE_OUTCOMES)
    print(summary.line(dry_run=args.dry_run))


def cmd_revoke_sessions(args) -> None:
    from core.services.client_sessions import revoke_all
    with session_scope() as session:
        revoked = revoke_all(session, args.email)
    print(f"revoked {revoked} session{'s' if revoked != 1 else ''} of {args.email.strip().lower()}")


COMMANDS = {
    "migrate": cmd_migrate, "add-builder": cmd_add_builder, "set-price": cmd_set_price,
    "connect-calendly": cmd_connect_calendly, "add-user": cmd_add_user, "demo-data": cmd_demo_data, "show-booking": cmd_show_booking,
    "worker": cmd_worker, "run-outbox": cmd_run_outbox, "reconcile": cmd_reconcile,
    "replay-webhooks": cmd_replay_webhooks, "prune-webhooks": cmd_prune_webhooks,
    "revoke-sessions": cmd_revoke_sessions,
}


def run(args: argparse.Namespace) -> int:
    if args.command not in COMMANDS:
        raise CliError(f"unknown command {args.command}")
    COMMANDS[args.command](args)
    return 0
