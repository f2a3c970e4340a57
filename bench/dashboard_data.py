"""How long each dashboard page's data takes, next to the bare SQL of the same queries.

    .venv/bin/python -m bench.dashboard_data --database-url sqlite:////tmp/demo1m.db --repeat 5
    .venv/bin/python -m bench.dashboard_data --database-url postgresql://postgres@127.0.0.1:5432/bench_dash

For an admin viewer and a builder viewer, every reporting function a dashboard page calls
(`dashboard/lib/data.py`) is run as the page runs it: in its own `session_scope(read_only=True)`,
through the ORM, results turned into dataclasses. Next to it, the *bare SQL*: the statements that
call sent, captured once with a `before_execute` listener (so it is exactly what the function runs,
including ORM gets and lazy loads), compiled with literal binds for the engine's dialect, and run
through the driver's own cursor from `engine.raw_connection()` with `fetchall()` — no SQLAlchemy,
no ORM, no dataclasses. Each figure is the median of `--repeat` runs, function and bare runs
interleaved so that load from elsewhere on the machine hits both alike.

`--explain` prints each statement's plan (EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL, EXPLAIN QUERY
PLAN on SQLite); `--only "a|b"` narrows the run to cases whose label contains one of the strings;
`--pg-set jit=off` applies a PostgreSQL setting to every connection; `--reporting-module` calls
another copy of the reporting functions (before/after). See bench/README.md, "Dashboard data".
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.console import RESULTS_DIR, log

PAGE_SIZE = 50  # the dashboard's default rows per page (dashboard/lib/components.py PAGE_SIZES[1])
PG_GOAL_MS = 1000.0
RATIO_GOAL = 1.5


# ---------------------------------------------------------------- what is measured
@dataclass
class Case:
    viewer: str  # "admin" | "builder"
    page: str  # the dashboard page (or reporting view) the call belongs to
    function: str  # the call, with its arguments in short
    call: Callable[[Any], Any]  # session -> result
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.viewer} · {self.page} · {self.function}"


@dataclass
class Result:
    viewer: str
    page: str
    function: str
    statements: int
    rows: int  # rows the bare statements returned, all statements together
    fn_ms: float  # median
    bare_ms: float  # median
    fn_runs: list[float] = field(default_factory=list)
    bare_runs: list[float] = field(default_factory=list)
    bare_by_statement_ms: list[float] = field(default_factory=list)  # medians, in the order run
    sql: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.fn_ms / self.bare_ms if self.bare_ms > 0 else float("nan")


@dataclass(frozen=True)
class Samples:
    """Real values from the data set the cases use: a booking to open, a search term, dates."""

    detail_booking: str
    search: str
    today: Any  # date, in the viewer's timezone
    deep_page: int


def _samples(session, viewer, deep_page: int) -> Samples:
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from core.models import Booking, Client, Refund

    # The costliest detail: a canceled, partly refunded booking (so the suggested refund runs too),
    # with history, a payment and a refund.
    query = (select(Booking.id).join(Refund, Refund.booking_id == Booking.id)
             .where(Booking.status == "CANCELED", Refund.amount_cents < Booking.amount_cents)
             .order_by(Booking.id).limit(1))
    if not viewer.is_admin:
        query = query.where(Booking.builder_id == viewer.builder_id)
    booking_id = session.execute(query).scalar()
    if booking_id is None:  # tiny data sets: any booking of the viewer
        fallback = select(Booking.id).order_by(Booking.id).limit(1)
        if not viewer.is_admin:
            fallback = fallback.where(Booking.builder_id == viewer.builder_id)
        booking_id = session.execute(fallback).scalar_one()
    # A fragment of a client's email, "first.last": matches every client with that name.
    email = session.execute(select(Client.email).order_by(Client.id).limit(1)).scalar_one()
    fragment = email.split("@", 1)[0].rsplit(".", 1)[0]
    today = datetime.now(ZoneInfo(viewer.timezone or "UTC")).date()
    return Samples(booking_id, fragment, today, deep_page)


def build_cases(session, viewer, viewer_kind: str, deep_page: int, now: datetime | None = None,
                overview_days: int = 365, reporting=None) -> list[Case]:
    """The calls each page makes, with the arguments `dashboard/lib/data.py` passes.

    `reporting`: the module whose functions are called (default `core.reporting`); another one
    with the same functions (say, a copy of the code before a change) compares two versions.
    """
    from core.models import utcnow
    from core.reporting import BookingFilters

    if reporting is None:
        from core import reporting

    s = _samples(session, viewer, deep_page)
    # The overview page's period ("Last 12 months" by default here; the page itself opens on 90 days),
    # in whole minutes as `dashboard.lib.data.period_start` makes it.
    since = ((now or utcnow()) - timedelta(days=overview_days)).replace(second=0, microsecond=0)
    period = "12 months" if overview_days == 365 else f"{overview_days} days"
    v = viewer
    cases: list[Case] = []

    def add(page: str, function: str, call: Callable[[Any], Any], note: str = "") -> None:
        cases.append(Case(viewer_kind, page, function, call, note))

    if v.is_admin:
        # What every call pays before its own SQL: a read-only session (pool checkout with its
        # pre-ping, BEGIN, COMMIT) around one trivial statement.
        from sqlalchemy import literal, select
        add("(per call)", "session_scope + SELECT 1", lambda db: db.execute(select(literal(1))).scalar_one())
    not_builder_page = "" if v.is_admin else "reporting API, not a builder page"
    add("Overview", f"overview_kpis({period})", lambda db: reporting.overview_kpis(db, v, since), not_builder_page)
    add("Overview", f"weekly_series({period})", lambda db: reporting.weekly_series(db, v, since), not_builder_page)
    add("Overview", f"status_funnel({period})", lambda db: reporting.status_funnel(db, v, since), not_builder_page)
    add("Overview", f"refunds_by_reason({period})", lambda db: reporting.refunds_by_reason(db, v, since),
        not_builder_page)
    if v.is_admin:
        add("Earnings", "builder_options()", lambda db: reporting.builder_options(db, v))
    add("Earnings", "earnings_by_month(all)", lambda db: reporting.earnings_by_month(db, v, builder_id=None))
    add("Pending payments", "pending_payments()", lambda db: reporting.pending_payments(db, v), not_builder_page)
    if not v.is_admin:
        add("Upcoming", "upcoming_sessions()", lambda db: reporting.upcoming_sessions(db, v))

    add("Bookings", "session_type_options()", lambda db: reporting.session_type_options(db, v))
    if v.is_admin:
        add("Bookings", "builder_options()", lambda db: reporting.builder_options(db, v))
    month_ago = s.today - timedelta(days=30)
    variants = [
        ("no filter, page 1", BookingFilters(), 1),
        (f"no filter, page {s.deep_page}", BookingFilters(), s.deep_page),
        ("status CANCELED, page 1", BookingFilters(statuses=("CANCELED",)), 1),
        ("payment refunded, page 1", BookingFilters(payment_statuses=("refunded",)), 1),
        (f"payment refunded, page {s.deep_page}", BookingFilters(payment_statuses=("refunded",)), s.deep_page),
        ("last 30 days, page 1", BookingFilters(date_from=month_ago, date_to=s.today), 1),
        (f"search {s.search!r}, page 1", BookingFilters(search=s.search), 1),
        ("CONFIRMED+paid, sessions next 30 days",
         BookingFilters(statuses=("CONFIRMED",), payment_statuses=("paid",), date_field="start",
                        date_from=s.today, date_to=s.today + timedelta(days=30)), 1),
    ]
    for label, filters, page in variants:
        add("Bookings", f"list_bookings({label})",
            lambda db, f=filters, p=page: reporting.list_bookings(db, v, f, p, PAGE_SIZE))
    add("Booking detail", "booking_detail(canceled, part-refunded)",
        lambda db: reporting.booking_detail(db, v, s.detail_booking),
        "" if v.is_admin else "reporting API; builders have no detail page")

    add("Builders and prices", "builders_and_prices()", lambda db: reporting.builders_and_prices(db, v))
    if v.is_admin:
        add("Refunds", "refund_ledger(page 1)", lambda db: reporting.refund_ledger(db, v, page=1, page_size=PAGE_SIZE))
        add("Failures", "failed_outbox()", lambda db: reporting.failed_outbox(db, v))
        add("Failures", "failed_webhooks()", lambda db: reporting.failed_webhooks(db, v))
    return cases


# ---------------------------------------------------------------- capture, compile, time
def capture_statements(engine, call: Callable[[Any], Any]) -> list[Any]:
    """Run `call` once in a read-only session; return the SQLAlchemy statements it executed."""
    from sqlalchemy import event
    from sqlalchemy.sql import ClauseElement

    from core.db import session_scope

    seen: list[Any] = []

    def _before_execute(conn, clause, multiparams, params, execution_options):
        if not isinstance(clause, ClauseElement):
            return  # BEGIN / driver SQL
        values = multiparams[0] if multiparams and isinstance(multiparams[0], dict) else params
        seen.append(clause.params(values) if values else clause)

    event.listen(engine, "before_execute", _before_execute)
    try:
        with session_scope(engine, read_only=True) as session:
            call(session)
    finally:
        event.remove(engine, "before_execute", _before_execute)
    return seen


def literal_sql(engine, statement) -> str:
    return str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


class BareRunner:
    """Runs literal SQL strings on one raw DBAPI connection, the way a hand-written client would."""

    def __init__(self, engine):
        self.engine = engine
        self.connection = engine.raw_connection()
        # psycopg parses placeholders (and un-doubles the compiler's %%) only when given parameters.
        self.params: tuple | None = () if engine.dialect.name == "postgresql" else None

    def run(self, sql: str) -> int:
        cursor = self.connection.cursor()
        try:
            if self.params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, self.params)
            return len(cursor.fetchall())
        finally:
            cursor.close()

    def finish(self) -> None:
        # Autocommit on SQLite (isolation_level None); PostgreSQL: end the implicit transaction.
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()

    def explain(self, sql: str) -> str:
        prefix = "EXPLAIN QUERY PLAN " if self.engine.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
        cursor = self.connection.cursor()
        try:
            if self.params is None:
                cursor.execute(prefix + sql)
            else:
                cursor.execute(prefix + sql, self.params)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        self.finish()
        if self.engine.dialect.name == "sqlite":
            # (id, parent, notused, detail): indent by depth.
            depth = {0: -1}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + detail)
            return "\n".join(lines)
        return "\n".join(row[0] for row in rows)


def measure(engine, case: Case, repeat: int, bare: BareRunner, *, explain: bool = False) -> Result:
    from core.db import session_scope

    statements = capture_statements(engine, case.call)  # also the warm-up of the function
    sqls = [literal_sql(engine, s) for s in statements]
    rows = 0
    for sql in sqls:  # warm-up of the bare side
        rows += bare.run(sql)
    bare.finish()
    fn_runs: list[float] = []
    bare_runs: list[float] = []
    per_statement: list[list[float]] = [[] for _ in sqls]
    for _ in range(repeat):
        started = time.perf_counter()
        with session_scope(engine, read_only=True) as session:
            case.call(session)
        fn_runs.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        for n, sql in enumerate(sqls):
            one = time.perf_counter()
            bare.run(sql)
            per_statement[n].append((time.perf_counter() - one) * 1000)
        bare.finish()
        bare_runs.append((time.perf_counter() - started) * 1000)
    if explain:
        for n, sql in enumerate(sqls, 1):
            print(f"\n-- {case.label} — statement {n}/{len(sqls)}\n{sql}\n{bare.explain(sql)}")
    return Result(case.viewer, case.page, case.function, len(sqls), rows,
                  statistics.median(fn_runs), statistics.median(bare_runs), fn_runs, bare_runs,
                  [statistics.median(t) for t in per_statement], sqls, case.note)


def viewers(engine, which: list[str], builder_email: str):
    from core.db import session_scope
    from core.auth import viewer_for_email

    emails = {"admin": "admin@demo.test", "builder": builder_email}
    out = []
    with session_scope(engine, read_only=True) as session:
        for kind in which:
            viewer = viewer_for_email(session, emails[kind])
            if viewer is None:
                raise SystemExit(f"no dashboard user {emails[kind]} — run `python -m core demo-data` first")
            out.append((kind, viewer))
    return out


def booking_count(engine) -> int:
    from sqlalchemy import func, select

    from core.db import session_scope
    from core.models import Booking

    with session_scope(engine, read_only=True) as session:
        return int(session.execute(select(func.count()).select_from(Booking)).scalar_one())


def open_engine(url: str, pg_settings: list[str] | None = None):
    """The application's engine for `url`; with `pg_settings` ("jit=off"), each PostgreSQL
    connection SETs them first — to measure what a server setting would change."""
    from sqlalchemy import event

    from core.db import make_engine

    engine = make_engine(url)
    if pg_settings and engine.dialect.name == "postgresql":
        @event.listens_for(engine, "connect")
        def _set(dbapi_connection, _record):
            with dbapi_connection.cursor() as cursor:
                for setting in pg_settings:
                    name, value = setting.split("=", 1)
                    cursor.execute(f"SET {name.strip()} = '{value.strip()}'")
            dbapi_connection.commit()
    return engine


def run(url: str, *, repeat: int, which: list[str], builder_email: str, deep_page: int,
        only: list[str] | None = None, explain: bool = False, progress_prefix: str = "",
        overview_days: int = 365, pg_settings: list[str] | None = None,
        reporting_module: str | None = None) -> list[Result]:
    os.environ["DATABASE_URL"] = url
    from core import config
    from core.db import session_scope

    config.get_settings.cache_clear()
    engine = open_engine(url, pg_settings)
    reporting = importlib.import_module(reporting_module) if reporting_module else None
    try:
        cases: list[Case] = []
        for kind, viewer in viewers(engine, which, builder_email):
            with session_scope(engine, read_only=True) as session:
                cases += build_cases(session, viewer, kind, deep_page, overview_days=overview_days,
                                     reporting=reporting)
        if only:
            cases = [c for c in cases if any(word.lower() in c.label.lower() for word in only)]
        bare = BareRunner(engine)
        results = []
        try:
            for n, case in enumerate(cases, 1):
                log(f"{progress_prefix}[{n}/{len(cases)}] {case.label} …")
                result = measure(engine, case, repeat, bare, explain=explain)
                log(f"{progress_prefix}    {result.fn_ms:9.1f} ms   bare {result.bare_ms:9.1f} ms   "
                    f"×{result.ratio:.2f}   ({result.statements} statements, {result.rows:,} rows)")
                results.append(result)
        finally:
            bare.close()
        return results
    finally:
        engine.dispose()


# ---------------------------------------------------------------- output
def _ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def table(results: list[Result]) -> str:
    headers = ["viewer", "page", "function", "stmts", "median ms", "bare SQL ms", "ratio"]
    body = [[r.viewer, r.page, r.function + (" ¹" if r.note else ""), str(r.statements), _ms(r.fn_ms),
             _ms(r.bare_ms), f"{r.ratio:.2f}"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(headers)]
    right = {3, 4, 5, 6}

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    out = [line(headers), "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                                         for i, w in enumerate(widths)) + "|"]
    out += [line(row) for row in body]
    return "\n".join(out)


def page_totals(results: list[Result]) -> list[tuple[str, str, float, float]]:
    """Per viewer and page: the sum of the calls one visit makes.

    A bookings view is its filter's list call plus the two option lists; a deep page also needs
    page 1 of the same filter (the dashboard asks for it to learn the total), counted here.
    """
    out = []
    by_page: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        by_page.setdefault((r.viewer, r.page), []).append(r)
    for (viewer, page), rs in by_page.items():
        if page != "Bookings":
            out.append((viewer, page, sum(r.fn_ms for r in rs), sum(r.bare_ms for r in rs)))
            continue
        options = [r for r in rs if not r.function.startswith("list_bookings")]
        lists = [r for r in rs if r.function.startswith("list_bookings")]
        base_fn = sum(r.fn_ms for r in options)
        base_bare = sum(r.bare_ms for r in options)
        for r in lists:
            fn, bare = base_fn + r.fn_ms, base_bare + r.bare_ms
            inner = r.function[len("list_bookings("):-1]
            if ", page " in inner and not inner.endswith("page 1"):
                first = next((x for x in lists if x.function == r.function.rsplit(", page ", 1)[0] + ", page 1)"), None)
                if first:
                    fn, bare = fn + first.fn_ms, bare + first.bare_ms
            out.append((viewer, f"Bookings: {inner}", fn, bare))
    return out


def totals_table(results: list[Result]) -> str:
    rows = page_totals(results)
    headers = ["viewer", "page visit", "median ms", "bare SQL ms", "ratio", "< 1 s"]
    body = [[v, p, _ms(fn), _ms(bare), f"{fn / bare:.2f}" if bare else "-", "yes" if fn < PG_GOAL_MS else "NO"]
            for v, p, fn, bare in rows]
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(headers)]
    right = {2, 3, 4}

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    out = [line(headers), "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                                         for i, w in enumerate(widths)) + "|"]
    return "\n".join(out + [line(row) for row in body])


def describe(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite:" + url.split("///", 1)[-1]
    return "postgresql:" + url.rsplit("/", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=not os.environ.get("DATABASE_URL"))
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the median is shown")
    parser.add_argument("--viewer", default="admin,builder", help="admin, builder or both (comma-separated)")
    parser.add_argument("--builder-email", default="ada@demo.test")
    parser.add_argument("--deep-page", type=int, default=200, help="the page number of the deep-page cases")
    parser.add_argument("--only", default="", help="run only cases whose label contains one of these |-separated strings")
    parser.add_argument("--overview-days", type=int, default=365,
                        help="the overview's period in days (365: 'Last 12 months'; the page opens on 90)")
    parser.add_argument("--pg-set", default="", help="PostgreSQL settings for every connection, e.g. "
                        "'jit=off,work_mem=64MB' (to measure a server setting; the default is the server's)")
    parser.add_argument("--explain", action="store_true", help="print each statement's query plan")
    parser.add_argument("--reporting-module", help="call this module's reporting functions instead of "
                        "core.reporting (e.g. a copy of the code before a change, on PYTHONPATH)")
    parser.add_argument("--json", type=Path, help="write the results here (default: var/bench/results/…)")
    args = parser.parse_args(argv)

    which = [w.strip() for w in args.viewer.split(",") if w.strip()]
    only = [w.strip() for w in args.only.split("|") if w.strip()] or None
    url = args.database_url
    os.environ["DATABASE_URL"] = url
    from core.db import make_engine
    engine = make_engine(url)
    dialect = engine.dialect.name
    count = booking_count(engine)
    engine.dispose()
    log(f"dashboard data: {describe(url)} ({count:,} bookings), {args.repeat} runs each, viewers {which}")
    started = time.monotonic()
    pg_settings = [w.strip() for w in args.pg_set.split(",") if w.strip()] or None
    load_before = os.getloadavg()
    results = run(url, repeat=args.repeat, which=which, builder_email=args.builder_email,
                  deep_page=args.deep_page, only=only, explain=args.explain,
                  overview_days=args.overview_days, pg_settings=pg_settings,
                  reporting_module=args.reporting_module)
    load_after = os.getloadavg()
    elapsed = time.monotonic() - started

    settings = f", SET {', '.join(pg_settings)}" if pg_settings else ""
    if args.reporting_module:
        settings += f", functions of {args.reporting_module}"
    print(f"\n## {describe(url)} — {count:,} bookings — median of {args.repeat} runs{settings}\n")
    print(f"load average (1 min) {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end, "
          f"{os.cpu_count()} CPUs\n")
    print(table(results))
    if any(r.note for r in results):
        print("\n¹ " + "; ".join(sorted({r.note for r in results if r.note})))
    print("\nPer page visit (sum of the calls it makes):\n")
    print(totals_table(results))
    worst = max(results, key=lambda r: r.ratio) if results else None
    if worst:
        print(f"\nworst ratio ×{worst.ratio:.2f}: {worst.viewer} · {worst.page} · {worst.function}; "
              f"slowest call {max(r.fn_ms for r in results):,.0f} ms; elapsed {elapsed:.0f}s")

    out = args.json or RESULTS_DIR / f"dashboard_data-{dialect}-{count}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"database": describe(url), "bookings": count, "repeat": args.repeat,
                               "pg_settings": pg_settings, "load": [load_before, load_after],
                               "results": [asdict(r) | {"ratio": r.ratio} for r in results]}, indent=1, default=str))
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
