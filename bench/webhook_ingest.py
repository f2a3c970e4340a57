"""Webhook ingest: distinct, correctly signed Calendly `invitee.created` and Stripe
`checkout.session.completed` events against one `web` process, next to the same server's floor.

    .venv/bin/python -m bench.webhook_ingest --db sqlite,postgres --concurrency 1,16,64 --requests 2000
    .venv/bin/python -m bench.webhook_ingest --db postgres --prefill 10k,100k,1m --concurrency 16   # growth
    .venv/bin/python -m bench.webhook_ingest --db postgres --concurrency 16 --repeat 1 --profile    # py-spy

For every (engine, concurrency, repeat, provider): seed N fresh bookings in the state the event
expects, send N events to the floor (`/api/webhooks/_floor/{provider}`: signature check, 200),
then the same N bodies (freshly signed) to the real endpoint, then check the database: every
event answered 200, every booking moved exactly once, one processed webhook row per event, one
payment per Stripe event. The outbox is not run (RUN_OUTBOX_AFTER_REQUEST=false, no worker).
"""
from __future__ import annotations

import argparse
import sys
import time

from sqlalchemy import select

from bench.checks import report_checks, verify
from bench.console import RESULTS_DIR, csv_ints, csv_words, log, machine_note, markdown_table, save_results
from bench.databases import (count_rows, database_exists, database_url, open_engine, pg_sessions,
                             recreate_database, run_core)
from bench.load import Job, drive, make_jobs, median
from bench.payloads import PAYLOAD, floor_path, full_path
from bench.profiling import start_profile, stop_profile, summarize_profile
from bench.seeding import delete_bookings, ensure_catalog, new_tag, seed_bookings
from bench.servers import Server, start_servers

GOAL_RATIO = 0.5
GOAL_P99_MS = 50.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both (comma-separated)")
    parser.add_argument("--concurrency", default="1,16,64", help="requests in flight, e.g. 1,16,64")
    parser.add_argument("--requests", type=int, default=2000, help="events per provider per phase")
    parser.add_argument("--providers", default="calendly,stripe")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting; the tables show medians")
    parser.add_argument("--prefill", default="0",
                        help="bookings already in the database (growth), e.g. 10k,100k,1m; each pre-filled "
                             "database is built once with `python -m core demo-data` and reused")
    parser.add_argument("--rebuild-prefill", action="store_true", help="rebuild pre-filled databases")
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--profile", action="store_true",
                        help="after the measured runs, one extra full run per provider under py-spy "
                             "(at --profile-concurrency); not counted in the figures")
    parser.add_argument("--profile-concurrency", type=int, default=16)
    parser.add_argument("--profile-mode", choices=["gil", "cpu", "wall"], default="gil",
                        help="gil: samples of the GIL holder (Python CPU; default); cpu: running threads; "
                             "wall: all threads (py-spy --idle)")
    args = parser.parse_args(argv)
    args.db = csv_words(args.db)
    args.concurrency = csv_ints(args.concurrency)
    args.providers = csv_words(args.providers)
    args.prefill = csv_ints(args.prefill)
    for provider in args.providers:
        if provider not in PAYLOAD:
            parser.error(f"unknown provider {provider}")
    return args


# ---------------------------------------------------------------- databases
def prepare_database(engine_kind: str, prefill: int, rebuild: bool) -> str:
    if not prefill:
        url = database_url(engine_kind, "bench")
        log(f"== {engine_kind}: fresh database {url}")
        recreate_database(url)
        return url
    url = database_url(engine_kind, f"bench_prefill_{prefill}")
    if not rebuild and database_exists(url) and _prefill_marker(url) == prefill:
        log(f"== {engine_kind}: reusing pre-filled database {url} ({prefill:,} demo bookings)")
        return url
    log(f"== {engine_kind}: building {url} with {prefill:,} demo bookings (once; reused afterwards)")
    started = time.monotonic()
    recreate_database(url)
    run_core(url, "demo-data", "--bookings", str(prefill))
    engine = open_engine(url)
    from core.db import session_scope
    from core.models import SystemState
    with session_scope(engine) as session:
        session.add(SystemState(key="bench.prefill", value=str(prefill)))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    log(f"   built in {time.monotonic() - started:.0f}s")
    return url


def _prefill_marker(url: str) -> int | None:
    engine = open_engine(url)
    try:
        from core.models import SystemState
        with engine.connect() as conn:
            value = conn.execute(select(SystemState.value).where(SystemState.key == "bench.prefill")).scalar()
        return int(value) if value else None
    except Exception:
        return None
    finally:
        engine.dispose()


# ---------------------------------------------------------------- one run
def warm_up(server: Server, engine, catalog, providers: list[str], concurrency: int, cleanup: bool) -> None:
    """Imports, compiled-statement caches and pooled connections, before anything is measured."""
    for provider in providers:
        bookings = seed_bookings(engine, catalog, provider, new_tag(), 200)
        drive([server], make_jobs(bookings, provider, floor_path(provider)), concurrency, "warm-up floor")
        drive([server], make_jobs(bookings, provider, full_path(provider)), concurrency, "warm-up full")
        if cleanup:
            delete_bookings(engine, [b.id for b in bookings])


def one_run(server: Server, engine, catalog, provider: str, requests: int, concurrency: int,
            label: str, profile_to=None, profile_mode: str = "gil") -> dict:
    tag = new_tag()
    bookings = seed_bookings(engine, catalog, provider, tag, requests)
    floor_jobs = make_jobs(bookings, provider, floor_path(provider))
    full_jobs = [Job(job.target, full_path(provider), provider, job.body) for job in floor_jobs]
    floor = drive([server], floor_jobs, concurrency, f"{label} floor")
    profiler = start_profile(server.pid, profile_to, mode=profile_mode) if profile_to else None
    sessions_before = pg_sessions(engine)
    try:
        full = drive([server], full_jobs, concurrency, f"{label} full")
    finally:
        stop_profile(profiler)
    if sessions_before is not None:
        time.sleep(1.2)  # pg_stat_database is flushed about once a second
        # Our own checking connection adds a few; the server's pool churn is the rest.
        new_connections = pg_sessions(engine) - sessions_before
    else:
        new_connections = None
    checks = verify(engine, provider, [b.id for b in bookings], result=full)
    ok = report_checks(checks) and floor.ok == floor.count
    if floor.ok != floor.count:
        log(f"      CHECK FAILED: floor answered 200 to {floor.ok}/{floor.count}")
    if full.errors or floor.errors:
        log(f"      transport errors: {full.errors + floor.errors}")
    ratio = full.throughput / floor.throughput if floor.throughput else 0.0
    log(f"    {label}: full {full.throughput:,.0f} req/s p50 {full.pct(50):.1f} ms p99 {full.pct(99):.1f} ms "
          f"({full.cpu_ms_per_request:.2f} ms server CPU/req) | floor {floor.throughput:,.0f} req/s "
          f"p50 {floor.pct(50):.1f} ms p99 {floor.pct(99):.1f} ms ({floor.cpu_ms_per_request:.2f} ms server CPU/req, "
          f"load generator {floor.loadgen_cpu * 1000 / floor.count:.2f} ms CPU/req) | ratio {ratio:.2f} | "
          f"machine busy {full.machine_busy:.0%}"
          + (f" | {new_connections} new PG connections" if new_connections is not None else ""))
    return {"full": full.summary(), "floor": floor.summary(), "ratio": ratio, "checks_ok": ok,
            "new_pg_connections": new_connections,
            "booking_ids": [b.id for b in bookings],
            "checks": [{"name": k.name, "expected": k.expected, "actual": k.actual} for k in checks]}


# ---------------------------------------------------------------- summary
def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["db"], run["prefill"], run["provider"], run["concurrency"]), []).append(run)
    rows = []
    for (db, prefill, provider, concurrency), items in groups.items():
        def med(side: str, key: str) -> float:
            return median([item[side][key] for item in items])
        rows.append({
            "db": db, "prefill": prefill, "provider": provider, "concurrency": concurrency, "runs": len(items),
            "full_rps": med("full", "req_per_s"), "full_p50": med("full", "p50_ms"), "full_p99": med("full", "p99_ms"),
            "full_cpu": med("full", "server_cpu_ms_per_req"),
            "floor_rps": med("floor", "req_per_s"), "floor_p50": med("floor", "p50_ms"),
            "floor_p99": med("floor", "p99_ms"), "floor_cpu": med("floor", "server_cpu_ms_per_req"),
            "ratio": median([item["ratio"] for item in items]),
            "checks": "ok" if all(item["checks_ok"] for item in items) else "FAILED",
            "spread": _spread([item["full"]["req_per_s"] for item in items]),
        })
    return rows


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    return f"{min(values):,.0f}–{max(values):,.0f}"


def print_summary(rows: list[dict], repeat: int) -> None:
    growth = any(row["prefill"] for row in rows)
    headers = ["engine"] + (["bookings in db"] if growth else []) + [
        "event", "conc.", "full req/s", "full p50 ms", "full p99 ms", "floor req/s", "floor p50 ms",
        "floor p99 ms", "full/floor", "CPU ms/req full", "CPU ms/req floor", "full req/s range", "checks"]
    table = []
    for row in rows:
        table.append([row["db"]] + ([row["prefill"]] if growth else []) + [
            row["provider"], row["concurrency"], row["full_rps"], row["full_p50"], row["full_p99"], row["floor_rps"],
            row["floor_p50"], row["floor_p99"], f"{row['ratio']:.2f}", row["full_cpu"], row["floor_cpu"],
            row["spread"], row["checks"]])
    print()
    print(f"Webhook ingest, one `web` process (medians of {repeat} run(s); CPU = the server process's "
          "user+system CPU per request; outbox not run)")
    print(markdown_table(headers, table))
    goals = [row for row in rows if row["db"] == "postgres" and row["concurrency"] == 16]
    for row in goals:
        verdict = "met" if row["ratio"] >= GOAL_RATIO and row["full_p99"] < GOAL_P99_MS else "MISSED"
        print(f"goal (postgres, c=16, {row['provider']}{', prefill ' + str(row['prefill']) if row['prefill'] else ''}): "
              f"full/floor {row['ratio']:.2f} (>= {GOAL_RATIO}), p99 {row['full_p99']:.1f} ms (< {GOAL_P99_MS:.0f}) "
              f"-> {verdict}")
    print(machine_note())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs, profiles = [], []
    started = time.monotonic()
    for engine_kind in args.db:
        for prefill in args.prefill:
            url = prepare_database(engine_kind, prefill, args.rebuild_prefill)
            engine = open_engine(url)
            catalog = ensure_catalog(engine)
            base_rows = count_rows(engine, "bookings")
            log(f"   {base_rows:,} bookings in the database; starting web on port {args.port}")
            server = start_servers(url, [args.port])[0]
            try:
                warm_up(server, engine, catalog, args.providers, max(args.concurrency), cleanup=bool(prefill))
                for concurrency in args.concurrency:
                    for repeat in range(args.repeat):
                        for provider in args.providers:
                            label = f"{engine_kind} {provider} c={concurrency} run {repeat + 1}/{args.repeat}"
                            run = one_run(server, engine, catalog, provider, args.requests, concurrency, label)
                            if prefill:
                                delete_bookings(engine, run["booking_ids"])
                            run.pop("booking_ids")
                            runs.append({"db": engine_kind, "prefill": prefill, "provider": provider,
                                         "concurrency": concurrency, "repeat": repeat, **run})
                if args.profile:
                    for provider in args.providers:
                        out = RESULTS_DIR / f"profile-{engine_kind}-{prefill}-{provider}-c{args.profile_concurrency}.txt"
                        label = f"{engine_kind} {provider} c={args.profile_concurrency} PROFILED ({args.profile_mode})"
                        run = one_run(server, engine, catalog, provider, args.requests, args.profile_concurrency,
                                      label, profile_to=out, profile_mode=args.profile_mode)
                        if prefill:
                            delete_bookings(engine, run["booking_ids"])
                        summary = summarize_profile(out)
                        profiles.append((label, out, summary))
                if server.errors_logged():
                    log(f"   the server logged {server.errors_logged()} traceback(s): see {server.log_path}")
            finally:
                server.stop()
                engine.dispose()
    rows = summarise(runs)
    for label, out, summary in profiles:
        print(f"\nProfile: {label} (py-spy raw stacks in {out})\n{summary}")
    print_summary(rows, args.repeat)
    path = save_results("webhook_ingest", {"args": vars(args), "runs": runs, "summary": rows,
                                             "machine": machine_note()})
    print(f"raw results: {path}; total time {time.monotonic() - started:.0f}s")
    return 0 if all(row["checks"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
