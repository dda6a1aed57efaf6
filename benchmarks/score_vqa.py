"""Scoring speed without a model: `evals score vqav2` vs a straightforward transcription of the official VQA scorer.

VQA accuracy of Antol et al. 2015 / Goyal et al. 2017 (VQAv2, arXiv 1612.00837), as the GT-Vision-Lab
`vqaEval.py` computes it. The benchmark writes a synthetic VQAv2-val-sized set (214,354 questions, 10
human answers each, seeded; answer variants that need the official normalisation: case, periods,
number words, articles, contractions, hyphens, 1,000-style numbers, stray whitespace) to a temporary
folder, then times two whole processes on the same files: `python -m evals score vqav2` and this
file's `reference` mode, which scores question by question the way the official code does (answers
normalised per question, O(10 x 10) leave-one-out loops, no memoisation). It checks that both give
identical numbers (overall, per question type, per answer type, per question) and prints JSON.

    python benchmarks/score_vqa.py [--questions 214354] [--repeats 1] [--seed 0] [--keep DIR]
    python benchmarks/score_vqa.py reference --predictions R.json --annotations A.json --questions Q.json --output OUT.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metrics.vqa import ARTICLES, CONTRACTIONS, NUMBER_WORDS, PUNCTUATION

VQAV2_VAL_QUESTIONS = 214_354
QUESTION_TYPES = {  # a share of VQAv2's 65 question types, by answer type
    "yes/no": ("is the", "is this", "are there", "does the", "is there a", "are the", "can you", "is it", "do you", "has"),
    "number": ("how many", "how many people are", "what number is", "how many people are in"),
    "other": ("what color is the", "what is the", "what is the man", "what sport is", "where is the", "what kind of",
              "what time", "what does the", "why", "what brand", "which", "what room is", "what animal is", "none of the above",
              "what is on the", "what type of", "who is", "what are the"),
}
ANSWER_TYPE_SHARE = {"yes/no": 0.38, "number": 0.12, "other": 0.50}
NUMBER_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
COLORS = "red white black blue green yellow brown gray orange pink purple silver tan beige gold".split()
NOUNS = ("dog cat man woman frisbee pizza tennis baseball skateboard surfboard kite umbrella table bench train bus "
         "truck car bike horse giraffe elephant zebra sheep cow bird clock phone laptop tv couch bed kitchen bathroom "
         "snow grass water beach street sky tree shirt hat glasses helmet donut sandwich banana apple broccoli cake").split()
PHRASES = ("t-shirt", "hot dog", "dont know", "cant tell", "its raining", "man's hat", "1,000", "3.5", "black and white",
           "playing frisbee", "on table", "in air", "nothing", "nike", "stop sign", "fire hydrant", "wii remote", "left")


# ---------------------------------------------------------------- synthetic VQAv2 val files

def answer_vocabulary() -> dict[str, list[str]]:
    """Canonical answers per answer type, most frequent first (a long tail of two-word answers for "other")."""
    other = COLORS + NOUNS + list(PHRASES) + [f"{c} {n}" for c in COLORS for n in NOUNS] + [f"{n} {m}" for n in NOUNS for m in NOUNS]
    return {"yes/no": ["yes", "no"], "number": [str(n) for n in range(21)] + ["100", "1,000"], "other": other}


def surface_variant(answer: str, rng: random.Random) -> str:
    """How a human (or an unprocessed prediction) may write `answer`: most often as is."""
    roll = rng.random()
    if roll < 0.70:
        return answer
    if roll < 0.76:
        return answer.capitalize()
    if roll < 0.81:
        return answer + "."
    if roll < 0.86 and answer.isdigit() and int(answer) <= 10:
        return NUMBER_NAMES[int(answer)]
    if roll < 0.91:
        return rng.choice(("the ", "a ", "an ")) + answer
    if roll < 0.94:
        return answer.replace(" ", "-") if " " in answer else answer + "!"
    if roll < 0.97:
        return f" {answer}\n"
    return answer.replace(" ", ", ") if " " in answer else answer + "'s"


def zipf_pick(items: list[str], rng: random.Random) -> str:
    return items[min(int(rng.paretovariate(1.1)) - 1, len(items) - 1)] if len(items) > 2 else rng.choice(items)


def human_answers(main: str, pool: list[str], rng: random.Random) -> list[str]:
    """Ten answers: all identical for a third of the questions (as in VQAv2), else a noisy majority."""
    if rng.random() < 0.33:
        return [main] * 10
    agreement = rng.uniform(0.2, 0.95)
    other = zipf_pick(pool, rng)
    return [surface_variant(main if rng.random() < agreement else (other if rng.random() < 0.6 else zipf_pick(pool, rng)), rng)
            for _ in range(10)]


def synthetic_set(count: int, seed: int) -> tuple[dict, dict, list]:
    """(questions file, annotations file, EvalAI results) objects of a VQAv2-val-like set."""
    rng = random.Random(seed)
    vocabulary = answer_vocabulary()
    answer_types = list(ANSWER_TYPE_SHARE)
    questions, annotations, results = [], [], []
    for n in range(count):
        qid, image_id = 262_148_000 + 7 * n, 100_000 + n // 5
        answer_type = rng.choices(answer_types, weights=ANSWER_TYPE_SHARE.values())[0]
        question_type = rng.choice(QUESTION_TYPES[answer_type])
        pool = vocabulary[answer_type]
        main = zipf_pick(pool, rng)
        answers = human_answers(main, pool, rng)
        questions.append({"image_id": image_id, "question": f"{question_type.capitalize()} {n}?", "question_id": qid})
        annotations.append({
            "question_type": question_type, "multiple_choice_answer": main, "answer_type": answer_type,
            "answers": [{"answer": a, "answer_confidence": rng.choice(("yes", "maybe", "no")), "answer_id": i + 1}
                        for i, a in enumerate(answers)],
            "image_id": image_id, "question_id": qid,
        })
        prediction = main if rng.random() < 0.55 else zipf_pick(pool, rng)
        results.append({"question_id": qid, "answer": surface_variant(prediction, rng) if rng.random() < 0.2 else prediction})
    info = {"description": "synthetic VQAv2 val (benchmarks/score_vqa.py)", "version": "2.0"}
    return ({"info": info, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "questions": questions},
            {"info": info, "data_type": "mscoco", "data_subtype": "val2014", "annotations": annotations}, results)


def write_set(folder: Path, count: int, seed: int) -> dict[str, Path]:
    files = {"questions": folder / "v2_OpenEnded_mscoco_val2014_questions.json",
             "annotations": folder / "v2_mscoco_val2014_annotations.json",
             "predictions": folder / "vqav2_val_results.json"}
    for path, content in zip(files.values(), synthetic_set(count, seed)):
        path.write_text(json.dumps(content))
    return files


# ---------------------------------------------------------------- the reference: vqaEval.py, question by question
# A direct transcription of the official logic on purpose (no memoisation, no counting tricks): it is
# what the fast path in metrics/vqa.py is measured against. Only the word tables are shared.

PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def process_punctuation(text: str) -> str:
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD_STRIP.sub("", out, re.UNICODE)  # the official call: re.UNICODE lands in `count` (32)


def process_digit_article(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)  # the official manualMap.setdefault, without growing the shared table
        if word not in ARTICLES:
            words.append(word)
    for i, word in enumerate(words):
        if word in CONTRACTIONS:
            words[i] = CONTRACTIONS[word]
    return " ".join(words)


def clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def reference_question(answer: str, human: list[dict]) -> float:
    """One question as vqaEval.evaluate scores it (leave-one-out by answer_id, i.e. by record)."""
    for record in human:
        record["answer"] = clean(record["answer"])
    answer = clean(answer)
    if len({record["answer"] for record in human}) > 1:
        for record in human:
            record["answer"] = process_digit_article(process_punctuation(record["answer"]))
        answer = process_digit_article(process_punctuation(answer))
    accuracies = []
    for left_out in human:
        others = [record for record in human if record is not left_out]
        matching = [record for record in others if record["answer"] == answer]
        accuracies.append(min(1, float(len(matching)) / 3))
    return float(sum(accuracies)) / len(accuracies)


def reference_score(predictions: Path, annotations: Path, questions: Path) -> dict:
    """The official flow: load the three files, check the result ids, score every annotated question in file order."""
    annotated = {a["question_id"]: a for a in json.loads(annotations.read_text())["annotations"]}
    asked = {q["question_id"] for q in json.loads(questions.read_text())["questions"]}
    results = {r["question_id"]: r for r in json.loads(predictions.read_text())}
    assert set(results) == asked == set(annotated), "results do not answer the questions of the annotations"
    overall, by_question_type, by_answer_type, per_question = [], {}, {}, {}
    eval_question_type: dict[str, dict] = {}  # the scorer's evalQuesType and evalAnsType, filled per question as it does
    eval_answer_type: dict[str, dict] = {}
    for qid, annotation in annotated.items():
        accuracy = reference_question(results[qid]["answer"], annotation["answers"])
        overall.append(accuracy)
        by_question_type.setdefault(annotation["question_type"], []).append(accuracy)
        by_answer_type.setdefault(annotation["answer_type"], []).append(accuracy)
        per_question[str(qid)] = round(100 * accuracy, 2)
        eval_question_type.setdefault(annotation["question_type"], {})[qid] = round(100 * accuracy, 2)
        eval_answer_type.setdefault(annotation["answer_type"], {})[qid] = round(100 * accuracy, 2)

    def percent(values: list[float]) -> float:
        return round(100 * float(sum(values)) / len(values), 2)

    return {"scores": {"vqa_accuracy": percent(overall)},
            "by_question_type": {k: percent(v) for k, v in by_question_type.items()},
            "by_answer_type": {k: percent(v) for k, v in by_answer_type.items()}, "per_question": per_question}


# ---------------------------------------------------------------- timing whole processes

def timed(command: list[str], repeats: int) -> float:
    """Best wall time of `repeats` runs of a whole process (start-up and imports included)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def comparable(result: dict) -> dict:
    return {key: result[key] for key in ("scores", "by_question_type", "by_answer_type", "per_question")}


def benchmark(folder: Path, count: int, seed: int, repeats: int) -> dict:
    start = time.perf_counter()
    files = write_set(folder, count, seed)
    generated = time.perf_counter() - start
    fast_out, reference_out = folder / "fast.json", folder / "reference.json"
    file_args = [f"--{name}={path}" for name, path in files.items()]
    fast = timed([sys.executable, "-m", "evals", "score", "vqav2", *file_args, f"--output={fast_out}"], repeats)
    reference = timed([sys.executable, __file__, "reference", *file_args, f"--output={reference_out}"], repeats)
    help_seconds = timed([sys.executable, "-m", "evals", "--help"], 3)
    fast_result, reference_result = json.loads(fast_out.read_text()), json.loads(reference_out.read_text())
    differing = sum(fast_result["per_question"].get(q) != v for q, v in reference_result["per_question"].items())
    return {
        "benchmark": "evals score vqav2 vs per-question official vqaEval.py transcription (whole processes)",
        "questions": count, "answers_per_question": 10, "seed": seed, "repeats": repeats,
        "annotations_mb": round(files["annotations"].stat().st_size / 2**20, 1), "generate_s": round(generated, 1),
        "evals_score_s": round(fast, 2), "reference_s": round(reference, 2), "speedup": round(reference / fast, 2),
        "identical": comparable(fast_result) == comparable(reference_result), "per_question_differences": differing,
        "vqa_accuracy": fast_result["scores"]["vqa_accuracy"], "by_answer_type": fast_result["by_answer_type"],
        "evals_help_s": round(help_seconds, 2),
    }


def main() -> None:
    if sys.argv[1:2] == ["reference"]:
        parser = argparse.ArgumentParser(description="Score like the official vqaEval.py, question by question.")
        for name in ("predictions", "annotations", "questions", "output"):
            parser.add_argument(f"--{name}", type=Path, required=True)
        args = parser.parse_args(sys.argv[2:])
        args.output.write_text(json.dumps(reference_score(args.predictions, args.annotations, args.questions)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=VQAV2_VAL_QUESTIONS)
    parser.add_argument("--repeats", type=int, default=1, help="time each process this many times, keep the best")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        print(json.dumps(benchmark(args.keep, args.questions, args.seed, args.repeats), indent=1))
        return
    with tempfile.TemporaryDirectory(prefix="score_vqa_") as folder:
        print(json.dumps(benchmark(Path(folder), args.questions, args.seed, args.repeats), indent=1))


if __name__ == "__main__":
    main()
