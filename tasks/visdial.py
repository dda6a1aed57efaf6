"""Visual Dialog v1.0 (Das et al. 2017, arXiv 1611.08669): rank the 100 answer options of a dialog round by
log-likelihood, scored by NDCG against the val split's dense relevance annotations.

Layout (visualdialog.org/data): `visdial_1.0_{train,val}.json` hold `{"data": {"questions": [...], "answers":
[...], "dialogs": [{"image_id", "caption", "dialog": [{"question", "answer", "answer_options", "gt_index"}]}]}}`
(question, answer and options are indices into the split's shared lists); `visdial_1.0_val_dense_annotations.json`
holds `[{"image_id", "round_id" (1-based), "gt_relevance": 100 floats}]`. Val images are
`VisualDialog_val2018/VisualDialog_val2018_{image_id:012d}.jpg`; train images are COCO trainval2014, under
`train2014/COCO_train2014_{id:012d}.jpg` or `val2014/COCO_val2014_{id:012d}.jpg`.

Queries: each densely annotated val dialog at its annotated round (caption, earlier rounds, the question).
Shots: one round of each train dialog with its ground-truth answer.
No Hugging Face reader: the hub copies (HuggingFaceM4/VisDial, jxu124/visdial) carry question-answer pairs
only, without the answer options or dense relevance that ranking and NDCG need.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example, ImageRef
from evals.registry import TASKS
from metrics.ranking import ndcg_sklearn, ranks_from_scores, visdial_ndcg
from tasks.base import (MetricResult, RankQuery, Task, finite_numbers, gold_answer, read_json, require, require_list,
                        require_text, some_records, type_name)

DEMO_ROOT = Path(__file__).parent / "demo" / "visdial"
NUM_OPTIONS = 100
DIALOGS = "visdial_1.0_{split}.json"
DENSE = "visdial_1.0_{split}_dense_annotations.json"
VAL_IMAGE = "VisualDialog_val2018/VisualDialog_val2018_{image_id:012d}.jpg"
COCO_IMAGES = ("train2014/COCO_train2014_{image_id:012d}.jpg", "val2014/COCO_val2014_{image_id:012d}.jpg")
LAYOUT = (f"{DIALOGS.format(split='{train,val}')}, {DENSE.format(split='val')}, {VAL_IMAGE}, "
          f"train images {' or '.join(COCO_IMAGES)}")
DENSE_SPLITS = ("val",)  # only val has public dense annotations; its dialogs are the queries


@dataclass(frozen=True)
class DialogFile:
    """One split's dialogs JSON: the shared question and answer lists, and the dialogs indexing them."""

    path: Path
    questions: Sequence[Any]
    answers: Sequence[Any]
    dialogs: Sequence[Any]

    @classmethod
    def read(cls, path: Path) -> DialogFile:
        data = require(read_json(path), "data", path, "the top level")
        fields = [require(data, key, path, "'data'") for key in ("questions", "answers", "dialogs")]
        for key, value in zip(("questions", "answers", "dialogs"), fields):
            if not isinstance(value, list):
                raise DataError(f"{path}: 'data.{key}' is not a list")
        return cls(path, *fields)

    def text(self, table: str, index: Any, where: str) -> str:
        """The question or answer string at `index` of the shared list named `table`."""
        values = self.questions if table == "questions" else self.answers
        if not is_index(index, len(values)):
            raise DataError(f"{self.path}: {where} points to {table}[{index!r}], not a position in the list of {len(values)}")
        if not isinstance(values[index], str):
            raise DataError(f"{self.path}: 'data.{table}' entry #{index} is {type_name(values[index])}, not a string")
        return values[index]


@dataclass(frozen=True)
class Dialog:
    """One dialog as read: its image id, caption and rounds, with the file to name in errors."""

    file: DialogFile
    image_id: int
    caption: str
    rounds: Sequence[Any]

    def where(self, round_id: int | None = None) -> str:
        return f"dialog {self.image_id}" + (f" round {round_id}" if round_id else "")

    def round(self, round_id: int) -> Mapping[str, Any]:
        if not 1 <= round_id <= len(self.rounds):
            raise DataError(f"{self.file.path}: {self.where()} has {len(self.rounds)} rounds, no round {round_id}")
        return self.rounds[round_id - 1]

    def turn(self, round_id: int, field: str) -> str:
        """The round's question or ground-truth answer text."""
        index = require(self.round(round_id), field, self.file.path, self.where(round_id))
        return self.file.text("questions" if field == "question" else "answers", index, f"{self.where(round_id)} '{field}'")

    def fields(self, round_id: int) -> dict[str, str]:
        """The prompt fields for asking round `round_id`: caption, the earlier rounds, the question."""
        history = "".join(
            f"Question: {self.question(r)} Answer: {bare(self.turn(r, 'answer'), '.')}. " for r in range(1, round_id)
        )
        return {"caption": bare(self.caption, "."), "history": history, "question": self.question(round_id)}

    def question(self, round_id: int) -> str:
        """The round's question with one question mark (the release stores questions without it)."""
        return bare(self.turn(round_id, "question"), "?") + "?"

    def options(self, round_id: int) -> list[str]:
        where = self.where(round_id)
        indices = require(self.round(round_id), "answer_options", self.file.path, where)
        if not isinstance(indices, list) or len(indices) != NUM_OPTIONS:
            count = len(indices) if isinstance(indices, list) else "no list of"
            raise DataError(f"{self.file.path}: {where} 'answer_options' has {count} entries, expected {NUM_OPTIONS}")
        return [bare(self.file.text("answers", i, f"{where} 'answer_options'"), ".") for i in indices]


def is_index(value: Any, size: int) -> bool:
    """Whether `value` is a position in a list of `size`: an integer, never a bool (JSON's true would read as 1)."""
    return type(value) is int and 0 <= value < size


def bare(text: str, mark: str) -> str:
    """`text` stripped of surrounding spaces and a trailing `mark`, which the template writes itself
    (VisDial questions come without their question mark; a few captions and answers end in a full stop)."""
    return text.strip().removesuffix(mark).rstrip()


def read_dialogs(path: Path) -> list[Dialog]:
    file = DialogFile.read(path)
    dialogs, seen = [], set()
    for n, entry in enumerate(some_records(file.dialogs, path, "dialogs in 'data.dialogs'")):
        image_id = require(entry, "image_id", path, f"dialog #{n}")
        if type(image_id) is not int:
            raise DataError(f"{path}: dialog #{n} 'image_id' {image_id!r} is not an integer")
        if image_id in seen:
            raise DataError(f"{path}: dialog #{n} repeats image_id {image_id}")
        seen.add(image_id)
        caption = require_text(entry, "caption", path, f"dialog {image_id}")
        rounds = require_list(entry, "dialog", path, f"dialog {image_id}")
        if not rounds:
            raise DataError(f"{path}: dialog {image_id} has no rounds in 'dialog'")
        dialogs.append(Dialog(file, image_id, caption, rounds))
    return dialogs


def read_dense(path: Path, dialogs: Mapping[int, Dialog], dialogs_path: Path) -> list[tuple[Dialog, int, list[float]]]:
    """Each dense annotation as (its dialog, the annotated round, the options' relevance)."""
    entries = read_json(path)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of {{\"image_id\", \"round_id\", \"gt_relevance\"}} objects")
    dense, seen = [], set()
    for n, entry in enumerate(some_records(entries, path, "dense annotations")):
        image_id = require(entry, "image_id", path, f"annotation #{n}")
        where = f"annotation for image_id {image_id}"
        if type(image_id) is not int:
            raise DataError(f"{path}: annotation #{n}: field 'image_id' is {type_name(image_id)}, not an integer")
        if image_id not in dialogs:
            raise DataError(f"{path}: annotation #{n} is for image_id {image_id}, which has no dialog in {dialogs_path.name}")
        if image_id in seen:
            raise DataError(f"{path}: image_id {image_id} is annotated twice")
        seen.add(image_id)
        round_id = require(entry, "round_id", path, where)
        relevance = require(entry, "gt_relevance", path, where)
        if type(round_id) is not int or not 1 <= round_id <= len(dialogs[image_id].rounds):
            raise DataError(f"{path}: {where} 'round_id' {round_id!r} is not a round of its dialog (1 to {len(dialogs[image_id].rounds)})")
        if not isinstance(relevance, list) or len(relevance) != NUM_OPTIONS or not finite_numbers(relevance):
            raise DataError(f"{path}: {where} 'gt_relevance' is not a list of {NUM_OPTIONS} finite numbers")
        if not any(r > 0 for r in relevance):
            raise DataError(f"{path}: {where} 'gt_relevance' has no option with relevance > 0 (NDCG is undefined)")
        dense.append((dialogs[image_id], round_id, [float(r) for r in relevance]))
    return dense


def query_example(root: Path, dialog: Dialog, round_id: int, relevance: list[float]) -> Example:
    """A val dialog asked at its densely annotated round, carrying the options and their relevance."""
    options = dialog.options(round_id)
    gt_index = require(dialog.round(round_id), "gt_index", dialog.file.path, dialog.where(round_id))
    if not is_index(gt_index, NUM_OPTIONS):
        raise DataError(f"{dialog.file.path}: {dialog.where(round_id)} 'gt_index' {gt_index!r} is not an option index")
    image = ImageRef(f"val2018/{dialog.image_id}", root / VAL_IMAGE.format(image_id=dialog.image_id))
    return Example(
        id=str(dialog.image_id), images=(image,), fields=dialog.fields(round_id),
        references=(options[gt_index],),
        meta={"round_id": str(round_id), "gt_index": str(gt_index), "answer_options": json.dumps(options),
              "gt_relevance": json.dumps(relevance)},
    )


def shot_round(dialog: Dialog) -> int:
    """The round a train dialog shows as a demonstration. Varied by image id (not always the last round,
    as m4 did) so the shots' history lengths spread like those of the dense val rounds."""
    return dialog.image_id % len(dialog.rounds) + 1


def shot_example(dialog: Dialog, image: ImageRef) -> Example:
    round_id = shot_round(dialog)
    return Example(str(dialog.image_id), (image,), dialog.fields(round_id), (bare(dialog.turn(round_id, "answer"), "."),),
                   {"round_id": str(round_id)})


def coco_image(root: Path, image_id: int, in_val2014: set[str]) -> ImageRef:
    """Train dialogs use COCO trainval2014 images: the val2014 folder when the file is there, else train2014."""
    train, val = (Path(rule.format(image_id=image_id)) for rule in COCO_IMAGES)
    return ImageRef(f"coco/{image_id}", root / (val if val.name in in_val2014 else train))


def load_visdial(root: Path, split: str) -> list[Example]:
    dialogs_path = root / DIALOGS.format(split=split)
    dialogs = read_dialogs(dialogs_path)
    if split in DENSE_SPLITS:
        by_id = {d.image_id: d for d in dialogs}
        dense = read_dense(root / DENSE.format(split=split), by_id, dialogs_path)
        return [query_example(root, dialog, round_id, relevance) for dialog, round_id, relevance in dense]
    val_folder = root / Path(COCO_IMAGES[1]).parent
    in_val2014 = {p.name for p in val_folder.iterdir()} if val_folder.is_dir() else set()
    return [shot_example(d, coco_image(root, d.image_id, in_val2014)) for d in dialogs]


def answer_options(example: Example) -> list[RankQuery]:
    if "answer_options" not in example.meta:
        raise DataError(f"example {example.id}: no answer options (VisDial ranks the dense rounds of {', '.join(DENSE_SPLITS)})")
    return [RankQuery(example, tuple(json.loads(example.meta["answer_options"])))]


def rank_options(example: Example, scores: Sequence[Sequence[float]]) -> dict[str, Any]:
    """The evaluation server's prediction: each option's rank (1 = best) at the asked round."""
    return {"round_id": int(example.meta["round_id"]), "ranks": ranks_from_scores(scores[0])}


def ndcg_result(ndcg, predictions: Mapping[str, Any], examples: Sequence[Example]) -> MetricResult:
    ranks = [predictions[e.id]["ranks"] for e in examples]
    overall, per_row = ndcg(ranks, [json.loads(e.meta["gt_relevance"]) for e in examples])
    return MetricResult({"ndcg": overall}, {e.id: score for e, score in zip(examples, per_row)})


def score_visdial_ndcg(predictions: Mapping[str, Any], examples: Sequence[Example]) -> MetricResult:
    """The official NDCG: the top k ranked options, k = the number of options with relevance > 0."""
    return ndcg_result(visdial_ndcg, predictions, examples)


def score_visdial_ndcg_sklearn(predictions: Mapping[str, Any], examples: Sequence[Example]) -> MetricResult:
    """m4's NDCG: sklearn's over all 100 options (higher than the official one)."""
    return ndcg_result(ndcg_sklearn, predictions, examples)


def visdial_task(name: str, **overrides) -> Task:
    """Declare and register a VisDial-format benchmark."""
    task = Task(
        name=name, paper="Das et al. 2017, arXiv 1611.08669", kind="rank", load=load_visdial,
        support_split="train", query_split="val", template="visdial", shot_answer=gold_answer,
        rank_queries=answer_options, decide=rank_options, metric=score_visdial_ndcg, headline="ndcg",
        metric_variants={"ndcg_sklearn": score_visdial_ndcg_sklearn}, layout=LAYOUT, zero_shot_text_shots=0,
        submission_format="visdial",
    )
    return TASKS.add(name, replace(task, **overrides))


visdial_task("visdial", data_folder="visdial")
visdial_task("demo_dialog", paper="synthetic shapes dialogs in VisDial v1.0 format (scripts/demo/visdial.py)",
             default_root=DEMO_ROOT, suites=("demo",))
