"""Benchmarks as Hugging Face datasets: a hub id (read from the local cache when offline; `hub_id:config` for a
dataset with named configs) or a local `save_to_disk` folder, turned into the same Examples the official-file loaders give."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example, ImageRef, StoredImage


def is_saved_dataset(path: Path) -> bool:
    """True for a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


@dataclass(frozen=True)
class Row:
    """One dataset row with the context to name it in errors and to reference its images lazily."""

    values: Mapping[str, Any]
    location: str
    split: str
    index: int

    def where(self) -> str:
        return f"{self.location} [{self.split}] row {self.index}"

    def get(self, key: str) -> Any:
        if key not in self.values:
            raise DataError(f"{self.where()}: no field '{key}' (columns: {', '.join(sorted(self.values))})")
        return self.values[key]

    def image(self, column: str, image_id: str) -> ImageRef:
        """A reference to the image in `column`, decoded only when a prompt shows it."""
        return ImageRef(image_id, stored=StoredImage(self.location, self.split, self.index, column))


@dataclass(frozen=True)
class HFSpec:
    """How one task family reads a Hugging Face copy of its benchmark.

    `splits` maps the harness's split names to the dataset's; `image_columns` are left undecoded
    while rows are read (images are decoded when a prompt needs them); `to_example` builds an
    Example from a row; `hub_id` is the usual public copy (`hub_id:config` where the dataset has named configs),
    shown by `evals tasks` and usable as `--source TASK=HUB_ID`.
    """

    to_example: Callable[[Row], Example]
    splits: Mapping[str, str]
    image_columns: tuple[str, ...] = ("image",)
    hub_id: str = ""


def hub_location(location: str) -> tuple[str, str | None]:
    """`hub_id` or `hub_id:config` as (hub id, config name or None): datasets such as lmms-lab/DocVQA (config DocVQA)
    or MMMU/MMMU (one config per subject) cannot be opened without one."""
    hub_id, sep, config = location.partition(":")
    if sep and (not hub_id or not config or ":" in config):
        raise DataError(f"{location}: expected a hub id or hub_id:config (e.g. MMMU/MMMU:Accounting)")
    return hub_id, config or None


@lru_cache(maxsize=16)
def open_split(location: str, split: str):
    """The dataset split at `location` (a `save_to_disk` folder, a hub id or `hub_id:config`), opened once per process."""
    import datasets

    datasets.disable_progress_bars()
    folder = Path(location)
    try:
        if folder.is_dir():
            return saved_split(datasets.load_from_disk(str(folder)), location, split)
        hub_id, config = hub_location(location)
        return datasets.load_dataset(hub_id, config, split=split)
    except DataError:
        raise
    except IndexError:  # datasets' load_from_disk on a folder holding a split saved with no rows
        raise DataError(f"{location}: cannot open Hugging Face dataset split '{split}': a split of the folder "
                        "holds no rows (datasets cannot load one; leave it out)") from None
    except (FileNotFoundError, ValueError, OSError, ConnectionError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        hint = " (name one as hub_id:config)" if "config" in reason.lower() and ":" not in location else ""
        raise DataError(f"{location}: cannot open Hugging Face dataset split '{split}': {reason}{hint}") from None


def saved_split(loaded, location: str, split: str):
    """`split` of what `load_from_disk` read: a DatasetDict's member, or a lone Dataset saved as that split."""
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{location}: no split '{split}' (it has: {', '.join(loaded)})")
        return loaded[split]
    if loaded.split is not None and str(loaded.split) != split:
        raise DataError(f"{location}: holds split '{loaded.split}', not '{split}'")
    return loaded


def read_hf_split(spec: HFSpec, location: str, split: str) -> list[Example]:
    """Every row of the split as an Example, in dataset order, without decoding any image."""
    hf_split = spec.splits.get(split, split)
    dataset = open_split(location, hf_split)
    check_image_columns(dataset, spec, f"{location} [{hf_split}]")
    if len(dataset) == 0:
        raise DataError(f"{location} [{hf_split}]: no examples in this split")
    text_only = dataset.remove_columns([c for c in spec.image_columns if c in dataset.column_names])
    return [spec.to_example(Row(values, location, hf_split, index)) for index, values in enumerate(text_only)]


def check_image_columns(dataset, spec: HFSpec, where: str) -> None:
    """A DataError where a column the task reads images from holds something else (text, numbers): the images are
    decoded only when a prompt shows them, which a scripted or cached run may never do."""
    import datasets

    for column in spec.image_columns:
        feature = dataset.features.get(column)
        if feature is not None and not isinstance(feature, datasets.Image):
            kind = getattr(feature, "dtype", type(feature).__name__)
            raise DataError(f"{where}: column '{column}' holds {kind} values, not images")
