"""Where the command line writes: one console for results (stdout) and one for messages and errors (stderr), shared
by the command modules (tests replace them with wide, colourless ones), and the table-or-JSON listings."""

from __future__ import annotations

import sys
from enum import Enum

from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


class ListFormat(str, Enum):
    table = "table"
    json = "json"


FORMAT_HELP = "table (for reading), or json (an array of objects with the table's fields, for scripts)."


def print_listing(records: list[dict], tables: list[Table], form: ListFormat) -> None:
    """JSON is written as is (rich would wrap and colour it); tables through the console."""
    from evals.listings import as_json

    if form == ListFormat.json:
        sys.stdout.write(as_json(records))
        return
    for table in tables:
        console.print(table)
