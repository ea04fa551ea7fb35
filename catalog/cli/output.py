"""Shared output formats: every command that prints rows offers the same five, from one decorator.

The formats are sqlite-utils' and Datasette's: `--table` (the default, for people), `--json` (a
list of objects), `--nl` (one JSON object per line, for `jq` and streaming), `--csv` and `--tsv`
(a header row, then one line per row). A command decorated with `output_options` receives
`output_format` and prints with `emit_rows`, so a new format is added here once.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json", "nl", "csv", "tsv")
JSON_FORMATS = frozenset({"json", "nl"})
"""Formats that carry every field of a row as JSON data (a text table keeps what fits)."""


def output_options(function: F) -> F:
    """Adds --table (the default), --json, --nl, --csv and --tsv; the command receives
    `output_format`, one of FORMATS."""

    @click.option(
        "--json", "output_format", flag_value="json", help="Print JSON (a list of objects)."
    )
    @click.option(
        "--nl",
        "output_format",
        flag_value="nl",
        help="Print newline-delimited JSON (one object per line).",
    )
    @click.option("--csv", "output_format", flag_value="csv", help="Print CSV with a header row.")
    @click.option(
        "--tsv", "output_format", flag_value="tsv", help="Print tab-separated values with a header."
    )
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
    """Rows (dicts with the same keys) in one of FORMATS."""
    if output_format == "json":
        return to_json_text(list(rows))
    if output_format == "nl":
        return "\n".join(json.dumps(row, default=str, ensure_ascii=False) for row in rows)
    columns = list(rows[0].keys()) if rows else []
    if output_format in ("csv", "tsv"):
        buffer = io.StringIO()
        delimiter = "\t" if output_format == "tsv" else ","
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])
        return buffer.getvalue().rstrip("\n")
    if output_format != "table":
        raise ValueError(f"unknown output format {output_format!r}")
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
    text = format_rows(rows, output_format)
    if text or output_format != "nl":  # no rows: no line at all, as `jq` expects
        click.echo(text)
