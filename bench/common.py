"""Shared by the benchmarks: databases, `web` server processes, seeded bookings, signed webhook
payloads, an async httpx load generator, correctness checks, percentiles and tables.

The servers are separate `uvicorn` processes (the Procfile's `web` command line, one worker each);
the load generator runs in this process, never inside a server. Servers run with
SANDBOX=true (default secrets), BENCH_FLOOR_ENDPOINT=true (the `/api/webhooks/_floor/{provider}`
endpoint: same server, same signed payloads, signature check only) and
RUN_OUTBOX_AFTER_REQUEST=false: the outbox (notifications, refunds, Calendly cancels) is the
worker's job and is NOT part of these measurements; its entries are written (in the webhook's
transaction) but not carried out.
"""
from __future__ import annotations

import asyncio
import atexit
import hashlib
import hmac
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, insert, select, text

REPO = Path(__file__).resolve().parent.parent
BENCH_VAR = REPO / "var" / "bench"
LOG_DIR = BENCH_VAR / "logs"
RESULTS_DIR = BENCH_VAR / "results"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def csv_ints(text_value: str) -> list[int]:
    out = []
    for part in text_value.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        scale = 1
        if part.endswith("k"):
            part, scale = part[:-1], 1000
        elif part.endswith("m"):
            part, scale = part[:-1], 1_000_000
        out.append(int(float(part) * scale))
    return out


def csv_words(text_value: str) -> list[str]:
    return [part.strip() for part in text_value.split(",") if part.strip()]


# ---------------------------------------------------------------- databases
def database_url(engine_kind: str, name: str) -> str:
    if engine_kind == "postgres":
        return f"{PG_ADMIN_URL.rstrip('/')}/{name}"
    if engine_kind == "sqlite":
        return f"sqlite:///{BENCH_VAR / (name + '.db')}"
    raise SystemExit(f"unknown --db {engine_kind!r} (sqlite or postgres)")


def recreate_database(url: str) -> None:
    """Drop and create the benchmark database, then migrate it with `python -m core migrate`."""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        import psycopg
        name = url.rsplit("/", 1)[1]
        if name in ("test", "postgres", "template0", "template1"):
            raise SystemExit(f"refusing to recreate database {name!r}")
        with psycopg.connect(f"{PG_ADMIN_URL.rstrip('/')}/postgres", autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    run_core(url, "migrate")


def database_exists(url: str) -> bool:
    if url.startswith("sqlite"):
        return Path(url.split("///", 1)[1]).exists()
    import psycopg
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{PG_ADMIN_URL.rstrip('/')}/postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def service_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a sandbox `web` process on `url` (nothing leaks in from ours)."""
    from core.config import Settings
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(DATABASE_URL=url, SANDBOX="true", BENCH_FLOOR_ENDPOINT="true",
               RUN_OUTBOX_AFTER_REQUEST="false", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def run_core(url: str, *args: str) -> None:
    """`python -m core …` against `url` (its progress goes to our stderr)."""
    subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=service_env(url), check=True)


def open_engine(url: str) -> Engine:
    """An engine for seeding and checking, configured as the service's own (core.db.make_engine)."""
    os.environ.setdefault("SANDBOX", "true")
    from core.db import make_engine
    return make_engine(url)


# ---------------------------------------------------------------- servers
class Server:
    """One `web` process: the Procfile's uvicorn command line on its own port, one worker."""

    def __init__(self, url: str, port: int, *, workers: int = 1, env: dict | None = None):
        self.port, self.base = port, f"http://127.0.0.1:{port}"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"web-{port}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        command = [sys.executable, "-m", "uvicorn", "--factory", "webhook_service.app:create_app",
                   "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        if workers != 1:
            command += ["--workers", str(workers)]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(command, cwd=REPO, env={**service_env(url), **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        atexit.register(self.stop)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"web on port {self.port} exited; see {self.log_path}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"web on port {self.port} did not answer /healthz; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """User + system CPU of this process and its children (a `--workers` master's workers)."""
        total = 0.0
        for pid in [self.pid, *_children(self.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            except (OSError, IndexError, ValueError):
                pass
        return total

    def errors_logged(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count("Traceback")
        except OSError:
            return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start_servers(url: str, ports: list[int], **kwargs) -> list[Server]:
    servers = [Server(url, port, **kwargs) for port in ports]
    try:
        for server in servers:
            server.wait_ready()
    except Exception:
        for server in servers:
            server.stop()
        raise
    return servers


def machine_cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, to report how loaded it was during a phase."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# ---------------------------------------------------------------- seeding
BENCH_BUILDER_EMAIL = "bench-builder@bench.test"


@dataclass(frozen=True)
class Catalog:
    builder_id: int
    session_type_id: int
    price_cents: int
    currency: str
    client_ids: tuple[int, ...]
    client_emails: tuple[str, ...]


def ensure_catalog(engine: Engine) -> Catalog:
    """A bench builder with one session type and a few clients (created once per database)."""
    from core.db import session_scope
    from core.models import Builder, Client, SessionType
    with session_scope(engine) as session:
        builder = session.execute(select(Builder).where(Builder.email == BENCH_BUILDER_EMAIL)).scalar_one_or_none()
        if builder is None:
            builder = Builder(name="Bench Builder", email=BENCH_BUILDER_EMAIL, timezone="UTC",
                              calendly_user_uri="http://127.0.0.1:8001/users/bench-builder")
            session.add(builder)
            session.flush()
            session.add(SessionType(builder_id=builder.id, name="Pair-programming session",
                                    calendly_event_type_uri="http://127.0.0.1:8001/event_types/bench-60",
                                    duration_minutes=60, price_cents=14900, currency="USD"))
            for n in range(20):
                session.add(Client(email=f"bench-client-{n}@bench.test", name=f"Bench Client {n}"))
            session.flush()
        session_type = session.execute(select(SessionType).where(SessionType.builder_id == builder.id)).scalar_one()
        clients = session.execute(select(Client.id, Client.email).where(Client.email.like("bench-client-%"))
                                  .order_by(Client.id)).all()
        return Catalog(builder.id, session_type.id, session_type.price_cents, session_type.currency,
                       tuple(c.id for c in clients), tuple(c.email for c in clients))


@dataclass(frozen=True)
class SeededBooking:
    id: str
    client_email: str
    amount_cents: int
    currency: str
    checkout_session_id: str | None


PROVIDER_DIGIT = {"calendly": "c", "stripe": "5"}
STATUS_BEFORE = {"calendly": "PENDING_SCHEDULING", "stripe": "PENDING_PAYMENT"}
STATUS_AFTER = {"calendly": "PENDING_PAYMENT", "stripe": "CONFIRMED"}
CAUSE = {"calendly": "invitee_created", "stripe": "payment_confirmed"}


def new_tag() -> str:
    return secrets.token_hex(3)


def seed_bookings(engine: Engine, catalog: Catalog, provider: str, tag: str, count: int) -> list[SeededBooking]:
    """`count` bookings ready for this provider's event, by bulk insert (with their history rows).

    calendly: PENDING_SCHEDULING (as `booking_service.start_booking` leaves them);
    stripe: PENDING_PAYMENT, scheduled, with a Checkout Session (as `open_checkout` leaves them).
    Ids are `bk_` + 20 hex digits like real ones: `<tag><provider digit><index>`.
    """
    from core.db import session_scope
    from core.models import Booking, BookingHistory
    now = datetime.now(timezone.utc)
    seeded, bookings, history = [], [], []
    for i in range(count):
        booking_id = f"bk_{tag}{PROVIDER_DIGIT[provider]}{i:013x}"
        client = i % len(catalog.client_ids)
        row = {
            "id": booking_id, "builder_id": catalog.builder_id, "session_type_id": catalog.session_type_id,
            "client_id": catalog.client_ids[client], "status": STATUS_BEFORE[provider],
            "amount_cents": catalog.price_cents, "currency": catalog.currency,
            "start_time": None, "end_time": None, "calendly_event_uri": None, "calendly_invitee_uri": None,
            "hold_expires_at": None, "stripe_checkout_session_id": None, "checkout_url": None,
            "checkout_expires_at": None, "created_at": now, "updated_at": now,
        }
        steps = [(None, "PENDING_SCHEDULING", "booking_started", "client")]
        checkout = None
        if provider == "stripe":
            start = (now + timedelta(days=3 + i % 20, hours=i % 8)).replace(minute=0, second=0, microsecond=0)
            event = f"http://127.0.0.1:8001/scheduled_events/ev{booking_id[3:]}"
            checkout = f"cs_test_{booking_id[3:]}{secrets.token_hex(8)}"
            expires = (now + timedelta(minutes=31)).replace(microsecond=0)
            row.update(start_time=start, end_time=start + timedelta(minutes=60), calendly_event_uri=event,
                       calendly_invitee_uri=f"{event}/invitees/in{booking_id[3:]}", hold_expires_at=expires,
                       stripe_checkout_session_id=checkout, checkout_expires_at=expires,
                       checkout_url=f"http://127.0.0.1:8002/checkout/{checkout}")
            steps += [("PENDING_SCHEDULING", "PENDING_PAYMENT", "invitee_created", "calendly:webhook"),
                      ("PENDING_PAYMENT", "PENDING_PAYMENT", "checkout_created", "system")]
        bookings.append(row)
        for before, after, cause, actor in steps:
            history.append({"booking_id": booking_id, "from_status": before, "to_status": after,
                            "cause": cause, "actor": actor, "details": None, "created_at": now})
        seeded.append(SeededBooking(booking_id, catalog.client_emails[client], catalog.price_cents,
                                    catalog.currency, checkout))
    with session_scope(engine) as session:
        for offset in range(0, len(bookings), 2000):
            session.execute(insert(Booking), bookings[offset:offset + 2000])
        for offset in range(0, len(history), 2000):
            session.execute(insert(BookingHistory), history[offset:offset + 2000])
    return seeded


def delete_bookings(engine: Engine, booking_ids: list[str]) -> None:
    """Remove seeded bookings and everything the webhooks wrote for them (keeps a pre-filled
    database at its size across runs)."""
    from core.db import session_scope
    tables = ("outbox", "notifications", "refunds", "payments", "booking_history", "webhook_events", "bookings")
    with session_scope(engine) as session:
        for offset in range(0, len(booking_ids), 500):
            chunk = booking_ids[offset:offset + 500]
            for table in tables:
                column = "id" if table == "bookings" else "booking_id"
                session.execute(text(f"DELETE FROM {table} WHERE {column} IN :ids")
                                .bindparams(_expanding("ids")), {"ids": chunk})


def _expanding(name: str):
    from sqlalchemy import bindparam
    return bindparam(name, expanding=True)


def pg_sessions(engine: Engine) -> int | None:
    """Connections ever opened to this PostgreSQL database (pg_stat_database.sessions; None on
    SQLite). The counter is flushed about once a second, so read it after a pause."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")).scalar()


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


# ---------------------------------------------------------------- payloads and signatures
CALENDLY_API = "http://127.0.0.1:8001"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def calendly_invitee_created(booking: SeededBooking, index: int) -> bytes:
    """A v2 `invitee.created` for this booking (utm_content = booking id), as Calendly sends it."""
    now = datetime.now(timezone.utc)
    event_uuid = secrets.token_hex(8) + booking.id[3:15]
    invitee_uuid = secrets.token_hex(8) + booking.id[15:]
    event_uri = f"{CALENDLY_API}/scheduled_events/{event_uuid}"
    invitee_uri = f"{event_uri}/invitees/{invitee_uuid}"
    start = (now + timedelta(days=2 + index % 20, hours=index % 9)).replace(minute=0, second=0, microsecond=0)
    body = {
        "created_at": _iso(now), "created_by": f"{CALENDLY_API}/users/bench-builder", "event": "invitee.created",
        "payload": {
            "cancel_url": f"https://calendly.com/cancellations/{invitee_uuid}",
            "created_at": _iso(now), "email": booking.client_email, "event": event_uri,
            "first_name": None, "last_name": None, "name": "Bench Client", "new_invitee": None,
            "no_show": None, "old_invitee": None, "payment": None,
            "questions_and_answers": [{"question": "What would you like to work on?",
                                       "answer": "A booking-to-payment flow", "position": 0}],
            "reconfirmation": None, "reschedule_url": f"https://calendly.com/reschedulings/{invitee_uuid}",
            "rescheduled": False, "routing_form_submission": None,
            "scheduled_event": {
                "uri": event_uri, "name": "Pair-programming session", "status": "active",
                "start_time": _iso(start), "end_time": _iso(start + timedelta(minutes=60)),
                "event_type": f"{CALENDLY_API}/event_types/bench-60",
                "location": {"type": "google_conference", "status": "pushed",
                             "join_url": f"https://meet.google.com/{event_uuid[:3]}-{event_uuid[3:7]}"},
                "invitees_counter": {"total": 1, "active": 1, "limit": 1},
                "created_at": _iso(now), "updated_at": _iso(now),
                "event_memberships": [{"user": f"{CALENDLY_API}/users/bench-builder",
                                       "user_email": BENCH_BUILDER_EMAIL, "user_name": "Bench Builder"}],
                "event_guests": [],
            },
            "status": "active", "text_reminder_number": None, "timezone": "Europe/London",
            "tracking": {"utm_campaign": None, "utm_source": "buildappswith", "utm_medium": None,
                         "utm_content": booking.id, "utm_term": None, "salesforce_uuid": None},
            "updated_at": _iso(now), "uri": invitee_uri,
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def stripe_checkout_completed(booking: SeededBooking, index: int) -> bytes:
    """A `checkout.session.completed` (paid) for this booking's Checkout Session; unique event id
    and payment intent."""
    now = int(time.time())
    intent = f"pi_{secrets.token_hex(12)}"
    session_object = {
        "id": booking.checkout_session_id, "object": "checkout.session", "after_expiration": None,
        "allow_promotion_codes": None, "amount_subtotal": booking.amount_cents,
        "amount_total": booking.amount_cents, "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None, "cancel_url": f"http://127.0.0.1:8000/payment/cancel?booking={booking.id}",
        "client_reference_id": booking.id, "consent": None, "created": now - 120,
        "currency": booking.currency.lower(), "customer": None, "customer_creation": "if_required",
        "customer_details": {"address": None, "email": booking.client_email, "name": "Bench Client",
                             "phone": None, "tax_exempt": "none", "tax_ids": []},
        "customer_email": booking.client_email, "expires_at": now + 1800, "invoice": None,
        "livemode": False, "locale": None,
        "metadata": {"booking_id": booking.id, "calendly_event_uri": f"{CALENDLY_API}/scheduled_events/ev{booking.id[3:]}"},
        "mode": "payment", "payment_intent": intent, "payment_link": None,
        "payment_method_collection": "if_required", "payment_method_types": ["card"],
        "payment_status": "paid", "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "setup_intent": None, "shipping_address_collection": None, "shipping_cost": None,
        "status": "complete", "submit_type": None, "subscription": None,
        "success_url": "http://127.0.0.1:8000/payment/success?session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted",
        "url": None,
    }
    event = {
        "id": f"evt_{secrets.token_hex(12)}", "object": "event", "api_version": "2025-09-30.clover",
        "created": now, "data": {"object": session_object}, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": "checkout.session.completed",
    }
    return json.dumps(event, separators=(",", ":")).encode()


PAYLOAD = {"calendly": calendly_invitee_created, "stripe": stripe_checkout_completed}


def sign(provider: str, body: bytes) -> dict[str, str]:
    """Headers of a freshly signed delivery (signed at send time: the timestamps stay in tolerance)."""
    from core.config import SANDBOX_SECRETS
    t = int(time.time())
    if provider == "calendly":
        key = SANDBOX_SECRETS["calendly_webhook_signing_key"].encode()
        digest = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return {"content-type": "application/json", "user-agent": "Calendly Webhooks",
                "calendly-webhook-signature": f"t={t},v1={digest}"}
    key = SANDBOX_SECRETS["stripe_webhook_secret"].encode()
    digest = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json; charset=utf-8",
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)", "stripe-signature": f"t={t},v1={digest}"}


def full_path(provider: str) -> str:
    return f"/api/webhooks/{provider}"


def floor_path(provider: str) -> str:
    return f"/api/webhooks/_floor/{provider}"


# ---------------------------------------------------------------- the load generator
@dataclass
class Job:
    target: int  # index into the base URLs
    path: str
    provider: str
    body: bytes


@dataclass
class LoadResult:
    label: str
    statuses: list[int]
    latencies: list[float]  # seconds
    outcomes: list[str]
    elapsed: float
    server_cpu: float = 0.0  # seconds of CPU the server processes used during the phase
    loadgen_cpu: float = 0.0  # seconds of CPU the load generator (this process) used
    machine_busy: float = 0.0  # fraction of the machine's CPUs busy during the phase
    errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statuses)

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def pct(self, p: float) -> float:
        return percentile(sorted(self.latencies), p) * 1000

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if s == 200)

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu * 1000 / self.count if self.count else 0.0

    def summary(self) -> dict:
        return {"label": self.label, "requests": self.count, "ok": self.ok, "elapsed_s": round(self.elapsed, 3),
                "req_per_s": round(self.throughput, 1), "p50_ms": round(self.pct(50), 2),
                "p90_ms": round(self.pct(90), 2), "p99_ms": round(self.pct(99), 2),
                "max_ms": round(max(self.latencies) * 1000, 2) if self.latencies else 0,
                "server_cpu_ms_per_req": round(self.cpu_ms_per_request, 3),
                "loadgen_cpu_ms_per_req": round(self.loadgen_cpu * 1000 / max(self.count, 1), 3),
                "machine_busy": round(self.machine_busy, 2),
                "statuses": dict(Counter(self.statuses)), "outcomes": dict(Counter(self.outcomes))}


def percentile(sorted_values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return 0.0
    rank = (len(sorted_values) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


async def _drive(bases: list[str], jobs: list[Job], concurrency: int, label: str,
                 progress_every: float) -> tuple[list[int], list[float], list[str], float, list[str]]:
    total = len(jobs)
    statuses, latencies, outcomes = [0] * total, [0.0] * total, [""] * total
    errors: list[str] = []
    # Round-robin: each target has its own queue and its share of the workers. Each worker owns
    # one client with one keep-alive connection: httpx's shared pool costs CPU that grows with the
    # number of connections, and an idle pooled connection can meet uvicorn's keep-alive timeout.
    queues: list[list[int]] = [[] for _ in bases]
    for index, job in enumerate(jobs):
        queues[job.target].append(index)
    positions = [0] * len(bases)
    per_target = [concurrency // len(bases) + (1 if t < concurrency % len(bases) else 0) for t in range(len(bases))]
    clients: list[httpx.AsyncClient] = []
    done = 0

    async def worker(target: int) -> None:
        nonlocal done
        queue = queues[target]
        client = httpx.AsyncClient(base_url=bases[target], timeout=httpx.Timeout(120.0),
                                   limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
        clients.append(client)
        while positions[target] < len(queue):
            index = queue[positions[target]]
            positions[target] += 1
            job = jobs[index]
            headers = sign(job.provider, job.body)
            started = time.perf_counter()
            try:
                response = await client.post(job.path, content=job.body, headers=headers)
                latencies[index] = time.perf_counter() - started
                statuses[index] = response.status_code
                try:
                    outcomes[index] = response.json().get("outcome", "")
                except ValueError:
                    outcomes[index] = "not-json"
            except httpx.HTTPError as error:
                latencies[index] = time.perf_counter() - started
                statuses[index] = -1
                outcomes[index] = type(error).__name__
                if len(errors) < 5:
                    errors.append(f"{type(error).__name__}: {error!r}")
            done += 1

    async def progress(started: float) -> None:
        last_done, last_time = 0, started
        while True:
            await asyncio.sleep(progress_every)
            now = time.perf_counter()
            rate = (done - last_done) / (now - last_time)
            log(f"      {label}: {done:,}/{total:,} done, {rate:,.0f} req/s")
            last_done, last_time = done, now

    started = time.perf_counter()
    ticker = asyncio.create_task(progress(started))
    tasks = [worker(t) for t in range(len(bases)) for _ in range(max(per_target[t], 1)) if queues[t]]
    try:
        await asyncio.gather(*tasks)
    finally:
        ticker.cancel()
        elapsed = time.perf_counter() - started
        for client in clients:
            await client.aclose()
    return statuses, latencies, outcomes, elapsed, errors


def drive(servers: list[Server], jobs: list[Job], concurrency: int, label: str,
          progress_every: float = 2.0) -> LoadResult:
    """Send `jobs` with `concurrency` requests in flight; measure latency, throughput and server CPU."""
    cpu_before = sum(s.cpu_seconds() for s in servers)
    own_before = time.process_time()
    busy_before = machine_cpu_busy()
    statuses, latencies, outcomes, elapsed, errors = asyncio.run(
        _drive([s.base for s in servers], jobs, concurrency, label, progress_every))
    busy_after = machine_cpu_busy()
    own_after = time.process_time()
    cpu_after = sum(s.cpu_seconds() for s in servers)
    busy = (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1)
    return LoadResult(label, statuses, latencies, outcomes, elapsed, cpu_after - cpu_before,
                      own_after - own_before, busy, errors)


def make_jobs(bookings: list[SeededBooking], provider: str, path: str, targets: int = 1) -> list[Job]:
    """One distinct, correctly signed event per booking, spread round-robin over `targets`."""
    make = PAYLOAD[provider]
    return [Job(i % targets, path, provider, make(b, i)) for i, b in enumerate(bookings)]


# ---------------------------------------------------------------- correctness
@dataclass
class Check:
    name: str
    expected: object
    actual: object

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def verify(engine: Engine, provider: str, booking_ids: list[str], *, result: LoadResult,
           sent_per_booking: int = 1) -> list[Check]:
    """Every event answered 200; each booking moved exactly once; one processed webhook row per
    event; for Stripe one payment per booking."""
    from core.models import Booking, BookingHistory, Payment, WebhookEvent
    n = len(booking_ids)
    status_counts: Counter = Counter()
    history_rows = history_bookings = payments = payment_bookings = 0
    events: Counter = Counter()
    with engine.connect() as conn:
        for offset in range(0, n, 500):
            chunk = booking_ids[offset:offset + 500]
            for status, count in conn.execute(select(Booking.status, func.count()).where(Booking.id.in_(chunk))
                                              .group_by(Booking.status)):
                status_counts[status] += count
            rows, distinct = conn.execute(
                select(func.count(), func.count(BookingHistory.booking_id.distinct()))
                .where(BookingHistory.booking_id.in_(chunk), BookingHistory.cause == CAUSE[provider])).one()
            history_rows += rows
            history_bookings += distinct
            rows, distinct = conn.execute(select(func.count(), func.count(Payment.booking_id.distinct()))
                                          .where(Payment.booking_id.in_(chunk))).one()
            payments += rows
            payment_bookings += distinct
            for outcome, count in conn.execute(select(WebhookEvent.outcome, func.count())
                                               .where(WebhookEvent.booking_id.in_(chunk))
                                               .group_by(WebhookEvent.outcome)):
                events[outcome] += count
        failed_anywhere = conn.execute(select(func.count()).select_from(WebhookEvent)
                                       .where(WebhookEvent.outcome.in_(("failed", "received")))).scalar_one()
    checks = [
        Check("answered 200", n * sent_per_booking, result.ok),
        Check(f"bookings {STATUS_AFTER[provider]}", n, status_counts.get(STATUS_AFTER[provider], 0)),
        Check(f"history '{CAUSE[provider]}' rows (one per booking)", (n, n), (history_rows, history_bookings)),
        Check("webhook_events processed", n, events.get("processed", 0)),
        Check("webhook_events for these bookings", n, sum(events.values())),
        Check("webhook_events failed/unfinished (whole db)", 0, failed_anywhere),
    ]
    if provider == "stripe":
        checks.append(Check("payments (one per booking)", (n, n), (payments, payment_bookings)))
    else:
        checks.append(Check("payments", 0, payments))
    if sent_per_booking > 1:
        answered = Counter(result.outcomes)
        checks.append(Check("answers processed / duplicate", (n, n * (sent_per_booking - 1)),
                            (answered.get("processed", 0), answered.get("duplicate", 0))))
    return checks


def report_checks(checks: list[Check]) -> bool:
    bad = [c for c in checks if not c.ok]
    if bad:
        for check in bad:
            log(f"      CHECK FAILED: {check.name}: expected {check.expected}, got {check.actual}")
    else:
        log(f"      checks ok: {'; '.join(f'{c.name} = {c.actual}' for c in checks)}")
    return not bad


# ---------------------------------------------------------------- profiling (py-spy)
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


# ---------------------------------------------------------------- output
def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").replace("%", "").replace("-", "").isdigit()


def save_results(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def machine_note() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
            "(the machine is shared: figures are noisy)")

