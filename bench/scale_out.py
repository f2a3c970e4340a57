"""Scale-out: the webhook load spread round-robin over 1, 2 and 4 separate `web` processes on one
PostgreSQL database, and a phase that sends every event twice, to two different processes.

    .venv/bin/python -m bench.scale_out --processes 1,2,4
    .venv/bin/python -m bench.scale_out --processes 1,2 --compare-workers     # + the --workers trap

Each process is the Procfile's single-worker uvicorn on its own port (as behind a load balancer);
the load generator (this process) keeps one keep-alive connection per in-flight slot and deals
requests round-robin. Separate single-worker processes avoid the multi-worker Nagle trap (see
README): `--compare-workers` measures the floor of one `uvicorn --workers 2` next to two separate
processes to show it. The outbox is not run (RUN_OUTBOX_AFTER_REQUEST=false, no worker).
"""
from __future__ import annotations

import argparse
import sys
import time

from bench.checks import report_checks, verify
from bench.console import csv_ints, csv_words, log, machine_note, markdown_table, save_results
from bench.databases import database_url, open_engine, recreate_database
from bench.load import Job, drive, make_jobs, median
from bench.payloads import PAYLOAD, floor_path, full_path
from bench.seeding import ensure_catalog, new_tag, seed_bookings
from bench.servers import start_servers


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight in total")
    parser.add_argument("--requests", type=int, default=2000, help="events per provider per phase")
    parser.add_argument("--providers", default="calendly,stripe")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duplicates", type=int, default=1000,
                        help="events (each sent twice) in the duplicate phase; 0 skips it")
    parser.add_argument("--port", type=int, default=8720, help="first port; process k listens on port+k")
    parser.add_argument("--compare-workers", action="store_true",
                        help="also measure the floor of `uvicorn --workers 2` (one socket, keep-alive)")
    args = parser.parse_args(argv)
    args.processes = csv_ints(args.processes)
    args.providers = csv_words(args.providers)
    return args


def measured_run(servers, engine, catalog, provider: str, requests: int, concurrency: int, label: str) -> dict:
    bookings = seed_bookings(engine, catalog, provider, new_tag(), requests)
    floor_jobs = make_jobs(bookings, provider, floor_path(provider), targets=len(servers))
    full_jobs = [Job(job.target, full_path(provider), provider, job.body) for job in floor_jobs]
    floor = drive(servers, floor_jobs, concurrency, f"{label} floor")
    full = drive(servers, full_jobs, concurrency, f"{label} full")
    checks = verify(engine, provider, [b.id for b in bookings], result=full)
    ok = report_checks(checks) and floor.ok == floor.count
    ratio = full.throughput / floor.throughput if floor.throughput else 0.0
    log(f"    {label}: full {full.throughput:,.0f} req/s p50 {full.pct(50):.1f} ms p99 {full.pct(99):.1f} ms "
          f"({full.cpu_ms_per_request:.2f} ms server CPU/req) | floor {floor.throughput:,.0f} req/s "
          f"p50 {floor.pct(50):.1f} ms p99 {floor.pct(99):.1f} ms | ratio {ratio:.2f} | "
          f"machine busy {full.machine_busy:.0%}")
    return {"full": full.summary(), "floor": floor.summary(), "ratio": ratio, "checks_ok": ok}


def duplicate_run(servers, engine, catalog, provider: str, events: int, concurrency: int, label: str) -> dict:
    """Every event twice, the copies next to each other in the stream and sent to two different
    processes (process i and i+1), so both are in flight together: one effect each."""
    bookings = seed_bookings(engine, catalog, provider, new_tag(), events)
    make = PAYLOAD[provider]
    count = len(servers)
    jobs = []
    for i, booking in enumerate(bookings):
        body = make(booking, i)
        jobs.append(Job(i % count, full_path(provider), provider, body))
        jobs.append(Job((i + 1) % count, full_path(provider), provider, body))
    result = drive(servers, jobs, concurrency, f"{label} duplicates")
    checks = verify(engine, provider, [b.id for b in bookings], result=result, sent_per_booking=2)
    ok = report_checks(checks)
    log(f"    {label} duplicates: {result.count} deliveries of {events} events, {result.throughput:,.0f} req/s "
          f"p50 {result.pct(50):.1f} ms p99 {result.pct(99):.1f} ms; answers {dict(result.summary()['outcomes'])}")
    return {"result": result.summary(), "checks_ok": ok,
            "checks": [{"name": k.name, "expected": k.expected, "actual": k.actual} for k in checks]}


def compare_workers(url: str, port: int, concurrencies: list[int], requests: int, engine, catalog) -> list[list]:
    """Floor latency on keep-alive connections: `--workers 2` (one shared socket) vs 2 processes."""
    rows = []
    bookings = seed_bookings(engine, catalog, "stripe", new_tag(), requests)
    for kind in ("uvicorn --workers 2", "2 separate processes"):
        if kind.startswith("uvicorn"):
            servers = start_servers(url, [port], workers=2)
        else:
            servers = start_servers(url, [port, port + 1])
        try:
            time.sleep(1.0)  # let every worker of the master start accepting
            targets = len(servers)
            drive(servers, make_jobs(bookings[:100], "stripe", floor_path("stripe"), targets), 4, "warm-up")
            for concurrency in concurrencies:
                result = drive(servers, make_jobs(bookings, "stripe", floor_path("stripe"), targets),
                                 concurrency, f"floor, {kind}, c={concurrency}")
                log(f"    floor, {kind}, c={concurrency}: {result.throughput:,.0f} req/s p50 {result.pct(50):.1f} ms "
                      f"p99 {result.pct(99):.1f} ms")
                rows.append([kind, concurrency, result.throughput, result.pct(50), result.pct(99),
                             "yes" if result.ok == result.count else "NO"])
        finally:
            for server in servers:
                server.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    url = database_url("postgres", "bench_scale")
    log(f"== postgres: fresh database {url}")
    recreate_database(url)
    engine = open_engine(url)
    catalog = ensure_catalog(engine)
    runs, dups = [], []
    for processes in args.processes:
        ports = [args.port + k for k in range(processes)]
        log(f"== {processes} web process(es) on ports {ports[0]}..{ports[-1]}, {args.concurrency} requests in flight")
        servers = start_servers(url, ports)
        try:
            for provider in args.providers:  # warm-up: imports, caches, pooled connections
                warm = seed_bookings(engine, catalog, provider, new_tag(), 100 * processes)
                drive(servers, make_jobs(warm, provider, floor_path(provider), processes), args.concurrency, "warm-up")
                drive(servers, make_jobs(warm, provider, full_path(provider), processes), args.concurrency, "warm-up")
            for repeat in range(args.repeat):
                for provider in args.providers:
                    label = f"P={processes} {provider} run {repeat + 1}/{args.repeat}"
                    run = measured_run(servers, engine, catalog, provider, args.requests, args.concurrency, label)
                    runs.append({"processes": processes, "provider": provider, "repeat": repeat, **run})
            if args.duplicates:
                for provider in args.providers:
                    dup = duplicate_run(servers, engine, catalog, provider, args.duplicates, args.concurrency,
                                        f"P={processes} {provider}")
                    dups.append({"processes": processes, "provider": provider, **dup})
            for server in servers:
                if server.errors_logged():
                    log(f"   web on port {server.port} logged {server.errors_logged()} traceback(s): {server.log_path}")
        finally:
            for server in servers:
                server.stop()
    workers_rows = []
    if args.compare_workers:
        log("== floor on keep-alive connections: uvicorn --workers 2 vs two single-worker processes")
        workers_rows = compare_workers(url, args.port, [1, args.concurrency], min(args.requests, 1000), engine, catalog)
    engine.dispose()

    rows = summarise(runs)
    print()
    print(f"Scale-out on PostgreSQL, {args.concurrency} requests in flight spread round-robin "
          f"(medians of {args.repeat} run(s); outbox not run)")
    print(markdown_table(
        ["processes", "event", "full req/s", "full p50 ms", "full p99 ms", "floor req/s", "floor p50 ms",
         "floor p99 ms", "full/floor", "CPU ms/req full", "full speed-up vs 1", "full req/s range", "checks"],
        [[r["processes"], r["provider"], r["full_rps"], r["full_p50"], r["full_p99"], r["floor_rps"], r["floor_p50"],
          r["floor_p99"], f"{r['ratio']:.2f}", r["full_cpu"], f"{r['speedup']:.2f}x", r["spread"], r["checks"]]
         for r in rows]))
    if dups:
        print()
        print("Duplicates: every event sent twice, to two different processes (the same one when P=1), "
              "both copies in flight together")
        print(markdown_table(
            ["processes", "event", "events", "deliveries", "req/s", "p50 ms", "p99 ms", "processed", "duplicate",
             "payments", "checks"],
            [[d["processes"], d["provider"], d["result"]["requests"] // 2, d["result"]["requests"],
              d["result"]["req_per_s"], d["result"]["p50_ms"], d["result"]["p99_ms"],
              d["result"]["outcomes"].get("processed", 0), d["result"]["outcomes"].get("duplicate", 0),
              _payments(d), "ok" if d["checks_ok"] else "FAILED"] for d in dups]))
    if workers_rows:
        print()
        print("Floor on keep-alive connections (the multi-worker Nagle trap)")
        print(markdown_table(["server", "conc.", "req/s", "p50 ms", "p99 ms", "all 200"], workers_rows))
    print(machine_note())
    path = save_results("scale_out", {"args": vars(args), "runs": runs, "duplicates": dups, "summary": rows,
                                        "workers": workers_rows, "machine": machine_note()})
    print(f"raw results: {path}; total time {time.monotonic() - started:.0f}s")
    ok = all(r["checks"] == "ok" for r in rows) and all(d["checks_ok"] for d in dups)
    return 0 if ok else 1


def _payments(dup: dict) -> str:
    for check in dup["checks"]:
        if check["name"].startswith("payments"):
            return str(check["actual"][0] if isinstance(check["actual"], (list, tuple)) else check["actual"])
    return "-"


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["processes"], run["provider"]), []).append(run)
    rows = []
    for (processes, provider), items in groups.items():
        def med(side: str, key: str) -> float:
            return median([item[side][key] for item in items])
        values = [item["full"]["req_per_s"] for item in items]
        rows.append({"processes": processes, "provider": provider, "full_rps": med("full", "req_per_s"),
                     "full_p50": med("full", "p50_ms"), "full_p99": med("full", "p99_ms"),
                     "full_cpu": med("full", "server_cpu_ms_per_req"), "floor_rps": med("floor", "req_per_s"),
                     "floor_p50": med("floor", "p50_ms"), "floor_p99": med("floor", "p99_ms"),
                     "ratio": median([item["ratio"] for item in items]),
                     "spread": f"{min(values):,.0f}–{max(values):,.0f}" if len(values) > 1 else "-",
                     "checks": "ok" if all(item["checks_ok"] for item in items) else "FAILED"})
    base = {r["provider"]: r["full_rps"] for r in rows if r["processes"] == min(x["processes"] for x in rows)}
    for row in rows:
        row["speedup"] = row["full_rps"] / base[row["provider"]] if base.get(row["provider"]) else 0.0
    return rows


if __name__ == "__main__":
    sys.exit(main())
