"""Printing results: a Rich table for people, `--json` for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

# Lines are never broken by us (a URL or an error stays whole when piped or copied); the
# terminal wraps what is too long for it.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

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
            table.add_column(header, overflow="fold")  # a URL or an id whole, never "…"
        for row in data:
            table.add_row(*[_text(row.get(key)) for _, key in columns])
        _whole(table)
        return
    if isinstance(data, dict):
        table = Table(show_header=False, box=None)
        for key, value in data.items():
            table.add_row(f"[bold]{key}[/]", _text(value))
        _whole(table)
        return
    out.print(data)


def _whole(table: Table) -> None:
    """On a terminal, a table fits its width (long cells fold, never cut); piped or captured,
    each row is one line, as wide as it takes."""
    (out if out.is_terminal else Console(width=10_000)).print(table)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def confirm_typed(what: str, expected: str, given: str | None) -> None:
    """A destructive command goes on only once `expected` is typed (or given as `--confirm`)."""
    if given is None:
        if not sys.stdin.isatty():
            err.print(f"[red]error:[/] pass --confirm {expected!r} to confirm without a terminal")
            raise typer.Exit(2)
        given = typer.prompt(f"Type {what} ({expected}) to confirm")
    if given != expected:
        err.print(f"[red]error:[/] {given!r} is not {expected!r}: nothing was deleted")
        raise typer.Exit(1)
