"""The ranked-task path of the runner with the scripted model: candidates as continuations, no zero-shot
examples, several prompts per example, and records identical across batch sizes and example order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.errors import ConfigError
from evals.models import ScriptedModel
from evals.records import Example, ImageRef
from evals.registry import PROMPT_FORMATS, TASKS
from evals.runner import RunSettings, run
from tasks.base import MetricResult, RankQuery, Task

COLORS = ("red", "green", "blue")


def colour_examples(prefix: str, n: int) -> list[Example]:
    return [
        Example(f"{prefix}{i}", (ImageRef(f"{prefix}img{i}", Path("unused.jpg")),), {"question": f"colour of {prefix}{i}?"},
                (COLORS[i % 3],))
        for i in range(n)
    ]


def argmax_label(example: Example, scores) -> str:
    (row,) = scores
    return COLORS[max(range(len(row)), key=lambda i: (row[i], -i))]


def label_accuracy(predictions, examples) -> MetricResult:
    per_sample = {e.id: 100.0 * (predictions[e.id] == e.references[0]) for e in examples}
    return MetricResult({"accuracy": sum(per_sample.values()) / len(per_sample)}, per_sample)


def rank_task(name: str, queries=None, views=1) -> Task:
    support, held_out = colour_examples("s", 12), queries or colour_examples("q", 9)
    return Task(
        name=name, paper="test", kind="rank", load=lambda root, split: support if split == "train" else held_out,
        support_split="train", query_split="val", template="vqa", shot_answer=lambda e: e.references[0],
        metric=label_accuracy, headline="accuracy", layout="in memory",
        rank_queries=lambda e: [RankQuery(e, COLORS)] * views, decide=argmax_label if views == 1 else (lambda e, s: s),
        default_root=Path("."), zero_shot_text_shots=0,
    )


@pytest.fixture
def registered(monkeypatch):
    def register(task: Task) -> str:
        monkeypatch.setitem(TASKS._entries, task.name, task)
        return task.name
    return register


def truth_scores(prompt, candidate: str) -> float:
    """Prefers the colour named in the query's id (every query asks about its own example)."""
    query_id = prompt.text.rsplit("colour of ", 1)[1].split("?")[0]
    truth = COLORS[int(query_id[1:]) % 3]
    return 0.0 if candidate.strip() == truth else -5.0


def rows(output_dir: Path, name: str, shots: int) -> dict[str, dict]:
    (path,) = output_dir.glob(f"*/{name}/random-{shots}shot-seed0.samples.jsonl")
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_candidates_are_scored_as_continuations_and_zero_shot_has_no_examples(tmp_path, registered):
    name = registered(rank_task("t_rank"))
    model = ScriptedModel(candidate_scores=truth_scores)
    seen = []
    model.candidate_scores = lambda p, c: seen.append(c) or truth_scores(p, c)
    (zero, four) = run(model, [name], RunSettings(shots=(0, 4), output_dir=tmp_path, batch_size=4))
    assert zero.scores == four.scores == {"accuracy": 100.0}
    # the gap before {answer}, the candidate, and the template's closing text ("\n" in the idefics vqa template)
    assert set(seen) == {" red\n", " green\n", " blue\n"}
    records = rows(tmp_path, name, 0)
    assert all(r["shot_ids"] == [] and r["prompt"].count("<image>") == 1 for r in records.values())
    assert all(len(r["shot_ids"]) == 4 for r in rows(tmp_path, name, 4).values())
    assert records["q1"]["prediction"] == "green" and records["q1"]["output"] == [[-5.0, 0.0, -5.0]]
    assert zero.protocol.kind == "rank" and zero.protocol.loglik == "sum" and zero.protocol.zero_shot == "no shots"
    assert zero.protocol.generation == {} and zero.protocol.candidate_text == "answer + closing '\\n'"


def test_answer_only_scoring_is_a_named_choice(tmp_path, registered):
    name = registered(rank_task("t_open"))
    seen = []
    model = ScriptedModel(candidate_scores=lambda p, c: seen.append(c) or truth_scores(p, c))
    (result,) = run(model, [name], RunSettings(shots=(0,), output_dir=tmp_path, score_closing=False))
    assert set(seen) == {" red", " green", " blue"} and result.protocol.candidate_text == "answer only"


def test_closing_lets_a_candidate_beat_its_own_prefix():
    """Summed over the answer alone, "tiger cat" can never outscore "tiger"; with the closing it can."""
    template = PROMPT_FORMATS.get("idefics").template("vqa")
    assert template.closing == "\n" and template.continuation("tiger cat") == " tiger cat\n"
    assert template.continuation("tiger", closed=False) == " tiger"
    instruct = PROMPT_FORMATS.get("idefics-instruct").template("vqa")
    assert instruct.closing == "<end_of_utterance>\n"


def test_repeated_example_ids_are_refused(tmp_path, registered):
    from evals.errors import DataError

    twice = colour_examples("q", 3) + colour_examples("q", 1)
    name = registered(rank_task("t_twice", twice))
    with pytest.raises(DataError, match=r"\[val\]: example id q0 appears twice"):
        run(ScriptedModel(), [name], RunSettings(shots=(0,), output_dir=tmp_path))


def test_records_identical_across_batch_size_and_query_order(tmp_path, registered):
    queries = colour_examples("q", 9)
    model = ScriptedModel(candidate_scores=truth_scores)
    for folder, order, batch_size in (("a", queries, 1), ("b", list(reversed(queries)), 5)):
        name = registered(rank_task("t_order", order))
        run(model, [name], RunSettings(shots=(2,), output_dir=tmp_path / folder, batch_size=batch_size))
    a, b = rows(tmp_path / "a", "t_order", 2), rows(tmp_path / "b", "t_order", 2)
    assert sorted(a) == sorted(b) and all(a[k] == b[k] for k in a)


def test_several_prompts_per_example_keep_their_order(tmp_path, registered):
    name = registered(rank_task("t_views", views=2))
    model = ScriptedModel(candidate_scores=lambda p, c: float(len(c)))
    run(model, [name], RunSettings(shots=(0,), output_dir=tmp_path, batch_size=3))
    record = rows(tmp_path, name, 0)["q0"]
    assert isinstance(record["prompt"], list) and len(record["prompt"]) == 2
    assert record["output"] == [[5.0, 7.0, 6.0], [5.0, 7.0, 6.0]] == record["prediction"]  # len(" red\n") == 5


def test_mean_reduction_is_passed_to_the_model_and_recorded(tmp_path, registered):
    name = registered(rank_task("t_mean"))
    reductions = []
    model = ScriptedModel()
    original = model.score
    model.score = lambda prompts, candidates, reduction="sum": reductions.append(reduction) or original(prompts, candidates, reduction)
    (result,) = run(model, [name], RunSettings(shots=(0,), output_dir=tmp_path, loglik="mean"))
    assert set(reductions) == {"mean"} and result.protocol.loglik == "mean"
    with pytest.raises(ConfigError, match="unknown log-likelihood reduction 'max'"):
        run(model, [name], RunSettings(shots=(0,), output_dir=tmp_path, loglik="max"))


def test_zero_shot_only_task_skips_larger_shot_counts(tmp_path, registered):
    from dataclasses import replace

    name = registered(replace(rank_task("t_zero"), max_shots=0))
    # 40 shots exceed the 12 support examples: no error, since that cell is not run at all.
    results = run(ScriptedModel(candidate_scores=truth_scores), [name], RunSettings(shots=(0, 40), output_dir=tmp_path))
    assert [r.shots for r in results] == [0]


def test_unknown_metric_variant_is_refused(tmp_path, registered):
    name = registered(rank_task("t_variant"))
    with pytest.raises(ConfigError, match="no task in this run has metric variant 'ndcg_sklearn'"):
        run(ScriptedModel(), [name], RunSettings(shots=(0,), output_dir=tmp_path, metric_variants=("ndcg_sklearn",)))


def test_every_format_has_the_template_keys_of_every_task():
    """A model's own format must render every registered task, or `evals run --model X` would fail late."""
    missing = [(fmt, task.template) for _, task in TASKS.items() for fmt in PROMPT_FORMATS.names()
               if task.template not in PROMPT_FORMATS.get(fmt).templates]
    assert missing == []
