"""Image classification by ranking every class name after the prompt: ImageNet-1k (Russakovsky et al. 2015,
arXiv 1409.0575) and Rendered SST2 (Radford et al. 2021, arXiv 2103.00020), read from class folders.

Layouts. ImageNet: `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG` (the validation images sorted into class
folders, as torchvision's ImageFolder expects), and the class names in `classnames.json` ({wnid: name}) or
`classnames.txt` (one name a line, in sorted-wnid order). The names file is the source of the candidates, so
m4's cleaned names (or any other list) are a file away. Rendered SST2 (openai's release, as torchvision
unpacks it): `train/`, `valid/`, `test/`, each with `negative/` and `positive/` folders of PNGs.

Protocol. Every class name is a candidate; the prediction is the best-scoring name (a tie goes to the
earlier class) and, for ImageNet, the five best. Shots come from train; ImageNet's support holds the first
32 images of each class in file order (Flamingo's class-balanced support, 32 per class), named in the
split so results record it; shots are drawn from it at random by default (IDEFICS used RICES for ImageNet:
`--selection rices`). Every split is read with its classes interleaved (each class's first image,
then each class's second...), so `--limit N` takes a class-balanced prefix, not the first classes.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example, ImageRef
from evals.registry import TASKS
from metrics.ranking import accuracy, order_by_score, top_k_hits
from tasks.base import DataSource, MetricResult, RankQuery, Task, gold_answer, per_query_mean, read_json, read_text, require_text
from tasks.hf import HFSpec, Row, open_split

DEMO_ROOT = Path(__file__).parent / "demo" / "classification"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
PER_CLASS_SPLIT = re.compile(r"(?P<split>.+)_(?P<count>\d+)_per_class")
NAMES_JSON, NAMES_TEXT = "classnames.json", "classnames.txt"

# Class lists by content key. An example carries the key in `meta["classes"]`, not its 1,000 names: the
# candidates are the same for every example of a dataset, and the data fingerprint hashes every meta value.
_CLASS_LISTS: dict[str, tuple[str, ...]] = {}


def remember_classes(names: Sequence[str], labels: Sequence[str], where: str) -> str:
    """The content key of a class list (`labels` name each class in errors: folders or label indices).

    Names must be distinct and non-empty: a prediction is a name, so two classes with one name could not
    be told apart by the metric.
    """
    for label, name in zip(labels, names):
        if not name.strip():
            raise DataError(f"{where}: class {label} has an empty name")
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        holders = [label for label, name in zip(labels, names) if name == twice[0]]
        raise DataError(f"{where}: classes {', '.join(holders)} share the name '{twice[0]}' (candidates must be distinct)")
    key = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    _CLASS_LISTS[key] = tuple(names)
    return key


def candidate_classes(example: Example) -> tuple[str, ...]:
    key = example.meta.get("classes", "")
    if key not in _CLASS_LISTS:
        raise DataError(f"example {example.id}: its class list ({key or 'none'}) was not loaded by this process")
    return _CLASS_LISTS[key]


def class_example(example_id: str, image: ImageRef, name: str, classes_key: str) -> Example:
    return Example(example_id, (image,), {}, (name,), {"classes": classes_key})


def read_lines(path: Path) -> list[str]:
    return read_text(path).rstrip("\n").split("\n")


def imagenet_class_names(root: Path, split_dir: Path, folders: Sequence[str]) -> tuple[str, ...]:
    """Each wnid folder's class name, from classnames.json ({wnid: name}) or classnames.txt (sorted-wnid order)."""
    if (root / NAMES_JSON).is_file():
        path = root / NAMES_JSON
        names = read_json(path)
        if not isinstance(names, Mapping):
            raise DataError(f"{path}: expected a JSON object {{wnid: class name}}")
        unlisted = [f for f in folders if f not in names]
        if unlisted:
            raise DataError(f"{split_dir}: class folder '{unlisted[0]}' is not in {path} ({len(unlisted)} folders unlisted)")
        absent = sorted(set(names) - set(folders))
        if absent:
            raise DataError(f"{split_dir}: no class folder for '{absent[0]}' of {path} ({len(absent)} classes missing)")
        return tuple(require_text(names, f, path, "the class names") for f in folders)
    if (root / NAMES_TEXT).is_file():
        path = root / NAMES_TEXT
        names = [line.strip() for line in read_lines(path)]
        if len(names) != len(folders):
            raise DataError(f"{split_dir}: {len(folders)} class folders but {path} lists {len(names)} class names")
        return tuple(names)
    raise DataError(f"{root}: no class-name file ({NAMES_JSON} or {NAMES_TEXT})")


def folders_named(*expected: str) -> Callable[[Path, Path, Sequence[str]], tuple[str, ...]]:
    """For releases whose class folders are the class names (Rendered SST2: negative, positive)."""
    def class_names(root: Path, split_dir: Path, folders: Sequence[str]) -> tuple[str, ...]:
        if tuple(folders) != expected:
            raise DataError(f"{split_dir}: class folders {list(folders)}, expected {list(expected)}")
        return expected
    return class_names


@dataclass(frozen=True)
class ClassFolders:
    """A release laid out as `<split>/<class folder>/<image>`; `class_names(root, split dir, folders)` names
    each folder's class (or raises when folders and names disagree)."""

    class_names: Callable[[Path, Path, Sequence[str]], tuple[str, ...]]
    layout: str

    def load(self, root: Path, split: str) -> list[Example]:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"{split_dir}: split folder not found (expected: {self.layout})")
        folders = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise DataError(f"{split_dir}: no class folders (expected: {self.layout})")
        names = self.class_names(root, split_dir, folders)
        key = remember_classes(names, folders, str(split_dir))
        examples = []
        for folder, name in zip(folders, names):
            for path in sorted(p for p in (split_dir / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                example_id = f"{split}/{folder}/{path.stem}"
                examples.append(class_example(example_id, ImageRef(example_id, path), name, key))
        if not examples:
            raise DataError(f"{split_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders (expected: {self.layout})")
        return examples


@lru_cache(maxsize=16)
def hf_class_list(location: str, split: str) -> tuple[tuple[str, ...], str]:
    """The ClassLabel names of the split's `label` column, in label order, and their class-list key."""
    feature = open_split(location, split).features.get("label")
    names = tuple(str(n) for n in getattr(feature, "names", None) or ())
    if not names:
        raise DataError(f"{location} [{split}]: column 'label' is not a ClassLabel with class names")
    return names, remember_classes(names, [str(i) for i in range(len(names))], f"{location} [{split}]")


def hf_class_example(row: Row) -> Example:
    """A row with `image` and a ClassLabel `label` (ImageNet-1k, Rendered SST2 on the hub)."""
    names, key = hf_class_list(row.location, row.split)
    label = row.get("label")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(names):
        raise DataError(f"{row.where()}: label {label!r} is not a class index 0..{len(names) - 1} (an unlabelled split?)")
    example_id = f"{row.split}/{row.index}"
    return class_example(example_id, row.image("image", example_id), names[label], key)


def interleave_classes(examples: Sequence[Example], per_class: int | None) -> list[Example]:
    """Each class's first example, then each class's second, ... (classes in order of first appearance),
    keeping at most `per_class` of each."""
    seen: Counter[str] = Counter()
    class_order: dict[str, int] = {}
    ranked = []
    for example in examples:
        label = example.references[0]
        position = seen[label]
        seen[label] += 1
        class_order.setdefault(label, len(class_order))
        if per_class is None or position < per_class:
            ranked.append((position, class_order[label], example))
    return [example for _, _, example in sorted(ranked, key=lambda item: item[:2])]


@dataclass(frozen=True)
class ClassificationTask(Task):
    """A classification task: a split named `<split>_<N>_per_class` is <split> with the first N examples of
    each class; every split comes back class-interleaved. The same for official files and Hugging Face copies."""

    def read(self, source: DataSource, split: str) -> list[Example]:
        capped = PER_CLASS_SPLIT.fullmatch(split)
        examples = super().read(source, capped["split"] if capped else split)
        return interleave_classes(examples, int(capped["count"]) if capped else None)


def class_queries(example: Example) -> list[RankQuery]:
    return [RankQuery(example, candidate_classes(example))]


def ranked_names(example: Example, scores: Sequence[Sequence[float]]) -> list[str]:
    (row,) = scores
    names = candidate_classes(example)
    return [names[i] for i in order_by_score(row)]


def top1(example: Example, scores: Sequence[Sequence[float]]) -> dict[str, Any]:
    return {"label": ranked_names(example, scores)[0]}


def top1_and_top5(example: Example, scores: Sequence[Sequence[float]]) -> dict[str, Any]:
    ranked = ranked_names(example, scores)
    return {"label": ranked[0], "top5": ranked[:5]}


def top1_accuracy(predictions: Mapping[str, Any], examples: Sequence[Example]) -> MetricResult:
    """Accuracy (0-100) of the best-scoring candidate; a sample scores 100 when it is the label."""
    predicted = [predictions[e.id]["label"] for e in examples]
    gold = [gold_answer(e) for e in examples]
    per_sample = {e.id: 100.0 * (p == g) for e, p, g in zip(examples, predicted, gold)}
    return MetricResult({"accuracy": accuracy(predicted, gold)}, per_sample)


def top1_and_top5_accuracy(predictions: Mapping[str, Any], examples: Sequence[Example]) -> MetricResult:
    """ImageNet's top-1 accuracy (headline, per sample) and top-5 accuracy, 0-100."""
    result = top1_accuracy(predictions, examples)
    hits = top_k_hits([predictions[e.id]["top5"] for e in examples], [gold_answer(e) for e in examples], 5)
    top5 = {e.id: 100.0 * hit for e, hit in zip(examples, hits)}
    return MetricResult({**result.scores, "top5_accuracy": 100 * sum(hits) / len(hits)}, result.per_sample,
                        resampling={"top5_accuracy": per_query_mean(top5)})


IMAGENET_FILES = ClassFolders(
    imagenet_class_names,
    f"train/<wnid>/*.JPEG, val/<wnid>/*.JPEG (val sorted into class folders), {NAMES_JSON} {{wnid: name}} "
    f"or {NAMES_TEXT} (one name a line, sorted-wnid order)",
)
RENDERED_SST2_FILES = ClassFolders(folders_named("negative", "positive"), "{train,valid,test}/{negative,positive}/*.png")


def classification_task(name: str, paper: str, files: ClassFolders, **overrides) -> Task:
    """Declare and register a class-folder classification benchmark; a new one is a call to this."""
    settings = dict(
        name=name, paper=paper, kind="rank", load=files.load, layout=files.layout,
        support_split="train", query_split="val", template="imagenet", shot_answer=gold_answer,
        rank_queries=class_queries, decide=top1, metric=top1_accuracy, headline="accuracy",
        zero_shot_text_shots=0, submission_format="classification",
    )
    return TASKS.add(name, ClassificationTask(**{**settings, **overrides}))


IMAGENET = dict(
    decide=top1_and_top5, metric=top1_and_top5_accuracy, support_split="train_32_per_class",
    hf=HFSpec(hf_class_example, {"train": "train", "val": "validation"}, hub_id="ILSVRC/imagenet-1k"),
)
classification_task("imagenet", "Russakovsky et al. 2015, arXiv 1409.0575", IMAGENET_FILES, data_folder="imagenet", **IMAGENET)
classification_task(
    "rendered_sst2", "Radford et al. 2021, arXiv 2103.00020", RENDERED_SST2_FILES, data_folder="rendered_sst2",
    query_split="test", template="rendered_sst2",
    hf=HFSpec(hf_class_example, {"train": "train", "valid": "validation", "test": "test"}, hub_id="nateraw/rendered-sst2"),
)
classification_task(
    "demo_classify", "synthetic shapes in ImageNet's class-folder layout (scripts/demo/classification.py)", IMAGENET_FILES,
    default_root=DEMO_ROOT, suites=("demo",), **IMAGENET,
)
