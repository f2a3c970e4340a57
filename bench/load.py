"""The load generator: asyncio + httpx in the benchmark's process (never inside a server),
`concurrency` workers each with one keep-alive connection, jobs dealt round-robin to the servers;
latency per request, throughput per phase, and the CPU the servers and this process used."""
from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.console import log
from bench.payloads import PAYLOAD, sign
from bench.seeding import SeededBooking
from bench.servers import Server, machine_cpu_busy


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
