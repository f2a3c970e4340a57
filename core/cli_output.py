"""What the CLI's commands share with its entry point: the refusal they raise and how they print."""
from __future__ import annotations

import json


class CliError(Exception):
    """Refused input: printed as one line, exit code 2."""


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))
