"""`evals compare --test paired` and `--gate significant`: the numbers are metrics.uncertainty's on the paired samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evals.models import ScriptedModel
from evals.runner import RunSettings, run
from metrics.ranking import roc_auc
from metrics.uncertainty import flips, holm, paired_difference, paired_statistic
from results.pairing import paired_samples, samples_file
from tests.cells import cell, write
from tests.test_compare import evals  # noqa: F401  (fixture)

IDS = [f"q{n:02d}" for n in range(40)]


def cell_with_samples(folder: Path, scores: list[float], task: str = "demo_vqa", ids: list[str] = IDS, **fields) -> Path:
    """A record whose headline score is the mean of `scores`, and its samples file (id, score) beside it."""
    path = write(folder, cell(task=task, score=round(float(np.mean(scores)), 2), **fields))
    lines = [json.dumps({"id": i, "score": s, "prediction": ""}) for i, s in zip(ids, scores)]
    samples_file(path).write_text("\n".join(lines) + "\n")
    return path


def binary(right: int, total: int = 40, first: int = 0) -> list[float]:
    """`right` queries at 100 from position `first` on (cyclically), the others 0."""
    return [100.0 if (n - first) % total < right else 0.0 for n in range(total)]


def paired_json(evals, *args) -> list[dict]:  # noqa: F811
    code, out, err = evals("compare", *args, "--test", "paired", "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_paired_numbers_are_mcnemar_and_the_bootstrap_of_the_samples(tmp_path, evals):  # noqa: F811
    a, b = binary(20), binary(30, first=5)
    cell_with_samples(tmp_path / "a", a)
    cell_with_samples(tmp_path / "b", b)
    (row,) = paired_json(evals, tmp_path / "a", tmp_path / "b")
    direct = paired_difference(a, b, IDS)
    assert row["comparison"] == direct.as_record()
    assert direct.test == "mcnemar" and (direct.a_only, direct.b_only) == (5, 15)
    assert row["adjusted_p"] == direct.p_value  # one cell: Holm leaves its p alone
    assert (len(row["better_in_a"]), len(row["better_in_b"])) == (5, 15)


def test_scores_that_are_not_0_1_take_the_sign_flip_test(tmp_path, evals):  # noqa: F811
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 300, 40).tolist(), rng.uniform(20, 320, 40).tolist()
    cell_with_samples(tmp_path / "a", a, task="demo_caption")
    cell_with_samples(tmp_path / "b", b, task="demo_caption")
    (row,) = paired_json(evals, tmp_path / "a", tmp_path / "b")
    assert row["comparison"] == paired_difference(a, b, IDS).as_record()
    assert row["comparison"]["test"] == "sign-flip" and row["how"].startswith("per-image CIDEr")


def test_holm_is_applied_across_the_cells_compared(tmp_path, evals):  # noqa: F811
    pairs = {0: (binary(20), binary(28)), 1: (binary(20), binary(23, first=2))}
    for seed, (a, b) in pairs.items():
        cell_with_samples(tmp_path / "a", a, seed=seed)
        cell_with_samples(tmp_path / "b", b, seed=seed)
    rows = paired_json(evals, tmp_path / "a", tmp_path / "b")
    raw = [paired_difference(*pairs[seed], IDS).p_value for seed in (0, 1)]
    assert [r["comparison"]["p_value"] for r in rows] == raw
    assert [r["adjusted_p"] for r in rows] == holm(raw) and holm(raw) != raw


def test_a_missing_sample_is_one_line_naming_both_files(tmp_path, evals):  # noqa: F811
    cell_with_samples(tmp_path / "a", binary(20))
    cell_with_samples(tmp_path / "b", binary(20)[:-1], ids=IDS[:-1])
    code, out, err = evals("compare", tmp_path / "a", tmp_path / "b", "--test", "paired")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "1 ids only in" in err and str(tmp_path / "a") in err and str(tmp_path / "b") in err and "--common-ids" in err
    code, out, _ = evals("compare", tmp_path / "a", tmp_path / "b", "--test", "paired", "--common-ids")
    assert code == 0 and "note: 1 samples left out" in out and "compared the 39 ids both have" in out


def test_paired_samples_matches_by_id_whatever_the_order(tmp_path):
    a = cell_with_samples(tmp_path / "a", [1.0, 2.0, 3.0], ids=["c", "a", "b"])
    b = cell_with_samples(tmp_path / "b", [20.0, 30.0, 10.0], ids=["b", "c", "a"])
    assert paired_samples(a, b) == (["a", "b", "c"], [2.0, 3.0, 1.0], [10.0, 20.0, 30.0])


def test_the_noise_gate_passes_an_insignificant_drop_the_exact_gate_fails(tmp_path, evals):  # noqa: F811
    cell_with_samples(tmp_path / "baseline", binary(30))
    cell_with_samples(tmp_path / "small", binary(29))  # one query fewer: -2.5 points, McNemar p = 1
    exact = evals("compare", tmp_path / "small", tmp_path / "baseline")
    assert exact[0] == 1 and "REGRESSED" in exact[1]
    code, out, _ = evals("compare", tmp_path / "small", tmp_path / "baseline", "--gate", "significant")
    assert code == 0 and "drop not significant" in out and "gate passed" in out

    cell_with_samples(tmp_path / "large", binary(15))  # -37.5 points, 15 queries lost and none gained
    code, out, _ = evals("compare", tmp_path / "large", tmp_path / "baseline", "--gate", "significant", "--level", "0.05")
    assert code == 1 and "REGRESSED" in out and "gate FAILED: 1 regressed" in out


def test_the_noise_gate_needs_the_baselines_samples(tmp_path, evals):  # noqa: F811
    cell_with_samples(tmp_path / "current", binary(29))
    write(tmp_path / "baseline", cell(score=75.0))
    code, _, err = evals("compare", tmp_path / "current", tmp_path / "baseline", "--gate", "significant")
    assert code == 2 and "per-sample file" in err and len(err.strip().splitlines()) == 1


def shot_dependent_answers(prompt) -> str:
    """'yes' with demonstrations (several images), 'no' at 0 shots: the queries whose answer is one of them flip."""
    return "yes" if len(prompt.images) > 1 else "no"


def test_flips_between_0_and_4_shots_within_one_run(tmp_path, evals):  # noqa: F811
    run(ScriptedModel(answers=shot_dependent_answers), ["demo_vqa"],
        RunSettings(shots=(0, 4), limit=30, output_dir=tmp_path / "run"))
    folder = tmp_path / "run" / "scripted" / "demo_vqa"
    ids, zero, four = paired_samples(folder / "random-0shot-seed0.json", folder / "random-4shot-seed0.json")
    worse, better = flips(zero, four, ids)
    assert better and worse  # the "yes" queries gain, the "no" ones lose
    (row,) = paired_json(evals, tmp_path / "run", tmp_path / "run", "--a-shots", "0", "--b-shots", "4")
    assert (row["better_in_a"], row["better_in_b"]) == (worse, better)
    assert "0->4-shot" in row["cell"] and "by image" in row["how"]  # demo VQA asks several questions per image
    code, out, _ = evals("compare", tmp_path / "run", tmp_path / "run", "--test", "paired", "--a-shots", "0", "--b-shots", "4",
                         "--flips", "2")
    assert code == 0 and f"better in B: {better[0]}, {better[1]}" in out


def test_roc_auc_is_recomputed_on_each_resample(tmp_path, evals):  # noqa: F811
    """demo_memes' ROC AUC is a corpus metric: the paired test recomputes it (paired_statistic) from the task's labels."""
    def scores(prompt, candidate: str) -> float:  # P(yes) varies with the meme text and, with shots, with their number
        text = prompt.text.rsplit("<image>", 1)[-1]
        return (len(text) % 7) / 7 * (len(prompt.images) % 3 + 1) * (candidate == "yes")

    run(ScriptedModel(candidate_scores=scores), ["demo_memes"], RunSettings(shots=(0, 4), output_dir=tmp_path / "run"))
    (row,) = paired_json(evals, tmp_path / "run", tmp_path / "run", "--a-shots", "0", "--b-shots", "4", "--resamples", "200")
    folder = tmp_path / "run" / "scripted" / "demo_memes"
    a, b = (folder / f"random-{k}shot-seed0.json" for k in (0, 4))
    ids, _, _ = paired_samples(a, b)
    proba = {k: {json.loads(line)["id"]: json.loads(line)["prediction"]["proba"] for line in samples_file(p).read_text().splitlines()}
             for k, p in ((0, a), (4, b))}
    labels = {str(json.loads(line)["id"]): json.loads(line)["label"]
              for line in (Path("tasks/demo/hateful_memes") / "dev_seen.jsonl").read_text().splitlines()}
    auc = lambda k: lambda positions: roc_auc([labels[ids[p]] for p in positions], [proba[k][ids[p]] for p in positions])
    direct = paired_statistic(auc(0), auc(4), ids, resamples=200)
    assert row["comparison"]["test"] == "bootstrap" and row["how"].startswith("roc_auc recomputed")
    assert row["comparison"]["difference"] == pytest.approx(direct.difference)
    assert row["comparison"]["interval"] == pytest.approx(direct.interval.as_record())


def test_bleu_meteor_and_rouge_are_recomputed_from_per_image_statistics(tmp_path, evals):  # noqa: F811
    """A caption cell's BLEU, METEOR and ROUGE-L are tested on the paired images' statistics, each side scored once:
    the difference is the two cells' scores' difference, and each draw is the metric of the drawn images."""
    from metrics.captioning import caption_scores
    from results.pairing import image_groups, query_examples, read_samples
    from results.records import read_records
    from tasks.captioning import caption_resampling

    def caption(prompt) -> str:  # with demonstrations, a longer caption that shares more words with the references
        return "a picture of a shape" if len(prompt.images) > 1 else "a shape"

    run(ScriptedModel(answers=caption), ["demo_caption"], RunSettings(shots=(0, 2), limit=20, output_dir=tmp_path / "run"))
    rows = {r["metric"]: r for r in paired_json(evals, tmp_path / "run", tmp_path / "run", "--a-shots", "0", "--b-shots", "2",
                                                 "--metric", "all", "--resamples", "200")}
    records = {r.shots: r for r in read_records([tmp_path / "run"])}
    ids, _, _ = paired_samples(records[0].path, records[2].path)
    examples, _ = query_examples("demo_caption", str(records[0].protocol["query_split"]), None)
    statistics = {k: caption_resampling(caption_scores({i: str(read_samples(r.path).predictions[i]) for i in ids},
                                                       {i: examples[i].references for i in ids}))
                  for k, r in records.items()}
    for metric in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L"):
        row = rows[metric]
        assert row["how"].startswith(f"{metric} recomputed per resample from per-image statistics")
        assert row["comparison"]["difference"] == pytest.approx(records[2].scores[metric] - records[0].scores[metric], abs=0.011)
        assert row["comparison"]["difference"] != 0 and row["adjusted_p"] is not None
    bleu = [statistics[k]["Bleu_4"].statistic for k in (0, 2)]
    direct = paired_statistic(*bleu, ids, groups=image_groups(ids, examples), resamples=200)
    shown = rows["Bleu_4"]["comparison"]
    assert (shown["difference"], shown["p_value"]) == pytest.approx((direct.difference, direct.p_value))
    assert (shown["interval"]["low"], shown["interval"]["high"]) == pytest.approx((direct.interval.low, direct.interval.high))
    assert rows["CIDEr"]["how"].startswith("per-image CIDEr")
