"""`yingxi plan`'s table, readable at any width: one row per shot where the console is wide enough for every
column's header, else one small FIELD | VALUE table per shot (80 columns: the prompt wraps, no header word is
broken)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

MIN_CELL = 8  # a column narrower than this, beside its header, wraps everything into one letter per line


def _cell(row: dict, column: str) -> Text:
    value = row[column]
    return Text("\n".join(value) if isinstance(value, list) else str(value))


def wide_enough(console: Console, columns: Sequence[str]) -> bool:
    """One row per shot fits: every header whole, borders and padding (3 per column) included."""
    need = sum(max(len(c), MIN_CELL) for c in columns) + 3 * len(columns) + 1
    return console.width >= need + 40  # room left for the prompt and dialogue to be read, not spelt


def print_plan(console: Console, title: str, rows: list[dict], columns: Sequence[str]) -> None:
    """`title` is rich markup (already escaped); rows' values are people's words, printed as text."""
    if wide_enough(console, columns):
        table = Table(title=title)
        for col in columns:
            wraps = col in ("prompt", "dialogue", "keyframe", "conditioning")
            table.add_column(col, overflow="fold", min_width=len(col), ratio=3 if col == "prompt" else None,
                             no_wrap=not wraps)  # fmt: skip
        for r in rows:
            table.add_row(*(_cell(r, c) for c in columns))
        console.print(table)
        return
    console.print(title, justify="center")
    width = max(len(c) for c in columns)
    for r in rows:
        table = Table(show_header=False, expand=True, title=f"shot {r.get('shot', '')}", title_justify="left")
        table.add_column("field", style="bold", min_width=width, no_wrap=True)
        table.add_column("value", overflow="fold", ratio=1)
        for col in columns:
            if col != "shot":
                table.add_row(col, _cell(r, col))
        console.print(table)
