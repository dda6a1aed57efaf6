"""The versioned result schema: one record per cell that carries the whole protocol that produced it."""

from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.models.options import NOT_COMPARED_OPTIONS

# 2: ranked tasks (kind, loglik), metric variants by name.
# 3: protocol.git_commit (provenance, not compared); timing gains overhead_fraction and resumed_samples;
#    failures ({"failed_samples": n, "reasons": {id: why}}: samples skipped with --skip-bad-samples).
# 4: protocol.model_args (the model's --model-args away from their defaults, compared but for provenance options;
#    dtype is recorded there too where set, compared as the dtype field).
# 5: integrity ({"journal_entries_rejected": n, "feature_cache_entries_rejected": m}: stored intermediates that failed
#    their checksum or shape check and were recomputed; provenance, never compared or scored).
# 6: protocol.placement ({"devices": [...], "blocks_per_device": {...}}: where the model's weights sat; provenance,
#    shown by `evals compare`, never compared); protocol.context_fit ("refuse", or "drop_farthest_shots" with
#    --fit-context: compared); samples gain shots_requested and shots_delivered; intervals (metric name -> the 95%
#    bootstrap interval of that score over queries, metrics.uncertainty.Interval.as_record(); {} in older records
#    and with --bootstrap-resamples 0).
SCHEMA_VERSION = 6
READABLE_VERSIONS = (2, 3, 4, 5, 6)  # older records read with the defaults of what they lack (git commit "unknown", no failures, model_args {})
GIT_TIMEOUT_SECONDS = 2.0


def package_versions() -> dict[str, str]:
    """Versions that can change a number, read without importing the (heavy) packages."""
    versions = {"python": platform.python_version()}
    for name in ("evals", "torch", "transformers", "tokenizers", "pillow", "pycocoevalcap", "scikit-learn", "datasets"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@lru_cache(maxsize=1)
def harness_commit() -> str:
    """The git commit of the checkout this harness runs from (`-dirty` when tracked files differ from it),
    or "unknown" for an installed copy, a machine without git, or a git that does not answer in time."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():  # an installed package: an enclosing repository would be someone else's
        return "unknown"
    head = git(root, "rev-parse", "HEAD")
    if not head:
        return "unknown"
    changes = git(root, "status", "--porcelain", "--untracked-files=no")
    return head + ("-dirty" if changes else "") if changes is not None else head


def git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], check=False, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass(frozen=True)
class Protocol:
    """Everything that decides a cell's numbers; two results are comparable when these agree."""

    model: str
    model_family: str
    model_revision: str
    dtype: str
    task: str
    support_split: str
    query_split: str
    support_fingerprint: str
    query_fingerprint: str
    n_queries: int
    shots: int
    selection: str
    selection_details: dict[str, Any]
    seed: int
    zero_shot: str
    prompt_format: str
    template: str
    template_hash: str
    kind: str  # generate | rank
    generation: dict[str, Any]  # decoding settings (generative tasks)
    loglik: str  # ranked tasks: how candidate token log-probabilities are reduced (sum | mean)
    candidate_text: str  # ranked tasks: what is scored after the query (the answer, and the template's closing?)
    metric: str  # the metric function, or the peers' variant chosen by name
    postprocess: str
    versions: dict[str, str] = field(default_factory=package_versions)
    git_commit: str = field(default_factory=harness_commit)
    # The model's loading options away from their defaults (attention, 4-bit, revision, image splitting, ...), as the
    # runner reads them off the model (evals.models.options.model_args); {} for the defaults and in v2/v3 records.
    model_args: dict[str, Any] = field(default_factory=dict)
    # Devices the weights were spread over and the blocks on each (evals.models.bigmodel.placement_record); {} for a
    # model without devices (the scripted test model) and in records older than v6.
    placement: dict[str, Any] = field(default_factory=dict)
    # What a prompt longer than the model's context gets (evals.context.FIT_CONTEXT): refused, or its shots farthest
    # from the query dropped until it fits (--fit-context; each sample records the shots requested and delivered).
    context_fit: str = "refuse"

    def comparable(self) -> dict[str, Any]:
        """The fields that decide a cell's numbers: two results belong in one column when these agree
        (package versions and the harness commit are provenance, shown but not compared; the seed is what
        a sweep varies)."""
        return compared_protocol(asdict(self))

    def comparable_hash(self) -> str:
        """A short stable digest of `comparable()`, for keys and column labels."""
        text = json.dumps(self.comparable(), sort_keys=True, ensure_ascii=False)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


NOT_COMPARED = frozenset({"versions", "git_commit", "seed", "placement"})
# Protocol fields that records of older schema versions lack, read as what those records meant.
OLDER_PROTOCOL_DEFAULTS: dict[str, Any] = {"git_commit": "unknown", "model_args": {}, "placement": {}, "context_fit": "refuse"}


def compared_protocol(protocol: Mapping[str, Any]) -> dict[str, Any]:
    """`Protocol.comparable()` of a protocol as written in a record (fields older records lack at their defaults),
    so a v3 record and a v4 one of the same protocol agree; the regression gate and the leaderboard read records so."""
    full = {**OLDER_PROTOCOL_DEFAULTS, **protocol}
    compared = {k: v for k, v in full.items() if k not in NOT_COMPARED}
    if isinstance(full["model_args"], Mapping):  # where the weights came from is provenance; dtype is its own field
        compared["model_args"] = {k: v for k, v in full["model_args"].items() if k not in NOT_COMPARED_OPTIONS}
    return compared


# What a score may be, by metric name, on the 0-100 scale: a share (accuracy, NDCG, ANLS, BLEU...) lies in [0, 100];
# CIDEr-like consensus scores are only >= 0 (a good captioner's CIDEr exceeds 100, e.g. 216.43). A name not here (a
# plugin's metric) is checked only for being a finite number.
BOUNDED = (0.0, 100.0)
NON_NEGATIVE = (0.0, math.inf)
CAPTION_SCORES = ("CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "METEOR", "CIDEr-D", "SPICE")
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("accuracy", "top5_accuracy", "vqa_accuracy", "roc_auc", "ndcg", "text", "image", "group", "anls",
                     "circular_accuracy", "vanilla_accuracy", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L",
                     "METEOR"), BOUNDED),
    **dict.fromkeys(("CIDEr", "CIDEr-D", "SPICE"), NON_NEGATIVE),
}
# The scores a registered task's metric writes (its variants write the same names), by the task's headline metric; a
# record of a registered task with another score name is refused. A headline not here (a plugin's) is not checked.
SCORES_BY_HEADLINE: dict[str, tuple[str, ...]] = {
    "vqa_accuracy": ("vqa_accuracy",), "CIDEr": CAPTION_SCORES, "accuracy": ("accuracy", "top5_accuracy"),
    "roc_auc": ("roc_auc", "accuracy"), "ndcg": ("ndcg",), "group": ("text", "image", "group"), "anls": ("anls",),
    "circular_accuracy": ("circular_accuracy", "vanilla_accuracy"),
}


def protocol_field_types() -> dict[str, type]:
    """The JSON type of each Protocol field as written in a record (str, int, or an object)."""
    return {f.name: dict if str(f.type).startswith("dict") else int if f.type in ("int", int) else str
            for f in fields(Protocol)}


def no_failures() -> dict[str, Any]:
    return {"failed_samples": 0, "reasons": {}}


def nothing_rejected() -> dict[str, int]:
    """The integrity counts of a record that says none (older records did not check, so claim nothing was found)."""
    return {"journal_entries_rejected": 0, "feature_cache_entries_rejected": 0}


@dataclass(frozen=True)
class CellResult:
    task: str
    shots: int
    selection: str
    seed: int
    scores: dict[str, float]
    breakdowns: dict[str, dict[str, float]]
    protocol: Protocol
    # wall_seconds, model_seconds, examples_per_second (samples computed by this process / wall),
    # overhead_fraction (share of wall time outside model calls), resumed_samples (read back from a journal)
    timing: dict[str, float]
    failures: dict[str, Any] = field(default_factory=no_failures)
    integrity: dict[str, int] = field(default_factory=nothing_rejected)
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)  # evals.intervals; never compared
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> CellResult:
        """A record read back (`where` names its file in errors); v2/v3 records get the defaults of the fields they lack."""
        record = checked_fields(cls, data, where, "record")
        if record["schema_version"] not in READABLE_VERSIONS:
            raise DataError(f"{where}: schema_version {record['schema_version']} is not one this evals reads "
                            f"({', '.join(map(str, READABLE_VERSIONS))})")
        protocol = Protocol(**{**OLDER_PROTOCOL_DEFAULTS, **checked_fields(Protocol, record["protocol"], where, "protocol")})
        return cls(**{**record, "protocol": protocol})


def checked_fields(cls, data: Any, where: str, what: str) -> dict[str, Any]:
    """`data` as keyword arguments for dataclass `cls`: every field without a default present, none unknown."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: {what} is not a JSON object")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise DataError(f"{where}: {what} has unknown field '{unknown[0]}' (written by a newer evals?)")
    for name, spec in names.items():
        if spec.default is MISSING and spec.default_factory is MISSING and name not in data:
            raise DataError(f"{where}: {what} has no field '{name}'")
    if "schema_version" in names and "schema_version" not in data:
        raise DataError(f"{where}: {what} has no field 'schema_version'")
    return dict(data)
