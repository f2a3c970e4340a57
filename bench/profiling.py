"""py-spy profiles of a server during a run, summarised by layer and by function."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.console import log


def py_spy_path() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def start_profile(pid: int, out: Path, *, rate: int = 250, mode: str = "gil") -> subprocess.Popen | None:
    """py-spy record of a server until stopped; raw collapsed stacks in `out`.

    mode "gil": only the thread holding the GIL (where the Python CPU goes; the default, because
    py-spy's idle detection does not see threads blocked in psycopg's wait as idle); "cpu": every
    thread py-spy thinks is running; "wall": every thread, idle or not (`--idle`).
    """
    tool = py_spy_path()
    if tool is None:
        log("   py-spy is not installed in the venv (pip install py-spy); no profile")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [tool, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
               "--output", str(out), "--nonblocking"]
    if mode == "gil":
        command.append("--gil")
    elif mode == "wall":
        command.append("--idle")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    return proc


def stop_profile(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    import signal
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def summarize_profile(path: Path, top: int = 25) -> str:
    """Inclusive and self time per function from py-spy's collapsed stacks."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return f"(no profile written at {path})"
    inclusive: Counter = Counter()
    own: Counter = Counter()
    buckets: Counter = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")]
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
        buckets[_bucket(stack)] += count
    if not total:
        return "(empty profile)"

    def table(counter: Counter, title: str) -> list[str]:
        out = [f"  {title}"]
        for name, count in counter.most_common(top):
            out.append(f"    {100 * count / total:5.1f}%  {name}")
        return out

    ours = Counter({name: count for name, count in inclusive.items()
                    if "(core/" in name or "(webhook_service/" in name})
    lines_out = [f"  {total:,} samples"]
    lines_out += table(buckets, "where the CPU goes (the deepest matching layer of each stack)")
    lines_out += table(ours, "inclusive, the project's own functions (core/, webhook_service/)")
    lines_out += table(own, "self (function at the top of the stack)")
    return "\n".join(lines_out)


def _short(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file_part = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file_part:
            file_part = file_part.split(marker, 1)[1]
    return f"{name} ({file_part})"


BUCKETS = [
    ("JSON / payload parsing", ("json/decoder", "json/__init__", "webhook_payload.py", "_stripe_parse")),
    ("signature check", ("signature.py", "stripe/_webhook")),
    ("logging", ("logging/",)),
    ("psycopg (driver, network)", ("psycopg/",)),
    ("sqlite3 driver", ("sqlite3/", "pysqlite")),
    ("SQLAlchemy ORM/Core", ("sqlalchemy/",)),
    ("domain code (core/)", ("core/",)),
    ("FastAPI / Starlette / pydantic", ("fastapi/", "starlette/", "pydantic")),
    ("uvicorn / h11 / asyncio (HTTP)", ("uvicorn/", "h11/", "asyncio/")),
    ("anyio threadpool", ("anyio/",)),
]


def _bucket(stack: str) -> str:
    # The deepest (most specific) layer wins: a psycopg call made by SQLAlchemy counts as psycopg.
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, markers in BUCKETS:
            if any(marker in frame for marker in markers):
                return name
    return "other"
