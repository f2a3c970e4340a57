"""The system under test: `web` processes, the Procfile's uvicorn command line, one per port, one
worker each unless asked, on a benchmark database; their CPU time, and the machine's."""
from __future__ import annotations

import atexit
import os
import time
from pathlib import Path

from bench.databases import BENCH_VAR, service_env
from devtools.processes import REPO, Process, wait_healthy, web_command

LOG_DIR = BENCH_VAR / "logs"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Server(Process):
    """One `web` process: the Procfile's uvicorn command line on its own port, one worker unless
    asked; its log under var/bench/logs/. Stopped at exit if nobody stopped it before."""

    def __init__(self, url: str, port: int, *, workers: int = 1, env: dict | None = None):
        self.port, self.base = port, f"http://127.0.0.1:{port}"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        super().__init__(web_command(port, workers=workers), {**service_env(url), **(env or {})},
                         LOG_DIR / f"web-{port}-{time.strftime('%Y%m%d-%H%M%S')}.log", cwd=REPO,
                         new_session=False)
        atexit.register(self.stop)

    def wait_ready(self, timeout: float = 60) -> None:
        wait_healthy(self.base, self, timeout)

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

    def stop(self, timeout: float = 15) -> int:
        return super().stop(timeout)


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
