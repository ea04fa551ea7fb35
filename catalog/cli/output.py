"""Shared output formats: every command that prints rows offers the same --json/--csv/--table."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_options(function: F) -> F:
    """Adds --json, --csv and --table (the default); the command receives `output_format`."""

    @click.option(
        "--json", "output_format", flag_value="json", help="Print JSON (a list of objects)."
    )
    @click.option("--csv", "output_format", flag_value="csv", help="Print CSV with a header row.")
    @click.option(
        "--table", "output_format", flag_value="table", default=True, help="Print a text table."
    )
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def to_json_text(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def format_rows(rows: Sequence[dict[str, Any]], output_format: str) -> str:
    """Rows (dicts with the same keys) as JSON, CSV or an aligned text table."""
    if output_format == "json":
        return to_json_text(list(rows))
    columns = list(rows[0].keys()) if rows else []
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])
        return buffer.getvalue().rstrip("\n")
    if not rows:
        return "(no rows)"
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def emit_rows(rows: Sequence[dict[str, Any]], output_format: str) -> None:
    click.echo(format_rows(rows, output_format))
