"""Printing results: a Rich table for people, `--json` for scripts."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console()

JsonOption = "--json"


def emit(data: Any, as_json: bool, columns: list[tuple[str, str]] | None = None,
         title: str | None = None) -> None:
    """Lists become tables of `columns` ((header, key) pairs); anything else key/value rows."""
    if as_json:
        print(json.dumps(data, indent=2))
        return
    if isinstance(data, list) and columns:
        table = Table(title=title)
        for header, _ in columns:
            table.add_column(header)
        for row in data:
            table.add_row(*[_text(row.get(key)) for _, key in columns])
        out.print(table)
        return
    if isinstance(data, dict):
        table = Table(show_header=False, box=None)
        for key, value in data.items():
            table.add_row(f"[bold]{key}[/]", _text(value))
        out.print(table)
        return
    out.print(data)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
