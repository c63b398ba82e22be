"""Printing: JSON for machines, aligned tables and key/value blocks for people.

Human output never carries a control character from the data (a name, a
description, a tag value, an error message quoting input): each is written as
an escape (``\x1b``), so nothing stored can move the cursor, retitle the
terminal or reorder text. JSON escapes them by its own rules.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Sequence

import click

# C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder what follows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape(text: str) -> str:
    """``text`` with every control character written as a visible escape."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)



def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def emit_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], empty: str = "(nothing)") -> None:
    rows = [{c: _cell(r.get(c)) for c in columns} for r in rows]
    if not rows:
        click.echo(empty, err=True)
        return
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


def emit_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    pairs = [(escape(str(k)), v) for k, v in pairs]
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {_cell(value)}")


def _cell(value: Any) -> str:
    return escape(_text(value))


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)
