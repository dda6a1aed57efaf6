"""The report's comparisons: for each two cells of one task and query split, the queries that flip between them, paired
and counted by the functions `evals compare --test paired` uses (results.pairing, metrics.uncertainty.flips)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

from evals.errors import DataError
from metrics.uncertainty import flips
from results.pairing import CellSamples, match_samples
from results.records import CellRecord


def comparable_groups(records: Sequence[CellRecord], samples: Sequence[CellSamples | None]) -> list[list[int]]:
    """Indexes of the cells (with a samples file) that share a task and a query split: the pairs the page offers.
    Cells of different tasks or splits hold different queries, so no id pairs them; they are left out to keep the
    file small (a report of many tasks would otherwise hold every pair of every cell)."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (record, checked) in enumerate(zip(records, samples)):
        if checked is not None:
            groups[(record.task, str(record.protocol.get("query_split", "")))].append(index)
    return [indexes for indexes in groups.values() if len(indexes) > 1]


def comparisons(records: Sequence[CellRecord], samples: Sequence[CellSamples | None]) -> list[dict[str, Any]]:
    """Each pair (a < b, indexes into the report's cells) with the ids that score higher in a ("right to wrong") and in
    b ("wrong to right"), sorted by id. Paired on the full samples files, so the lists equal `evals compare`'s even
    where the page shows only a cell's first --max-samples samples."""
    found = []
    for group in comparable_groups(records, samples):
        found.extend(compared(a, b, samples[a], samples[b]) for a, b in combinations(group, 2))
    return found


def compared(a: int, b: int, samples_a: CellSamples, samples_b: CellSamples) -> dict[str, Any]:
    """One pair: its flips, how many queries it paired, and a note where ids were in only one of the two cells."""
    try:
        pairing = match_samples(samples_a, samples_b, common_only=True)
    except DataError as error:  # no id in common: the page says why instead of an empty list
        return {"a": a, "b": b, "paired": 0, "right_to_wrong": [], "wrong_to_right": [], "note": str(error)}
    better_a, better_b = flips(pairing.scores_a, pairing.scores_b, list(pairing.ids))
    note = (f"{pairing.left_out} queries are in only one of the two cells; the flips are among the {len(pairing.ids)} "
            "both have") if pairing.left_out else None
    return {"a": a, "b": b, "paired": len(pairing.ids), "right_to_wrong": better_a, "wrong_to_right": better_b,
            "note": note}
