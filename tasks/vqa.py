"""Open-ended VQA read from the official files: VQAv2 (Goyal et al. 2017, arXiv 1612.00837),
OK-VQA (Marino et al. 2019, arXiv 1906.00067), and the bundled synthetic demo set in VQAv2 format."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evals.errors import DataError
from evals.records import Example, GenerationParams, ImageRef
from evals.registry import TASKS
from metrics.vqa import VQAReference, clean_whitespace, process_answer, vqa_accuracy
from tasks.base import MetricResult, Task, cut_at_stop_words, read_json, require

DEMO_ROOT = Path(__file__).parent / "demo" / "vqa"


@dataclass(frozen=True)
class VQAFiles:
    """File-name rules of one VQA release; `{split}` is e.g. train2014, images follow the COCO rule."""

    questions: str
    annotations: str
    image: str = "{split}/COCO_{split}_{image_id:012d}.jpg"

    @property
    def layout(self) -> str:
        return f"{self.questions}, {self.annotations}, {self.image}"

    def load(self, root: Path, split: str) -> list[Example]:
        questions_path = root / self.questions.format(split=split)
        annotations_path = root / self.annotations.format(split=split)
        questions = require(read_json(questions_path), "questions", questions_path, "the top level")
        annotations = require(read_json(annotations_path), "annotations", annotations_path, "the top level")
        by_id = {require(a, "question_id", annotations_path, f"annotation #{i}"): a for i, a in enumerate(annotations)}
        examples = []
        for i, question in enumerate(questions):
            qid = require(question, "question_id", questions_path, f"question #{i}")
            if qid not in by_id:
                raise DataError(f"{annotations_path}: no annotation for question_id {qid} of {questions_path.name}")
            image_id = require(question, "image_id", questions_path, f"question {qid}")
            image = ImageRef(f"{split}/{image_id}", root / self.image.format(split=split, image_id=image_id))
            examples.append(Example(
                id=str(qid),
                images=(image,),
                fields={"question": require(question, "question", questions_path, f"question {qid}")},
                references=human_answers(by_id[qid], annotations_path),
                meta={key: str(by_id[qid].get(key, "")) for key in ("question_type", "answer_type")},
            ))
        return examples


def human_answers(annotation: Mapping, path: Path) -> tuple[str, ...]:
    qid = annotation["question_id"]
    answers = require(annotation, "answers", path, f"annotation {qid}")
    if not answers:
        raise DataError(f"{path}: annotation {qid} has an empty 'answers' list")
    return tuple(str(require(a, "answer", path, f"an answer of annotation {qid}")) for a in answers)


def most_common_answer(example: Example) -> str:
    """A demonstration's answer: the most common human answer (first seen wins a tie).

    OpenFlamingo used answers[0]; the most common answer is what VQAv2 calls multiple_choice_answer.
    """
    return Counter(clean_whitespace(a) for a in example.references).most_common(1)[0][0]


def postprocess_vqa(output: str, stops: Sequence[str]) -> str:
    """Cut at the next turn, then EvalAI's answer processor, as a submission file would hold it."""
    return process_answer(cut_at_stop_words(output, stops))


def score_vqa(predictions: Mapping[str, str], examples: Sequence[Example]) -> MetricResult:
    references = [
        VQAReference(e.id, e.references, e.meta.get("question_type", ""), e.meta.get("answer_type", ""))
        for e in examples
    ]
    result = vqa_accuracy(predictions, references)
    return MetricResult(
        scores={"vqa_accuracy": result.overall},
        per_sample=result.per_question,
        breakdowns={"by_question_type": result.per_question_type, "by_answer_type": result.per_answer_type},
    )


def vqa_task(name: str, paper: str, files: VQAFiles, **overrides) -> Task:
    """Declare and register an open-ended VQA benchmark; a new one is a call to this."""
    settings = dict(
        name=name, paper=paper, kind="generate", load=files.load,
        support_split="train2014", query_split="val2014", template="vqa",
        shot_answer=most_common_answer, postprocess=postprocess_vqa, metric=score_vqa,
        headline="vqa_accuracy", layout=files.layout,
        generation=GenerationParams(max_new_tokens=10, num_beams=3, length_penalty=0.0),
        submission_format="vqa",
    )
    return TASKS.add(name, Task(**{**settings, **overrides}))


VQAV2_FILES = VQAFiles("v2_OpenEnded_mscoco_{split}_questions.json", "v2_mscoco_{split}_annotations.json")
OKVQA_FILES = VQAFiles("OpenEnded_mscoco_{split}_questions.json", "mscoco_{split}_annotations.json")

vqa_task("vqav2", "Goyal et al. 2017, arXiv 1612.00837", VQAV2_FILES, data_folder="vqav2")
vqa_task("okvqa", "Marino et al. 2019, arXiv 1906.00067", OKVQA_FILES, data_folder="okvqa")
vqa_task("demo_vqa", "synthetic shapes in VQAv2 format (scripts/make_demo_data.py)", VQAV2_FILES,
         default_root=DEMO_ROOT, suites=("demo",))
