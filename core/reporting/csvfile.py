"""CSV files the dashboard hands out: one header, rows of plain values, every cell safe to open in
a spreadsheet."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from core.money import Money

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Google Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A client's name is their own input: keep spreadsheets from running it as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def major(amount_cents: int, currency: str) -> str:
    """'12.50' for 1250 USD, '1200' for 1200 JPY: what a spreadsheet reads as a number."""
    return str(Money(int(amount_cents), currency).major)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_safe(value) for value in row])
    return out.getvalue()
