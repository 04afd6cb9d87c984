"""Markdown and terminal renderings of run results: one table format for every report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

HEADLINE_METRICS = (
    "recall@10",
    "recall@20",
    "mrr@20",
    "ndcg@20",
    "action_accuracy",
    "action_macro_f1",
    "conversion_auc",
    "action_ece",
    "review_rate",
)


def format_value(value: Any) -> str:
    """Three decimals for metrics, 'n/a' where a metric is undefined (e.g. AUC with one class)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` restricted to ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_value(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, title: str) -> None:
    """The same table on the terminal."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for row in rows:
        table.add_row(*(format_value(row.get(c)) for c in columns))
    console = Console()
    if not console.is_terminal:  # a pipe or a log file: do not squeeze the table to 80 columns
        console = Console(width=200)
    console.print(table)
