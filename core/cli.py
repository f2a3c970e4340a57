"""`python -m core <command>`: the operator's tools. Bad input: one line on stderr, exit code 2."""
from __future__ import annotations

import argparse
import logging
import sys

from sqlalchemy.exc import SQLAlchemyError

from core.cli_output import CliError
from core.config import ConfigError, get_settings
from core.errors import DomainError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + error; we want one clear line
        raise CliError(f"{self.prog}: {message} (see --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


MIN_RETENTION_DAYS = 7  # providers redeliver for days; a kept event is what makes a redelivery a duplicate
_DURATION_UNITS = {"h": 1 / 24, "d": 1, "w": 7}


def _retention_age(text: str):
    """'90d', '12w' or '720h' → a timedelta of at least MIN_RETENTION_DAYS."""
    from datetime import timedelta
    value = text.strip().lower()
    number, unit = value[:-1], value[-1:]
    if not (number.isascii() and number.isdigit() and unit in _DURATION_UNITS and len(number) <= 6):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (write it like 90d, 12w or 720h)")
    days = int(number) * _DURATION_UNITS[unit]
    if days < MIN_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(f"{text} is too short: keep webhook events at least {MIN_RETENTION_DAYS}d")
    return timedelta(days=days)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="Booking-to-payment operations.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("migrate", help="create or upgrade the database schema")

    p = commands.add_parser("add-builder", help="add a builder: with a Calendly personal access token, "
                            "connected now; without one, waiting to connect Calendly themselves")
    p.add_argument("--name", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--calendly-token", help="a personal access token (self-hosted, single-builder use)")

    p = commands.add_parser("connect-calendly", help="print the Calendly authorization URL that connects a "
                            "builder's Calendly through our OAuth app (valid 10 minutes, once)")
    p.add_argument("--builder", required=True, type=_positive_int)

    p = commands.add_parser("set-price", help="price a builder's Calendly event type")
    p.add_argument("--builder", required=True, type=_positive_int)
    p.add_argument("--event-type", required=True, help="Calendly event type URI")
    p.add_argument("--amount-cents", required=True, type=_positive_int,
                   help="price in minor units (cents; yen for JPY)")
    p.add_argument("--currency", required=True)
    p.add_argument("--refund-full-hours", type=int)
    p.add_argument("--refund-partial-percent", type=int)

    p = commands.add_parser("add-user", help="add a dashboard account")
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--role", required=True, choices=["admin", "builder"])
    p.add_argument("--builder", type=_positive_int)

    p = commands.add_parser("demo-data", help="fill the database with a realistic demo data set")
    p.add_argument("--bookings", type=_positive_int, default=3000)
    p.add_argument("--seed", type=int, default=7)

    p = commands.add_parser("show-booking", help="print a booking, its money and its history")
    p.add_argument("booking_id")

    commands.add_parser("worker", help="run the outbox/hold-expiry worker until stopped")
    commands.add_parser("run-outbox", help="carry out due outbox entries once and exit")
    commands.add_parser("reconcile", help="ask Stripe and Calendly for the truth and apply it")
    p = commands.add_parser("replay-webhooks", help="reprocess stored webhook events")
    p.add_argument("--failed", action="store_true", required=True, help="replay the failed ones")
    p = commands.add_parser("prune-webhooks", help="delete stored webhook events older than a retention age "
                            "(never ones a booking refers to, nor ones still to be processed)")
    p.add_argument("--older-than", required=True, type=_retention_age, metavar="AGE",
                   help=f"e.g. 90d, 12w or 720h (at least {MIN_RETENTION_DAYS}d)")
    p.add_argument("--rejected-only", action="store_true", help="only rejected and invalid deliveries")
    p.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    p = commands.add_parser("revoke-sessions", help="sign a client out everywhere (a lost device, a stolen cookie)")
    p.add_argument("--email", required=True, help="the client's email address")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "stripe", "httpx"):  # one line per request is not an operator's log
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
        get_settings()
        from core import commands  # after settings: a config error must stay one line
        return commands.run(args) or 0
    except (CliError, ConfigError, DomainError) as error:
        print(str(error).splitlines()[0] if str(error) else type(error).__name__, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except SQLAlchemyError as error:
        print(f"database error: {str(error.orig if hasattr(error, 'orig') else error).splitlines()[0]}",
              file=sys.stderr)
        return 2
