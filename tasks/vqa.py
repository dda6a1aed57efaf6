"""Open-ended VQA: VQAv2 (Goyal et al. 2017, arXiv 1612.00837), OK-VQA (Marino et al. 2019, arXiv 1906.00067),
TextVQA (Singh et al. 2019, arXiv 1904.08920), VizWiz (Gurari et al. 2018, arXiv 1802.08218), and the bundled
synthetic demo set in VQAv2 format. Each reads its own official files, or a Hugging Face copy."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.errors import DataError
from evals.records import Example, GenerationParams, ImageRef
from evals.registry import TASKS
from metrics.vqa import clean_whitespace, process_answer
from tasks.base import (FileReader, Task, checked_id, checked_text, checked_texts, cut_at_stop_words, optional_text, read_json,
                        require, require_id, require_list, require_text, require_texts, some_records)
from tasks.hf import HFSpec, Row
from tasks.vqa_metrics import score_textvqa_accuracy, score_vizwiz_accuracy, score_vqa, score_vqa_stemmed, score_vqav2_rule

DEMO_ROOT = Path(__file__).parent / "demo" / "vqa"
DEMO_WHAT_ROOT = Path(__file__).parent / "demo" / "what"


@dataclass(frozen=True)
class VQAFiles:
    """File-name rules of a VQAv2-style release; `{split}` is e.g. train2014, images follow the COCO rule."""

    questions: str
    annotations: str
    image: str = "{split}/COCO_{split}_{image_id:012d}.jpg"

    @property
    def layout(self) -> str:
        return f"{self.questions}, {self.annotations}, {self.image}"

    def load(self, root: Path, split: str) -> list[Example]:
        questions_path = root / self.questions.format(split=split)
        annotations_path = root / self.annotations.format(split=split)
        questions = by_question_id(require_list(read_json(questions_path), "questions", questions_path, "the top level"),
                                   questions_path, "question")
        by_id = by_question_id(require_list(read_json(annotations_path), "annotations", annotations_path, "the top level"),
                               annotations_path, "annotation")
        examples = []
        for qid, question in questions.items():
            if qid not in by_id:
                raise DataError(f"{annotations_path}: no annotation for question_id {qid} of {questions_path.name}")
            image_id = require(question, "image_id", questions_path, f"question {qid}")
            if isinstance(image_id, bool) or not isinstance(image_id, int):  # the COCO file name needs the integer
                raise DataError(f"{questions_path}: question {qid}: field 'image_id' is {image_id!r}, not an integer")
            image = ImageRef(f"{split}/{image_id}", root / self.image.format(split=split, image_id=image_id))
            examples.append(Example(
                id=str(qid),
                images=(image,),
                fields={"question": require_text(question, "question", questions_path, f"question {qid}")},
                references=human_answers(by_id[qid], annotations_path),
                meta={key: optional_text(by_id[qid], key, annotations_path, f"annotation {qid}")
                      for key in ("question_type", "answer_type")},
            ))
        return examples


def by_question_id(records: Sequence[Any], path: Path, what: str) -> dict[Any, Mapping[str, Any]]:
    """{question_id: record} in file order. A repeated id is an error: the later annotation would silently
    replace the earlier, giving a question another question's answers."""
    indexed: dict[Any, Mapping[str, Any]] = {}
    first: dict[Any, int] = {}
    for i, record in enumerate(some_records(records, path, f"{what}s")):
        qid = require(record, "question_id", path, f"{what} #{i}")
        if isinstance(qid, bool) or not isinstance(qid, (int, str)):
            raise DataError(f"{path}: {what} #{i}: field 'question_id' is {qid!r}, not an integer or a string")
        if qid in indexed:
            raise DataError(f"{path}: {what} #{i} repeats question_id {qid} of {what} #{first[qid]}")
        indexed[qid], first[qid] = record, i
    return indexed


@dataclass(frozen=True)
class TextVQAFiles:
    """TextVQA 0.5.1: one JSON per split with a `data` list (question_id, question, image_id, answers: 10 strings,
    ocr_tokens). The official train_val_images.zip puts train AND val images in train_images/. OCR tokens come
    from the question entry, else from the Rosetta OCR file of the split when present, else none."""

    questions: str = "TextVQA_0.5.1_{split}.json"
    ocr: str = "TextVQA_Rosetta_OCR_v0.2_{split}.json"
    image: str = "train_images/{image_id}.jpg"

    @property
    def layout(self) -> str:
        return f"{self.questions} ({{split}}: train, val), {self.image} (val images too), optional {self.ocr}"

    def load(self, root: Path, split: str) -> list[Example]:
        path = root / self.questions.format(split=split)
        return some_records(self.read(path, root, split, root / self.ocr.format(split=split)), path, "questions in 'data'")

    def read(self, path: Path, root: Path, split: str, ocr_path: Path | None = None) -> list[Example]:
        """The questions of one split file (`evals score` reads the val file this way: no image is opened)."""
        entries = require_list(read_json(path), "data", path, "the top level")
        ocr_by_image = self.rosetta_tokens(ocr_path) if ocr_path is not None else {}
        examples = []
        for i, entry in enumerate(entries):
            qid = require_id(entry, "question_id", path, f"entry #{i}")
            image_id = require_id(entry, "image_id", path, f"question {qid}")
            if "ocr_tokens" in entry:
                tokens = require_texts(entry, "ocr_tokens", path, f"question {qid}")
            else:
                tokens = ocr_by_image.get(image_id, [])
            examples.append(Example(
                id=qid,
                images=(ImageRef(f"{split}/{image_id}", root / self.image.format(image_id=image_id)),),
                fields={"question": require_text(entry, "question", path, f"question {qid}"), "ocr": " ".join(tokens)},
                references=answer_strings(require(entry, "answers", path, f"question {qid}"), f"{path}: question {qid}"),
                meta={"question_type": "", "answer_type": ""},
            ))
        return examples

    @staticmethod
    def rosetta_tokens(path: Path) -> dict[Any, list]:
        if not path.is_file():
            return {}
        entries = require_list(read_json(path), "data", path, "the top level")
        return {
            require_id(e, "image_id", path, f"entry #{i}"): require_texts(e, "ocr_tokens", path, f"entry #{i}")
            for i, e in enumerate(entries)
        }


@dataclass(frozen=True)
class VizWizFiles:
    """VizWiz-VQA: Annotations/{split}.json, a list of {image, question, answers: [{answer, answer_confidence}],
    answerable, answer_type}; images {split}/<image>. One question per image, so the image file name is the id
    (what VizWiz submissions key on). Answers carry no answer_id: leave-one-out is by position."""

    annotations: str = "Annotations/{split}.json"
    image: str = "{split}/{image}"

    @property
    def layout(self) -> str:
        return f"{self.annotations} ({{split}}: train, val), {self.image}"

    def load(self, root: Path, split: str) -> list[Example]:
        path = root / self.annotations.format(split=split)
        return some_records(self.read(path, root, split), path, "questions")

    def read(self, path: Path, root: Path, split: str) -> list[Example]:
        """The questions of one annotation file (`evals score` reads val.json this way: no image is opened)."""
        entries = read_json(path)
        if not isinstance(entries, list):
            raise DataError(f"{path}: expected a JSON list of questions at the top level")
        examples = []
        for i, entry in enumerate(entries):
            image = require_text(entry, "image", path, f"entry #{i}")
            examples.append(Example(
                id=image,
                images=(ImageRef(f"{split}/{image}", root / self.image.format(split=split, image=image)),),
                fields={"question": require_text(entry, "question", path, f"entry {image}")},
                references=answer_strings(require(entry, "answers", path, f"entry {image}"), f"{path}: entry {image}"),
                meta={"question_type": "", "answer_type": optional_text(entry, "answer_type", path, f"entry {image}")},
            ))
        return examples


def answer_strings(answers: Any, where: str) -> tuple[str, ...]:
    """Human answers given as strings (TextVQA, HF copies) or as {"answer": ...} objects (VQAv2, VizWiz);
    `where` names the file and record in errors. A `datasets` Sequence of objects arrives as one object of lists."""
    if isinstance(answers, Mapping) and isinstance(answers.get("answer"), list):
        answers = answers["answer"]
    if not isinstance(answers, (list, tuple)) or not answers:
        raise DataError(f"{where}: field 'answers' is not a non-empty list")
    texts = []
    for answer in answers:
        if isinstance(answer, Mapping) and "answer" in answer:
            answer = answer["answer"]
        if not isinstance(answer, str):
            raise DataError(f"{where}: an entry of 'answers' is neither a string nor an object with field 'answer'")
        texts.append(answer)
    return tuple(texts)


def human_answers(annotation: Mapping, path: Path) -> tuple[str, ...]:
    """The human answers of a VQAv2-style annotation, each an {"answer": text} object (also read by `evals score`)."""
    where = f"annotation {annotation['question_id']}"
    answers = require_list(annotation, "answers", path, where)
    if not answers:
        raise DataError(f"{path}: {where} has an empty 'answers' list")
    texts = tuple(answer.get("answer") if type(answer) is dict else None for answer in answers)
    if all(type(text) is str for text in texts):  # the common case, checked without a message per answer (VQAv2 val: 2.1M)
        return texts
    return tuple(require_text(answer, "answer", path, f"{where}, answer #{n}") for n, answer in enumerate(answers))


def most_common_answer(example: Example) -> str:
    """A demonstration's answer: the most common human answer (first seen wins a tie).

    OpenFlamingo used answers[0]; the most common answer is what VQAv2 calls multiple_choice_answer.
    """
    return Counter(clean_whitespace(a) for a in example.references).most_common(1)[0][0]


def postprocess_vqa(output: str, stops: Sequence[str]) -> str:
    """Cut at the next turn, then EvalAI's answer processor, as a submission file would hold it."""
    return process_answer(cut_at_stop_words(output, stops))


def vqa_hf(splits: Mapping[str, str], hub_id: str) -> HFSpec:
    """A Hugging Face copy of a VQA benchmark: columns question_id, question, image, answers (strings or
    {answer} objects); optional image_id (else the question id names the image, as in lmms-lab's VizWiz),
    question_type, answer_type (or category), ocr_tokens. Ids match what the official files give."""
    ours = {hf: harness for harness, hf in splits.items()}

    def to_example(row: Row) -> Example:
        where = row.where()
        qid = checked_id(row.get("question_id"), "question_id", where)
        image_key = checked_id(row.values["image_id"], "image_id", where) if "image_id" in row.values else qid
        fields = {"question": checked_text(row.get("question"), "question", where)}
        if "ocr_tokens" in row.values:  # null: a question with no OCR tokens
            fields["ocr"] = " ".join(checked_texts(row.values["ocr_tokens"] or [], "ocr_tokens", where))
        return Example(
            id=qid,
            images=(row.image("image", f"{ours.get(row.split, row.split)}/{image_key}"),),
            fields=fields,
            references=answer_strings(row.get("answers"), where),
            meta=hf_types(row),
        )

    return HFSpec(to_example=to_example, splits=splits, image_columns=("image",), hub_id=hub_id)


def hf_types(row: Row) -> dict[str, str]:
    """The optional question and answer types of a hub row (answer_type is `category` in lmms-lab's VizWiz); a null
    is an untyped question, anything but text is refused rather than written into the breakdowns."""
    answer_key = "answer_type" if "answer_type" in row.values else "category"
    return {"question_type": checked_text(row.values.get("question_type"), "question_type", row.where(), optional=True),
            "answer_type": checked_text(row.values.get(answer_key), answer_key, row.where(), optional=True)}


COCO_SPLITS = {"train2014": "train", "val2014": "validation"}


def vqa_task(name: str, paper: str, files: FileReader, **overrides) -> Task:
    """Declare and register an open-ended VQA benchmark; a new one is a call to this."""
    settings = {
        "name": name, "paper": paper, "kind": "generate", "load": files.load,
        "support_split": "train2014", "query_split": "val2014", "template": "vqa",
        "shot_answer": most_common_answer, "postprocess": postprocess_vqa, "metric": score_vqa,
        "headline": "vqa_accuracy", "layout": files.layout,
        "generation": GenerationParams(max_new_tokens=10, num_beams=3, length_penalty=0.0),
        "submission_format": "vqa",
    }
    return TASKS.add(name, Task(**{**settings, **overrides}))


VQAV2_FILES = VQAFiles("v2_OpenEnded_mscoco_{split}_questions.json", "v2_mscoco_{split}_annotations.json")
OKVQA_FILES = VQAFiles("OpenEnded_mscoco_{split}_questions.json", "mscoco_{split}_annotations.json")

vqa_task("vqav2", "Goyal et al. 2017, arXiv 1612.00837", VQAV2_FILES, data_folder="vqav2",
         hf=vqa_hf(COCO_SPLITS, "HuggingFaceM4/VQAv2"))
vqa_task("okvqa", "Marino et al. 2019, arXiv 1906.00067", OKVQA_FILES, data_folder="okvqa",
         metric_variants={"vqa_accuracy_stemmed": score_vqa_stemmed}, hf=vqa_hf(COCO_SPLITS, "HuggingFaceM4/OK-VQA"))
# TextVQA answers are 10 strings in a `data` list; VizWiz submissions are keyed by image file name. Both official
# scorers process the prediction themselves, so the prediction is the cut output, as a submission holds it: EvalAI's
# processor applied twice is not applied once ("whats" -> "what's" -> "what 's").
vqa_task("textvqa", "Singh et al. 2019, arXiv 1904.08920", TextVQAFiles(), data_folder="textvqa",
         support_split="train", query_split="val", submission_format="textvqa", postprocess=cut_at_stop_words,
         metric=score_textvqa_accuracy, metric_variants={"vqav2_rule": score_vqav2_rule},
         hf=vqa_hf({"train": "train", "val": "validation"}, "lmms-lab/textvqa"))
# lmms-lab's VizWiz copy holds val and test only: demonstrations need a copy (or save_to_disk folder) with train.
vqa_task("vizwiz", "Gurari et al. 2018, arXiv 1802.08218", VizWizFiles(), data_folder="vizwiz",
         support_split="train", query_split="val", submission_format="vizwiz", postprocess=cut_at_stop_words,
         metric=score_vizwiz_accuracy, metric_variants={"vqav2_rule": score_vqav2_rule},
         hf=vqa_hf({"train": "train", "val": "val"}, "lmms-lab/VizWiz-VQA"))
vqa_task("demo_vqa", "synthetic shapes in VQAv2 format (scripts/make_demo_data.py)", VQAV2_FILES,
         default_root=DEMO_ROOT, suites=("demo",))
# "What is this?" about the colour: only demonstrations say which property is meant, so zero-shot shows none
# (not even Flamingo's two text-only ones, which would give the answer vocabulary away).
vqa_task("demo_what", "synthetic 'What is this?' in VQAv2 format, few-shot or nothing (scripts/demo/what.py)", VQAV2_FILES,
         default_root=DEMO_WHAT_ROOT, suites=("demo",), zero_shot_text_shots=0)
