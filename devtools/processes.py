"""Processes of this system for tests and benchmarks: `web` servers (the Procfile's uvicorn command
line), workers and scripts as child processes with their output in a file, their environment, and
the wait for `/healthz`.

Standard library only (the settings' names are read from `core.config` when an environment is
built), so tests import it without importing the benchmarks, and the benchmarks without pytest.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable


# Below Linux's ephemeral range (32768-60999): a port the OS hands out for bind(0) is also what it
# gives the next outgoing connection, so a server started a moment later could find it taken by a
# test's own HTTP or database connection ("address already in use"). Ports here are never given
# to outgoing connections.
LISTEN_PORTS = range(20000, 32000)


def free_port() -> int:
    """A TCP port nothing listens on right now, outside the range outgoing connections use."""
    for port in random.sample(LISTEN_PORTS, 50):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # all 50 taken: let the OS pick
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@cache
def _setting_names() -> frozenset[str]:
    from core.config import Settings
    return frozenset(name.upper() for name in Settings.model_fields)


def service_env(**settings: str) -> dict[str, str]:
    """The environment of a child process of ours: this one's, without any of our settings (so
    nothing leaks in from the caller's shell or test), plus `settings` (e.g. DATABASE_URL=...)."""
    env = {key: value for key, value in os.environ.items() if key.upper() not in _setting_names()}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    env.update(settings)
    return env


def web_command(port: int, *, workers: int = 1, log_level: str | None = None) -> list[str]:
    """The Procfile's `web` command line (uvicorn, the app factory, no access log) on `port`."""
    command = [PYTHON, "-m", "uvicorn", "--factory", "webhook_service.app:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    if workers != 1:
        command += ["--workers", str(workers)]
    if log_level:
        command += ["--log-level", log_level]
    return command


class Process:
    """A child process whose output (stdout and stderr) goes to `log_path`; `output()` reads it."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None,
                 new_session: bool = True):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=cwd or log_path.parent, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=new_session)
        self.pid = self.proc.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


def wait_healthy(base_url: str, process: Process, timeout: float = 30) -> None:
    """Wait until `GET {base_url}/healthz` answers 200; RuntimeError (with the process's output) if
    the process exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"the process serving {base_url} exited; its output:\n{process.output()}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base_url} did not answer /healthz within {timeout:.0f}s; its output:\n{process.output()}")
