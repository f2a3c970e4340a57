"""How the dashboard's data cost grows with the data: the `bench.dashboard_data` cases at several sizes.

    .venv/bin/python -m bench.growth_dashboard --db postgres --repeat 3
    .venv/bin/python -m bench.growth_dashboard --db sqlite --repeat 3
    .venv/bin/python -m bench.growth_dashboard --size 10k=sqlite:////tmp/a.db --size 1m=sqlite:////tmp/b.db

The data sets are `python -m core demo-data --bookings N` databases (see bench/README.md). For each
call it prints the median at every size and the growth factor between sizes (×10 data → ×10 time is
linear). A list call is two statements — the COUNT of its filter (it reads every matching index
entry, so it grows with the data) and the page itself (an index range cut by LIMIT, which should
not) — so the page statement's bare time is shown on its own as well.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.console import RESULTS_DIR, log
from bench.dashboard_data import _ms, booking_count, describe, run

DEFAULT_SIZES = {
    "postgres": [("10k", "postgresql://postgres@127.0.0.1:5432/bench_dash_10k"),
                 ("100k", "postgresql://postgres@127.0.0.1:5432/bench_dash_100k"),
                 ("1m", "postgresql://postgres@127.0.0.1:5432/bench_dash")],
    "sqlite": [("10k", "sqlite:////tmp/dash10k.db"), ("100k", "sqlite:////tmp/dash100k.db"),
               ("1m", "sqlite:////tmp/demo1m.db")],
}


def growth_table(sizes: list[tuple[str, int]], by_size: dict[str, list]) -> str:
    labels = [label for label, _ in sizes]
    first = by_size[labels[0]]
    headers = ["viewer", "page", "function"] + [f"{label} ms" for label in labels]
    headers += [f"×{b}/{a}" for a, b in zip(labels, labels[1:])]
    headers += [f"page stmt {label}" for label in labels]
    keyed = {label: {(r.viewer, r.page, r.function): r for r in results} for label, results in by_size.items()}
    rows = []
    for result in first:
        key = (result.viewer, result.page, result.function)
        if not all(key in keyed[label] for label in labels):
            continue
        cells = [result.viewer, result.page, result.function]
        values = [keyed[label][key].fn_ms for label in labels]
        cells += [_ms(v) for v in values]
        cells += [f"{b / a:.1f}" if a else "-" for a, b in zip(values, values[1:])]
        if result.function.startswith("list_bookings"):
            cells += [_ms(keyed[label][key].bare_by_statement_ms[-1]) for label in labels]
        else:
            cells += ["" for _ in labels]
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i >= 3 else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=sorted(DEFAULT_SIZES), default="postgres",
                        help="which default data sets (10k, 100k, 1m) to use")
    parser.add_argument("--size", action="append", default=[], metavar="LABEL=URL",
                        help="a data set, smallest first (repeat); replaces the defaults of --db")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--viewer", default="admin,builder")
    parser.add_argument("--builder-email", default="ada@demo.test")
    parser.add_argument("--deep-page", type=int, default=200)
    parser.add_argument("--only", default="", help="|-separated strings; cases whose label contains one")
    parser.add_argument("--pg-set", default="", help="PostgreSQL settings per connection, e.g. jit=off")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    sizes = [tuple(s.split("=", 1)) for s in args.size] if args.size else DEFAULT_SIZES[args.db]
    which = [w.strip() for w in args.viewer.split(",") if w.strip()]
    only = [w.strip() for w in args.only.split("|") if w.strip()] or None
    pg_settings = [w.strip() for w in args.pg_set.split(",") if w.strip()] or None
    counted: list[tuple[str, int]] = []
    by_size: dict[str, list] = {}
    started = time.monotonic()
    for label, url in sizes:
        os.environ["DATABASE_URL"] = url
        from core.db import make_engine
        engine = make_engine(url)
        count = booking_count(engine)
        engine.dispose()
        log(f"growth: {label} = {describe(url)} ({count:,} bookings)")
        by_size[label] = run(url, repeat=args.repeat, which=which, builder_email=args.builder_email,
                             deep_page=args.deep_page, only=only, progress_prefix=f"  {label} ",
                             pg_settings=pg_settings)
        counted.append((label, count))
    names = ", ".join(f"{label} = {count:,} bookings" for label, count in counted)
    settings = f", SET {', '.join(pg_settings)}" if pg_settings else ""
    print(f"\n## Growth — {names} — median of {args.repeat} runs{settings}\n")
    print(f"load average (1 min) {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs\n")
    print(growth_table(counted, by_size))
    print(f"\nelapsed {time.monotonic() - started:.0f}s")
    kind = "sqlite" if sizes[0][1].startswith("sqlite") else "postgresql"
    out = args.json or RESULTS_DIR / f"growth_dashboard-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "sizes": counted, "repeat": args.repeat, "pg_settings": pg_settings,
        "results": {label: [r.__dict__ | {"ratio": r.ratio} for r in rs] for label, rs in by_size.items()},
    }, indent=1, default=str))
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
