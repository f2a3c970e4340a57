"""Run `python -m core …` as a user would, on a test database, with none of the developer's settings."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core import config

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {name.upper() for name in config.Settings.model_fields}


def run_cli(db_url: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI in a subprocess on `db_url` (sandbox mode); keyword arguments become variables."""
    environment = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    environment.update(DATABASE_URL=db_url, SANDBOX="true", PYTHONPATH=str(REPO_ROOT), **env)
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)
