"""The regression gate: compare cell records with a baseline, cell by cell, and say whether a score or protocol moved."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from evals.errors import ConfigError, DataError
from results.leaderboard import column_metric
from results.records import ABSENT, CellRecord, differing_fields, index_unique, show
from results.store import write_atomic

ALL_METRICS = "all"
EPSILON = 1e-6  # points on the 0-100 scale: a smaller delta is floating-point noise (e.g. BLEU near 0), not a change
FAILING = frozenset({"REGRESSED", "MISSING CELL", "MISSING METRIC", "PROTOCOL CHANGED"})
GATES = ("exact", "significant")
NOT_SIGNIFICANT = "drop not significant"


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a metric of a cell, or (metric `protocol: FIELD`) a protocol field that changed."""

    cell: str
    metric: str
    baseline: str
    current: str
    delta: str
    status: str
    p_value: str = ""  # the noise-aware gate's Holm-adjusted p of the score's change (empty in the exact gate)


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]
    tolerance: float
    # `name old -> new` for each package whose version differs between matched cells: provenance, shown, never failing
    version_changes: tuple[str, ...] = ()
    gate: str = "exact"  # or "significant": a drop beyond the tolerance fails only when it is significant at `level`
    level: float = 0.05

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.status in FAILING]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        cells = len({r.cell for r in self.rows})
        if self.passed and self.gate == "significant":
            return (f"gate passed: {cells} cells, no score dropped by more than {self.tolerance:g} points with a "
                    f"Holm-adjusted p below {self.level:g}")
        if self.passed:
            return f"gate passed: {cells} cells, no score dropped by more than {self.tolerance:g} points"
        return "gate FAILED: " + self.failure_counts()

    def update_summary(self) -> str:
        """What `--update` says: the differences are now the baseline (a deliberate change, not a failed gate)."""
        if self.passed:
            return f"baseline updated: {len({r.cell for r in self.rows})} cells, no failing difference"
        return "differences recorded as the new baseline: " + self.failure_counts()

    def failure_counts(self) -> str:
        counts: dict[str, int] = {}
        for row in self.failures:
            counts[row.status.lower()] = counts.get(row.status.lower(), 0) + 1
        return ", ".join(f"{n} {status}" for status, n in counts.items())

    def version_note(self) -> str | None:
        if not self.version_changes:
            return None
        return "note: package versions or placement differ (shown, not compared): " + ", ".join(self.version_changes)


def compare(
    current: Sequence[CellRecord], baseline: Sequence[CellRecord], tolerance: float = 0.5,
    metrics: Sequence[str] = (), allow_protocol_change: bool = False,
) -> Comparison:
    """Match cells by (model, task, shots, selection, seed); every baseline cell must be in `current`, with no
    compared metric lower by more than `tolerance` points and (unless allowed) the same protocol."""
    if not math.isfinite(tolerance) or tolerance < 0:  # nan compares false with everything: it would pass any drop
        raise ConfigError(f"--tolerance must be >= 0 and finite, got {tolerance}")
    now = index_unique(current, lambda r: r.key)
    before = index_unique(baseline, lambda r: r.key)
    check_metric_names(metrics, baseline)
    rows: list[Row] = []
    for key, old in sorted(before.items()):
        new = now.get(key)
        if new is None:
            rows.append(Row(old.label, "", "", "", "", "MISSING CELL"))
            continue
        rows += protocol_rows(old, new, allow_protocol_change)
        rows += [score_row(old, new, metric, tolerance) for metric in compared_metrics(old, baseline, metrics)]
    rows += [Row(new.label, "", "", "", "", "new cell") for key, new in sorted(now.items()) if key not in before]
    pairs = [(before[key], now[key]) for key in sorted(before) if key in now]
    return Comparison(tuple(rows), tolerance, version_changes(pairs))


def version_changes(pairs: Sequence[tuple[CellRecord, CellRecord]]) -> tuple[str, ...]:
    """`name baseline -> current` for every package whose recorded version differs in some (baseline, current) pair
    of cells, and for the devices the weights sat on, each change once, in name order."""
    changes: set[tuple[str, str, str]] = set()
    for old, new in pairs:
        before, after = old.protocol.get("versions") or {}, new.protocol.get("versions") or {}
        for name in before.keys() | after.keys():
            if before.get(name) != after.get(name):
                changes.add((name, str(before.get(name, "absent")), str(after.get(name, "absent"))))
        placed = [", ".join(r.protocol.get("placement", {}).get("devices", [])) for r in (old, new)]
        if all(placed) and placed[0] != placed[1]:  # records older than v6 say nothing of where the weights sat
            changes.add(("placement", *placed))
    return tuple(f"{name} {old} -> {new}" for name, old, new in sorted(changes))


def noise_aware(comparison: Comparison, p_values: Mapping[tuple[str, str], float], level: float) -> Comparison:
    """The gate that knows noise: each score row shows its Holm-adjusted p (from the paired test of its samples), and a
    drop beyond the tolerance fails only when that p is below `level`; missing cells and protocol changes still fail."""
    if not 0 < level < 1:
        raise ConfigError(f"--level must be between 0 and 1, got {level}")
    rows = []
    for row in comparison.rows:
        p = p_values.get((row.cell, row.metric))
        if p is None:
            rows.append(row)
            continue
        status = NOT_SIGNIFICANT if row.status == "REGRESSED" and p >= level else row.status
        rows.append(replace(row, status=status, p_value=f"{p:.3g}"))
    return replace(comparison, rows=tuple(rows), gate="significant", level=level)


def check_metric_names(metrics: Sequence[str], baseline: Sequence[CellRecord]) -> None:
    known = {name for r in baseline for name in r.scores}
    for name in metrics:
        if name != ALL_METRICS and name not in known:
            raise ConfigError(f"--metric {name}: no baseline cell has it (metrics: {', '.join(sorted(known))}, or '{ALL_METRICS}')")


def compared_metrics(cell: CellRecord, baseline: Sequence[CellRecord], metrics: Sequence[str]) -> list[str]:
    """Every score with `all`; the named metrics the cell has; by default its task's headline metric."""
    if ALL_METRICS in metrics:
        return sorted(cell.scores)
    if metrics:
        return [m for m in metrics if m in cell.scores]
    return [column_metric(cell.task, [cell], ())]


def score_row(old: CellRecord, new: CellRecord, metric: str, tolerance: float) -> Row:
    before = old.scores[metric]
    if metric not in new.scores:
        return Row(old.label, metric, f"{before:.2f}", "", "", "MISSING METRIC")
    delta = new.scores[metric] - before
    if abs(delta) <= EPSILON:
        status = "same"
    elif delta > 0:
        status = "improved"
    else:
        status = "within tolerance" if -delta <= tolerance + EPSILON else "REGRESSED"
    return Row(old.label, metric, f"{before:.2f}", f"{new.scores[metric]:.2f}", show_delta(delta), status)


def show_delta(delta: float) -> str:
    """Two decimals, as scores are shown; a change too small for them in scientific notation, never as "+0.00"."""
    if abs(delta) <= EPSILON:
        return "+0.00"
    return f"{delta:+.1e}" if abs(delta) < 0.005 else f"{delta:+.2f}"


def protocol_rows(old: CellRecord, new: CellRecord, allowed: bool) -> list[Row]:
    """One row per protocol field that changed (package versions are provenance, not compared)."""
    before, after = old.comparable(), new.comparable()
    status = "changed (allowed)" if allowed else "PROTOCOL CHANGED"
    return [Row(old.label, f"protocol: {field}", show(before.get(field, ABSENT)), show(after.get(field, ABSENT)), "", status)
            for field in differing_fields(before, after)]


def update_baseline(current_root: Path, current: Sequence[CellRecord], baseline_root: Path,
                    baseline: Sequence[CellRecord]) -> list[str]:
    """Make `baseline_root` hold exactly `current`'s cell records (no samples), at the same relative paths.

    Baseline records that `current` no longer has are removed, so the gate passes right after an update.
    """
    if baseline_root.exists() and not baseline_root.is_dir():
        raise ConfigError(f"--update needs BASELINE to be a folder, got the file {baseline_root}")
    index_unique(current, lambda r: r.key)
    written = []
    for record in current:
        relative = record.path.relative_to(current_root) if current_root.is_dir() else Path(record.path.name)
        target = baseline_root / relative
        try:
            write_atomic(target, record.path.read_text(encoding="utf-8"))
        except OSError as error:
            raise DataError(f"--update {target}: cannot write ({error.strerror or error})") from None
        written.append(target)
    lines = [f"wrote {path}" for path in written]
    kept = {path.resolve() for path in written}
    for record in baseline:
        if record.path.resolve() not in kept:
            record.path.unlink()
            lines.append(f"removed {record.path}")
    return lines
